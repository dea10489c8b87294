// A thread that dies at a random point under load (R4): it writes, reads,
// discards and compacts on a shared zram device, keeping a journal of acknowledged
// page versions in shared memory, until it exits at its Nth lock acquisition
// (`exitAt`) or is terminated by its parent. journal[2p] = acknowledged version of
// page p (0 = zero page), journal[2p+1] = version being written (0 = none).
import { parentPort, workerData } from 'node:worker_threads';
import { holdLifeline } from '@zsmalloc/core';
import { ZramDevice } from '@zsmalloc/zram';
import { pageOf } from './fault-writer-worker-pages.mjs';

const { devShared, journal, exitAt, seed, lifeline } = workerData;
holdLifeline(lifeline);
const dev = ZramDevice.attach(devShared);
const j = new Int32Array(journal);
const pages = dev.pages;
let s = seed >>> 0;
const rnd = () => {
  s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
  return s;
};
const buf = new Uint8Array(4096);
parentPort.postMessage('ready');
if (exitAt > 0) dev.pool.locks.exitAtAcquisition(exitAt);
for (;;) {
  const p = rnd() % pages;
  const r = rnd() % 100;
  if (r < 55) {
    const v = (Atomics.load(j, 2 * p) % 100000) + 1;
    Atomics.store(j, 2 * p + 1, v);
    dev.writePage(p, pageOf(p, v, buf));
    Atomics.store(j, 2 * p, v);
    Atomics.store(j, 2 * p + 1, 0);
  } else if (r < 85) {
    dev.readPage(p, buf);
  } else if (r < 95) {
    Atomics.store(j, 2 * p + 1, -1); // being discarded: reads back as before or as zeros
    dev.discard(p * 4096, 4096);
    Atomics.store(j, 2 * p, 0);
    Atomics.store(j, 2 * p + 1, 0);
  } else {
    dev.compact();
  }
}
