// Worker of the contended-lock benchmark (contended.ts): attaches to the pool,
// then per batch does N lock+unlock of the shared word (the pool mutex with
// lock_stat, or a bare compareExchange spinlock), incrementing a shared counter
// non-atomically inside each critical section.

import { workerData, parentPort } from 'node:worker_threads';
import { SITE_BENCH, ZsPool, type ZsPoolShared } from '@zsmalloc/core';
import {
  CONTENDED_THREADS,
  MODE_EXIT,
  MODE_MUTEX,
  W_DONE,
  W_ERR,
  W_MODE,
  W_MUTEX,
  W_MUTEX_COUNT,
  W_N,
  W_SEQ,
  W_SPIN,
  W_SPIN_COUNT,
  W_START,
} from './contended-shared.js';

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

let seen = 0;
parentPort!.postMessage({ ready: true, cpu: pool.cpu });
for (;;) {
  Atomics.wait(c, W_SEQ, seen);
  seen = Atomics.load(c, W_SEQ);
  const mode = Atomics.load(c, W_MODE);
  if (mode === MODE_EXIT) break;
  try {
    const n = Atomics.load(c, W_N);
    Atomics.add(c, W_START, 1);
    while (Atomics.load(c, W_START) < CONTENDED_THREADS) {
      /* start together */
    }
    if (mode === MODE_MUTEX) mutexLoop(n);
    else spinLoop(n);
  } catch (e) {
    Atomics.store(c, W_ERR, 1);
    parentPort!.postMessage({ error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  }
  Atomics.add(c, W_DONE, 1);
  Atomics.notify(c, W_DONE);
}
pool.detach();
