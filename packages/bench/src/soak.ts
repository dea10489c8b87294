// Entry point of `pnpm soak`: see soak/run.ts. The last line printed is
// `soak: N page ops, M pages verified, K mismatches, D worker deaths, verify ok|<error>`.

import { parseArgs } from 'node:util';
import { runSoak } from './soak/run.js';

const usage = `usage: pnpm soak [--seconds N] [--ops N] [--lock-mode class|pool] [--percpu-cache] [--kill-every SECONDS] [--pages N] [--seed N]
  --seconds      how long to run (default 60; with --ops, no limit unless given)
  --ops          stop once N page operations are done (0: no limit)
  --lock-mode    zsmalloc lock mode: class (default) or pool
  --percpu-cache the pool's per-CPU object caches on (default off: the kernel's path)
  --kill-every   terminate a random worker thread (compression, swap I/O or compaction)
                 every SECONDS (fractions allowed); 0 or absent: no kills
  --pages        device size in 4 KiB pages (default 4096)
  --seed         random seed (default 1)
`;

const { values } = parseArgs({
  options: {
    seconds: { type: 'string' },
    ops: { type: 'string', default: '0' },
    'lock-mode': { type: 'string', default: 'class' },
    'percpu-cache': { type: 'boolean', default: false },
    'kill-every': { type: 'string', default: '0' },
    pages: { type: 'string', default: '4096' },
    seed: { type: 'string', default: '1' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});
if (values.help) {
  process.stdout.write(usage);
  process.exit(0);
}
const num = (name: string, v: string, min: number): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) {
    process.stderr.write(`soak: --${name} must be a number >= ${min}, got ${v}\n${usage}`);
    process.exit(2);
  }
  return n;
};
const lockMode = values['lock-mode'];
if (lockMode !== 'class' && lockMode !== 'pool') {
  process.stderr.write(`soak: --lock-mode must be class or pool, got ${lockMode}\n`);
  process.exit(2);
}
const pages = num('pages', values.pages, 128);
const ops = Math.floor(num('ops', values.ops, 0));
const r = await runSoak({
  seconds: values.seconds !== undefined ? num('seconds', values.seconds, 0) : ops > 0 ? Number.POSITIVE_INFINITY : 60,
  ops,
  lockMode,
  percpuCache: values['percpu-cache'],
  killEvery: num('kill-every', values['kill-every'], 0),
  pages: Math.floor(pages),
  seed: num('seed', values.seed, 0),
  log: (l) => process.stdout.write(`${l}\n`),
});
process.stdout.write(`${r.line}\n`);
process.exitCode = r.mismatches === 0 && r.verify === 'ok' ? 0 : 1;
