// Entry point of `pnpm bench`: the micro-benchmarks (allocator by size, object
// access, locks uncontended and contended, mapping, page migration, zram page
// I/O, codecs), each next to its baseline in the same run.
// Usage: node packages/bench/dist/micro.js [--smoke] [--only name,...] [--json path|--no-json]

import { runMicro } from './micro/suite.js';

function parseArgs(argv: string[]): { smoke: boolean; only?: string[]; jsonPath?: string | null } {
  const out: { smoke: boolean; only?: string[]; jsonPath?: string | null } = { smoke: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--smoke') out.smoke = true;
    else if (a === '--only') out.only = (argv[++i] ?? '').split(',').filter((s) => s !== '');
    else if (a === '--json') out.jsonPath = argv[++i] ?? null;
    else if (a === '--no-json') out.jsonPath = null;
    else if (a === '--help' || a === '-h') {
      process.stdout.write(
        'usage: micro.js [--smoke] [--only malloc,locks,contended,codecs,...] [--json path | --no-json]\n',
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return out;
}

await runMicro(parseArgs(process.argv.slice(2)));
