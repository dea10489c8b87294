// Attaches to a pool with per-CPU caches, fills its magazines (mallocs, writes,
// frees half) and exits without detaching: a thread that dies with objects in
// its caches.
import { parentPort, workerData } from 'node:worker_threads';
import { ZsPool } from '@zsmalloc/core';

const pool = ZsPool.attach(workerData.shared);
const live = [];
const buf = new Uint8Array(4096);
for (let i = 0; i < 300; i++) {
  const size = 64 + ((i * 131) % 2000);
  const h = pool.malloc(size);
  buf.fill(h & 255, 0, size);
  pool.write(h, buf.subarray(0, size));
  if (i % 2 === 0) pool.free(h);
  else live.push([h, size]);
}
parentPort.postMessage({ cpu: pool.cpu, live });
// exit with the magazines full
setTimeout(() => process.exit(0), 10);
