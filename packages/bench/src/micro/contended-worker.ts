// Worker of the contended-lock benchmark (contended.ts): attaches to the pool,
// then per batch does N lock+unlock of the shared word (the pool mutex with
// lock_stat, or a bare compareExchange spinlock), incrementing a shared counter
// non-atomically inside each critical section.

import { workerData } from 'node:worker_threads';
import { SITE_BENCH, ZsPool, type ZsPoolShared } from '@zsmalloc/core';
import { serveBatches } from './batch-threads.js';
import { CONTENDED_THREADS, MODE_MUTEX, W_MUTEX, W_MUTEX_COUNT, W_SPIN, W_SPIN_COUNT } from './contended-shared.js';

interface ContendedWorkerData {
  pool: ZsPoolShared;
  ctl: SharedArrayBuffer;
  cls: number;
}

const data = workerData as ContendedWorkerData;
const pool = ZsPool.attach(data.pool);
const c = new Int32Array(data.ctl);
const cls = data.cls;
const locks = pool.locks;

function mutexLoop(n: number): void {
  for (let k = 0; k < n; k++) {
    locks.mutexLock(c, W_MUTEX, cls, SITE_BENCH);
    c[W_MUTEX_COUNT] = c[W_MUTEX_COUNT]! + 1;
    locks.mutexUnlock(c, W_MUTEX);
  }
}

function spinLoop(n: number): void {
  for (let k = 0; k < n; k++) {
    while (Atomics.compareExchange(c, W_SPIN, 0, 1) !== 0) {
      /* spin */
    }
    c[W_SPIN_COUNT] = c[W_SPIN_COUNT]! + 1;
    Atomics.store(c, W_SPIN, 0);
  }
}

serveBatches(
  c,
  CONTENDED_THREADS,
  (mode, n) => {
    if (mode === MODE_MUTEX) mutexLoop(n);
    else spinLoop(n);
  },
  { cpu: pool.cpu },
);
pool.detach();
