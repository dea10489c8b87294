// Entry point of `pnpm bench:service`: write and read MB/s through ZramService
// with 1 and 2 compression workers in two client shapes ((a) 8 requests of 256
// pages in flight, (b) every request queued at once), next to the bare device on
// one thread and to the kernel's own zram0 when usable. --help lists the options.

import { parseArgs } from 'node:util';
import { runServiceBench, type RunServiceOptions } from './service/suite.js';

const USAGE = `usage: service-bench.js [options]
  --smoke        tiny stream, one pass (checks the bench runs; says nothing about speed)
  --no-kernel    skip the kernel zram0 comparison
  --json PATH    where to write the JSON report (default bench-results/service.json)
  --no-json      write no JSON
  -h, --help     this text
`;

function options(argv: string[]): RunServiceOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      smoke: { type: 'boolean', default: false },
      'no-kernel': { type: 'boolean', default: false },
      json: { type: 'string' },
      'no-json': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const out: RunServiceOptions = { smoke: values.smoke };
  if (values['no-kernel']) out.kernel = false;
  if (values['no-json']) out.jsonPath = null;
  else if (values.json !== undefined) out.jsonPath = values.json;
  return out;
}

// `pnpm bench:service -- --flags` passes the separator through
await runServiceBench(options(process.argv.slice(2).filter((x, i) => !(i === 0 && x === '--'))));
