// Entry point of `pnpm bench:service` (issue 5's benchmark): write and read MB/s
// through ZramService with 1 and 2 compression workers and 8/32/128-page
// batches, next to the bare device and to the kernel's own zram0 when usable.
// Usage: node packages/bench/dist/service-bench.js [--smoke] [--no-kernel] [--json path|--no-json]

import { runServiceBench, type RunServiceOptions } from './service/suite.js';

function parseArgs(argv: string[]): RunServiceOptions {
  const out: RunServiceOptions = { smoke: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--smoke') out.smoke = true;
    else if (a === '--no-kernel') out.kernel = false;
    else if (a === '--json') out.jsonPath = argv[++i] ?? null;
    else if (a === '--no-json') out.jsonPath = null;
    else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: service-bench.js [--smoke] [--no-kernel] [--json path | --no-json]\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return out;
}

await runServiceBench(parseArgs(process.argv.slice(2)));
