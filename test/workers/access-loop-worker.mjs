// Worker for the contention-point test: attaches to a shared ZsPool and reads one
// object in a loop (object access: pool lock for reading, then the zspage lock)
// until the stop word is set; reports how many reads it did.
import { parentPort, workerData } from 'node:worker_threads';
import { ZsPool } from '@zsmalloc/core';

const { shared, handle, stop } = workerData;
const pool = ZsPool.attach(shared);
const stopWord = new Int32Array(stop);
const buf = new Uint8Array(4096);
let reads = 0;
try {
  Atomics.store(stopWord, 1, 1); // started
  while (Atomics.load(stopWord, 0) === 0) {
    pool.read(handle, buf);
    reads++;
  }
  pool.detach();
  parentPort.postMessage({ ok: true, reads });
} catch (e) {
  parentPort.postMessage({ ok: false, error: String((e && e.stack) || e) });
}
