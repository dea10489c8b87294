// Plays "the main thread" of a dead-owner test: it creates the lock holder (so the
// holder's 'exit' event is delivered to this thread only), and as soon as the holder
// has the lock it blocks synchronously on the same lock, never returning to its
// event loop, while the holder dies. It posts how long the blocked acquisition took.
import { Worker, parentPort, workerData } from 'node:worker_threads';
import { Watchdog, ZsPool } from '@zsmalloc/core';
import { ZramDevice } from '@zsmalloc/zram';

const { kind, die, poolShared, devShared, index } = workerData;
const pool = devShared ? undefined : ZsPool.attach(poolShared);
const dev = devShared ? ZramDevice.attach(devShared) : undefined;
const wd = Watchdog.get();
const line = wd.lifeline(poolShared);
const holder = new Worker(new URL('./lock-holder-worker.mjs', import.meta.url), {
  workerData: { kind, shared: devShared ?? poolShared, index, die, lifeline: line.theirs },
  transferList: [line.theirs],
});
line.bind(holder.threadId);
holder.once('message', ({ cpu }) => {
  if (die === 'terminate') holder.terminate();
  const t0 = performance.now();
  let result;
  if (kind === 'class-lock') {
    pool.classLock(index);
    pool.classUnlock(index);
    result = { recovered: pool.locks.recovered };
  } else if (kind === 'pool-read') {
    pool.poolWriteLock(); // a later writer
    pool.poolWriteUnlock();
    pool.poolReadLock(); // and a later reader
    pool.poolReadUnlock();
    result = { recovered: pool.locks.recovered, word: Atomics.load(pool.ctl, 0) };
  } else if (kind === 'zspage-read') {
    // a writer that only trylocks (as compaction does) spins on it; then a reader
    let tries = 0;
    while (!pool.zspageWriteTrylock(index)) {
      tries++;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
    pool.zspageWriteUnlock(index);
    pool.zspageReadLock(index);
    pool.zspageReadUnlock(index);
    result = { recovered: pool.locks.recovered };
  } else if (kind === 'lock-class-guard') {
    // what a device attaching in this thread does: register its slot lock class
    result = { recovered: 0, word: pool.lockClassId('a_class_after_the_death') };
  } else if (kind === 'slot-lock') {
    const out = new Uint8Array(4096);
    dev.readPage(index, out);
    result = { recovered: dev.pool.locks.recovered, byte: out[100] };
  }
  const ms = performance.now() - t0;
  parentPort.postMessage({ ms, cpu, ...result });
});
