// malloc+free from two threads on one size class: two workers attached to a
// pool do malloc+free pairs of the same size at once, with the per-CPU caches
// off (the kernel's path: the class lock on every call) and on, in the same
// run; lock_stat is on in both pools and its contentions are reported. After
// the timed part both pools pass verify() with every pair freed.

import { ZsPool } from '@zsmalloc/core';
import { measure, type Case, type MicroConfig } from '../measure.js';
import { linkBaselines, type BenchRow } from '../report.js';
import { ALLOC_THREADS, MODE_CACHES_OFF, MODE_CACHES_ON, PAIR_SIZE } from './allocator-threads-shared.js';
import { B_WORDS, BatchThreads, builtWorkerUrl } from './batch-threads.js';

const OFF = 'malloc+free 1KiB, 2 threads, one class, caches off';
const ON = 'malloc+free 1KiB, 2 threads, one class, percpuCache';
function contention(pool: ZsPool): { acquisitions: number; contentions: number; waitTotalUs: number } {
  let acquisitions = 0;
  let contentions = 0;
  let waitTotalUs = 0;
  for (const s of pool.lockStats()) {
    acquisitions += s.acquisitions;
    contentions += s.contentions;
    waitTotalUs += s.waitTotal;
  }
  return { acquisitions, contentions, waitTotalUs };
}

export async function benchAllocatorThreads(cfg: MicroConfig): Promise<BenchRow[]> {
  const off = ZsPool.create({ maxBytes: 32 << 20, lockStat: true, name: 'bench_threads_off' });
  const on = ZsPool.create({ maxBytes: 32 << 20, lockStat: true, percpuCache: true, name: 'bench_threads_on' });
  const threads = new BatchThreads(
    'allocator-threads',
    builtWorkerUrl(import.meta.url, 'allocator-threads-worker.js'),
    ALLOC_THREADS,
    new SharedArrayBuffer(B_WORDS * 4),
    { off: off.shared, on: on.shared },
  );
  let rows: BenchRow[];
  try {
    await threads.ready;
    off.clearLockStat();
    on.clearLockStat();
    const cases: Case[] = [
      { name: OFF, group: 'allocator', batch: 20_000, run: (n) => threads.run(MODE_CACHES_OFF, n) },
      { name: ON, group: 'allocator', batch: 20_000, baseline: OFF, run: (n) => threads.run(MODE_CACHES_ON, n) },
    ];
    rows = linkBaselines(await measure(cases, cfg, 'allocator threads'));
  } finally {
    await threads.stop();
  }
  // outside the timed part: every pair was freed, both pools are consistent
  on.drainCaches();
  for (const p of [off, on]) {
    p.verify();
    if (p.stats().objUsed !== 0) throw new Error(`allocator-threads: ${p.stats().objUsed} objects left in ${p.name}`);
  }
  const [rowOff, rowOn] = rows as [BenchRow, BenchRow];
  rowOff.extra = { threads: ALLOC_THREADS, size: PAIR_SIZE, pairsPerSec: rowOff.opsPerSec, ...contention(off) };
  rowOn.extra = { threads: ALLOC_THREADS, size: PAIR_SIZE, pairsPerSec: rowOn.opsPerSec, ...contention(on) };
  off.detach();
  on.detach();
  return rows;
}
