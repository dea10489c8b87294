// Worker for the contention-point test: attaches to a shared ZsPool and, each
// time the main thread bumps the go word, reads one object (object access: pool
// lock for reading, then the zspage lock) and reports it done; exits on stop.
// Words: [0] stop, [1] started, [2] go sequence, [3] done sequence.
import { parentPort, workerData } from 'node:worker_threads';
import { ZsPool } from '@zsmalloc/core';

const { shared, handle, ctl } = workerData;
const pool = ZsPool.attach(shared);
const w = new Int32Array(ctl);
const buf = new Uint8Array(4096);
let reads = 0;
try {
  Atomics.store(w, 1, 1);
  Atomics.notify(w, 1);
  let seen = 0;
  for (;;) {
    Atomics.wait(w, 2, seen, 1000);
    if (Atomics.load(w, 0) !== 0) break;
    const go = Atomics.load(w, 2);
    if (go === seen) continue;
    seen = go;
    pool.read(handle, buf);
    reads++;
    Atomics.store(w, 3, go);
    Atomics.notify(w, 3);
  }
  pool.detach();
  parentPort.postMessage({ ok: true, reads });
} catch (e) {
  parentPort.postMessage({ ok: false, error: String((e && e.stack) || e) });
}
