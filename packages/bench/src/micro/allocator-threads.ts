// malloc+free from two threads on one size class: two workers attached to a
// pool do malloc+free pairs of the same size at once, with the per-CPU caches
// off (the kernel's path: the class lock on every call) and on, in the same
// run; lock_stat is on in both pools and its contentions are reported. After
// the timed part both pools pass verify() with every pair freed.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ZsPool } from '@zsmalloc/core';
import { measure, type Case, type MicroConfig } from '../measure.js';
import { linkBaselines, type BenchRow } from '../report.js';
import {
  A_DONE,
  A_ERR,
  A_MODE,
  A_N,
  A_SEQ,
  A_START,
  A_WORDS,
  ALLOC_THREADS,
  MODE_CACHES_OFF,
  MODE_CACHES_ON,
  MODE_EXIT,
  PAIR_SIZE,
} from './allocator-threads-shared.js';

const OFF = 'malloc+free 1KiB, 2 threads, one class, caches off';
const ON = 'malloc+free 1KiB, 2 threads, one class, percpuCache';
const BATCH_TIMEOUT_MS = 60_000;

function workerUrl(): URL {
  const here = new URL('./allocator-threads-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  const built = new URL('../../dist/micro/allocator-threads-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  throw new Error(`allocator-threads: no built worker at ${fileURLToPath(here)} (run tsc -b first)`);
}

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
  const ctl = new SharedArrayBuffer(A_WORDS * 4);
  const c = new Int32Array(ctl);
  const errors: string[] = [];
  const workers: Worker[] = [];
  const ready: Promise<void>[] = [];
  const exited: Promise<void>[] = [];
  for (let t = 0; t < ALLOC_THREADS; t++) {
    const w = new Worker(workerUrl(), { workerData: { off: off.shared, on: on.shared, ctl } });
    workers.push(w);
    ready.push(
      new Promise<void>((resolve, reject) => {
        w.on('message', (m: { ready?: boolean; error?: string }) => {
          if (m.ready === true) resolve();
          if (m.error !== undefined) errors.push(m.error);
        });
        w.once('error', reject);
      }),
    );
    exited.push(new Promise<void>((resolve) => w.once('exit', () => resolve())));
  }

  function batch(mode: number, n: number): number {
    Atomics.store(c, A_N, n);
    Atomics.store(c, A_MODE, mode);
    Atomics.store(c, A_DONE, 0);
    Atomics.store(c, A_START, 0);
    Atomics.add(c, A_SEQ, 1);
    Atomics.notify(c, A_SEQ);
    const deadline = performance.now() + BATCH_TIMEOUT_MS;
    for (let d = Atomics.load(c, A_DONE); d < ALLOC_THREADS; d = Atomics.load(c, A_DONE)) {
      Atomics.wait(c, A_DONE, d, 100);
      if (performance.now() > deadline) throw new Error(`allocator-threads: a batch of ${n} pairs did not finish`);
    }
    if (Atomics.load(c, A_ERR) !== 0) throw new Error(`allocator-threads: a worker failed: ${errors[0] ?? '?'}`);
    return n * ALLOC_THREADS;
  }

  let rows: BenchRow[];
  try {
    await Promise.all(ready);
    off.clearLockStat();
    on.clearLockStat();
    const cases: Case[] = [
      { name: OFF, group: 'allocator', batch: 20_000, run: (n) => batch(MODE_CACHES_OFF, n) },
      { name: ON, group: 'allocator', batch: 20_000, baseline: OFF, run: (n) => batch(MODE_CACHES_ON, n) },
    ];
    rows = linkBaselines(await measure(cases, cfg, 'allocator threads'));
  } finally {
    Atomics.store(c, A_MODE, MODE_EXIT);
    Atomics.add(c, A_SEQ, 1);
    Atomics.notify(c, A_SEQ);
    await Promise.race([Promise.all(exited), new Promise((r) => setTimeout(r, 5_000))]);
    for (const w of workers) await w.terminate();
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
