// Worker of the two-thread allocator benchmark (allocator-threads.ts): attaches
// to both pools (caches off and on), keeps some objects live in each, then per
// batch does N malloc+free pairs of one size class on the pool the mode names.

import { parentPort, workerData } from 'node:worker_threads';
import { ZsPool, type ZsPoolShared } from '@zsmalloc/core';
import {
  A_DONE,
  A_ERR,
  A_MODE,
  A_N,
  A_SEQ,
  A_START,
  ALLOC_THREADS,
  LIVE_PER_THREAD,
  MODE_CACHES_ON,
  MODE_EXIT,
  PAIR_SIZE,
} from './allocator-threads-shared.js';

interface Data {
  off: ZsPoolShared;
  on: ZsPoolShared;
  ctl: SharedArrayBuffer;
}

const data = workerData as Data;
const off = ZsPool.attach(data.off);
const on = ZsPool.attach(data.on);
const c = new Int32Array(data.ctl);
const live: [ZsPool, number][] = [];
for (const p of [off, on]) for (let i = 0; i < LIVE_PER_THREAD; i++) live.push([p, p.malloc(PAIR_SIZE)]);

function pairs(pool: ZsPool, n: number): void {
  for (let k = 0; k < n; k++) pool.free(pool.malloc(PAIR_SIZE));
}

let seen = 0;
parentPort!.postMessage({ ready: true });
for (;;) {
  Atomics.wait(c, A_SEQ, seen);
  seen = Atomics.load(c, A_SEQ);
  const mode = Atomics.load(c, A_MODE);
  if (mode === MODE_EXIT) break;
  try {
    const n = Atomics.load(c, A_N);
    Atomics.add(c, A_START, 1);
    while (Atomics.load(c, A_START) < ALLOC_THREADS) {
      /* start together */
    }
    pairs(mode === MODE_CACHES_ON ? on : off, n);
  } catch (e) {
    Atomics.store(c, A_ERR, 1);
    parentPort!.postMessage({ error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  }
  Atomics.add(c, A_DONE, 1);
  Atomics.notify(c, A_DONE);
}
for (const [p, h] of live) p.free(h);
off.detach();
on.detach();
