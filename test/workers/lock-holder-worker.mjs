// Attaches to a pool (and optionally a zram device), takes a lock and dies without
// releasing it: on its own (`die: 'exit'`), or when its parent terminates it
// (`die: 'terminate'`: it sleeps holding the lock until then). It holds the lifeline
// it was handed, so the watchdog sees it go.
import { parentPort, workerData } from 'node:worker_threads';
import { ZsPool, holdLifeline } from '@zsmalloc/core';
import { ZramDevice } from '@zsmalloc/zram';

const { kind, shared, index, die = 'exit', lifeline } = workerData;
holdLifeline(lifeline);
let cpu;
if (kind === 'class-lock') {
  const pool = ZsPool.attach(shared);
  pool.classLock(index);
  cpu = pool.cpu;
} else if (kind === 'pool-read') {
  const pool = ZsPool.attach(shared);
  pool.poolReadLock();
  cpu = pool.cpu;
} else if (kind === 'zspage-read') {
  const pool = ZsPool.attach(shared);
  pool.zspageReadLock(index);
  cpu = pool.cpu;
} else if (kind === 'pool-write') {
  // held until the parent says 'release' (a live holder, not a dying one)
  const pool = ZsPool.attach(shared);
  pool.poolWriteLock();
  cpu = pool.cpu;
  parentPort.on('message', () => {
    pool.poolWriteUnlock();
    process.exit(0);
  });
} else if (kind === 'lock-class-guard') {
  // inside a lock-class registration (a thread terminated while it attaches): the
  // registry's guard word holds this thread's owner tag
  const pool = ZsPool.attach(shared);
  Atomics.store(pool.ctl, pool.lockRegistryGuard, pool.locks.tag);
  cpu = pool.cpu;
} else if (kind === 'slot-lock') {
  const dev = ZramDevice.attach(shared);
  // the slot lock of page `index`, taken the way the device takes it
  dev['slots'].lock(index);
  cpu = dev.pool.cpu;
}
parentPort.postMessage({ cpu });
if (kind === 'pool-write') {
  // exits when released
} else if (die === 'exit') setTimeout(() => process.exit(0), 10);
else setInterval(() => undefined, 1000); // held until terminated
