// One thread of the swap-storm demo: attaches to the shared zram device and acts
// like a CPU swapping pages in and out of its own range (writer role), or runs
// background compaction (compactor role), until told to stop.

import { parentPort, workerData } from 'node:worker_threads';
import { ZramDevice, fillPage, prng, swapLikeKind, type ZramShared } from '@zsmalloc/zram';

interface Data { shared: ZramShared; role: 'writer' | 'compactor'; first: number; count: number; seed: number; control: SharedArrayBuffer }

const { shared, role, first, count, seed, control } = workerData as Data;
const dev = ZramDevice.attach(shared);
// control words: [0] stop flag; per worker counters are reported through [1 + id*4 ...]
const ctl = new Int32Array(control);
const id = seed;
const base = 4 + id * 4;

function writer(): void {
  const r32 = prng(seed * 7919 + 1);
  const rnd = () => r32() / 4294967296;
  const page = new Uint8Array(4096);
  const out = new Uint8Array(4096);
  const version = new Int32Array(count);
  while (Atomics.load(ctl, 0) === 0) {
    const i = Math.floor(rnd() * count);
    const r = rnd();
    const index = first + i;
    if (r < 0.55) {
      version[i] = version[i]! + 1;
      fillPage(page, swapLikeKind(index * 31 + version[i]!, seed), index * 1000003 + version[i]!);
      try { dev.writePage(index, page); Atomics.add(ctl, base, 1); } catch { Atomics.add(ctl, base + 3, 1); }
    } else if (r < 0.95) {
      dev.readPage(index, out);
      Atomics.add(ctl, base + 1, 1);
    } else {
      dev.discard(index * 4096, 4096);
      version[i] = 0;
      Atomics.add(ctl, base + 2, 1);
    }
  }
}

function compactor(): void {
  while (Atomics.load(ctl, 0) === 0) {
    if (dev.pool.compactable() > 64) Atomics.add(ctl, base, dev.compact());
    Atomics.wait(ctl, 1, 0, 50);
  }
}

if (role === 'writer') writer(); else compactor();
dev.close();
parentPort?.postMessage('done');
