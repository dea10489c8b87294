// Attaches to a pool (and optionally a zram device), takes a lock and exits
// without releasing it: a thread that dies while holding a lock.
import { parentPort, workerData } from 'node:worker_threads';
import { ZsPool } from '@zsmalloc/core';
import { ZramDevice } from '@zsmalloc/zram';

const { kind, shared, index } = workerData;
if (kind === 'class-lock') {
  const pool = ZsPool.attach(shared);
  pool.classLock(index);
  parentPort.postMessage({ cpu: pool.cpu });
} else if (kind === 'slot-lock') {
  const dev = ZramDevice.attach(shared);
  // the slot lock of page `index`, taken the way the device takes it
  dev['slots'].lock(index);
  parentPort.postMessage({ cpu: dev.pool.cpu });
}
// exit while holding it
setTimeout(() => process.exit(0), 10);
