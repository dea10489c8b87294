// Worker of the two-thread allocator benchmark (allocator-threads.ts): attaches
// to both pools (caches off and on), keeps some objects live in each, then per
// batch does N malloc+free pairs of one size class on the pool the mode names.

import { workerData } from 'node:worker_threads';
import { ZsPool, type ZsPoolShared } from '@zsmalloc/core';
import { ALLOC_THREADS, LIVE_PER_THREAD, MODE_CACHES_ON, PAIR_SIZE } from './allocator-threads-shared.js';
import { serveBatches } from './batch-threads.js';

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

serveBatches(c, ALLOC_THREADS, (mode, n) => pairs(mode === MODE_CACHES_ON ? on : off, n));
for (const [p, h] of live) p.free(h);
off.detach();
on.detach();
