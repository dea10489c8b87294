// Entry point of `pnpm bench`: the micro-benchmarks (allocator by size, object
// access, locks uncontended and contended, lockdep's cost, mapping, page
// migration, zram page I/O, codecs), each next to its baseline in the same run.
// Usage: node packages/bench/dist/micro.js --help

import { parseArgs } from 'node:util';
import { runMicro } from './micro/suite.js';

const USAGE = `usage: micro.js [--smoke] [--only malloc,locks,contended,codecs,...] [--json PATH | --no-json]
  --smoke     tiny counts (checks the benchmarks run; figures mean nothing)
  --only      run only the benchmarks whose name contains one of these
  --json      where to write the JSON report (default bench-results/micro.json)
  --no-json   write no JSON`;

function parse(argv: string[]): { smoke: boolean; only?: string[]; jsonPath?: string | null } {
  const { values } = parseArgs({
    args: argv.filter((a) => a !== '--'),
    options: {
      smoke: { type: 'boolean', default: false },
      only: { type: 'string' },
      json: { type: 'string' },
      'no-json': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const out: { smoke: boolean; only?: string[]; jsonPath?: string | null } = { smoke: values.smoke };
  if (values.only !== undefined) out.only = values.only.split(',').filter((s) => s !== '');
  if (values['no-json']) out.jsonPath = null;
  else if (values.json !== undefined) out.jsonPath = values.json;
  return out;
}

await runMicro(parse(process.argv.slice(2)));
