// Contended lock micro-benchmark: two worker threads each doing N lock+unlock
// of the same pool mutex (LockContext.mutexLock/mutexUnlock with lock_stat on,
// on a word of a SharedArrayBuffer), timed as ns per acquisition across both
// threads, next to the same from two threads with a bare spinlock
// (compareExchange loop + store) on another word, in the same run. Each
// critical section increments a shared counter non-atomically; the counters
// are checked after the timed part (mutual exclusion held), and lock_stat's
// contentions for the mutex class show the lock really was contended.
//
// A batch: the main thread sets N and the mode, wakes both workers (they meet
// at a start barrier), and blocks until both are done; the wake-up (a few µs)
// is amortised over 2·N acquisitions.

import { ZsPool } from '@zsmalloc/core';
import { measure, type Case, type MicroConfig } from '../measure.js';
import { linkBaselines, type BenchRow } from '../report.js';
import { BatchThreads, builtWorkerUrl } from './batch-threads.js';
import { CONTENDED_THREADS, MODE_MUTEX, MODE_SPIN, W_MUTEX_COUNT, W_SPIN_COUNT, W_WORDS } from './contended-shared.js';

const SPIN = 'spinlock CAS+store, 2 threads (bare)';
const MUTEX = 'mutex lock+unlock, 2 threads (lock_stat on)';
const CLASS = 'bench_contended_mutex';

export async function benchContended(cfg: MicroConfig): Promise<BenchRow[]> {
  const pool = ZsPool.create({ maxBytes: 1 << 20, lockStat: true, name: 'bench_contended' });
  const cls = pool.lockClassId(CLASS);
  const threads = new BatchThreads(
    'contended',
    builtWorkerUrl(import.meta.url, 'contended-worker.js'),
    CONTENDED_THREADS,
    new SharedArrayBuffer(W_WORDS * 4),
    { pool: pool.shared, cls },
  );
  const c = threads.c;

  // every acquisition, warm-up included (what the in-section counters must show)
  let mutexOps = 0;
  let spinOps = 0;
  /** One batch: both workers do n acquisitions of the mode's lock. */
  function batch(mode: number, n: number): number {
    const done = threads.run(mode, n);
    if (mode === MODE_MUTEX) mutexOps += done;
    else spinOps += done;
    return done;
  }

  let rows: BenchRow[];
  try {
    await threads.ready;
    const cases: Case[] = [
      {
        name: SPIN,
        group: 'locks',
        batch: 20_000,
        run(n) {
          return batch(MODE_SPIN, n);
        },
      },
      {
        name: MUTEX,
        group: 'locks',
        batch: 20_000,
        baseline: SPIN,
        run(n) {
          return batch(MODE_MUTEX, n);
        },
      },
    ];
    // Case.batch is per worker here; a batch measures CONTENDED_THREADS times as many acquisitions
    rows = linkBaselines(await measure(cases, cfg, 'contended'));
  } finally {
    await threads.stop();
  }

  // outside the timed part: every critical section ran alone (no lost increment)
  const mutexCount = Atomics.load(c, W_MUTEX_COUNT);
  const spinCount = Atomics.load(c, W_SPIN_COUNT);
  if (mutexCount !== mutexOps)
    throw new Error(`contended: mutex counter ${mutexCount}, expected ${mutexOps} (mutual exclusion broken)`);
  if (spinCount !== spinOps)
    throw new Error(`contended: spinlock counter ${spinCount}, expected ${spinOps} (mutual exclusion broken)`);
  const st = pool.lockStats().find((s) => s.name === CLASS);
  const [spin, mutex] = rows as [BenchRow, BenchRow];
  mutex.extra = {
    threads: CONTENDED_THREADS,
    acquisitions: st?.acquisitions ?? 0,
    /** Acquisitions the batches asked for (warm-up included): lock_stat must count exactly these. */
    expectedAcquisitions: mutexOps,
    contentions: st?.contentions ?? 0,
    /** Contentions lock_stat attributed to the workers' call site ("bench"), and to any other site. */
    benchSiteContentions: st?.points.find((p) => p.site === 'bench')?.contentions ?? 0,
    otherSiteContentions: st?.points.filter((p) => p.site !== 'bench').reduce((a, p) => a + p.contentions, 0) ?? 0,
    contendedPct: (100 * (st?.contentions ?? 0)) / Math.max(1, st?.acquisitions ?? 0),
    waitAvgUs: st !== undefined && st.contentions > 0 ? st.waitTotal / st.contentions : 0,
    acqBounces: st?.acqBounces ?? 0,
    conBounces: st?.conBounces ?? 0,
    verified: true,
  };
  spin.extra = { threads: CONTENDED_THREADS, verified: true };
  pool.detach();
  return rows;
}
