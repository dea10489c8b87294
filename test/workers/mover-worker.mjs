// Attaches to a pool and moves objects the way the compaction worker does (zspage
// compaction, or one frame's migration), armed to exit at a chosen fault point
// inside the move: it dies holding the pool lock, the class lock and the zspage
// lock, with the move half done. Posts 'done' if it got through without meeting
// the point.
import { parentPort, workerData } from 'node:worker_threads';
import { ZsPool, isolateFrame, migrateFrame } from '@zsmalloc/core';

const { shared, op, pfn, point, nth } = workerData;
const pool = ZsPool.attach(shared);
pool.locks.exitAtPoint(point, nth);
if (op === 'migrate') {
  if (!isolateFrame(pool, pfn)) throw new Error(`frame ${pfn} is not a zspage frame`);
  migrateFrame(pool, pfn, -1);
} else pool.compact();
parentPort.postMessage('done');
