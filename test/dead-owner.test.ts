// A thread that dies holding a lock must not hang the others: mutex waiters see the
// dead owner's CPU id in the word and take the lock over; a zram slot bit lock is
// released through the dead CPU's held-lock record. Each test checks, without
// blocking, that the lock will be taken over before it makes a call that would
// otherwise block this thread for good, so a regression fails at once instead of
// hanging until the runner's timeout (the blocking cases themselves run in a
// thread of their own in thread-death.test.ts).
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { ZsPool } from '@zsmalloc/core';
import { ZramDevice } from '@zsmalloc/zram';

const url = new URL('./workers/lock-holder-worker.mjs', import.meta.url);

function holdAndDie(workerData: unknown): Promise<{ threadId: number; cpu: number }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(url, { workerData });
    const threadId = w.threadId; // reads -1 once the worker has exited
    let cpu = -1;
    w.on('message', (m: { cpu: number }) => {
      cpu = m.cpu;
    });
    w.on('error', reject);
    w.on('exit', () => resolve({ threadId, cpu }));
  });
}

describe('locks held by a dead thread', () => {
  it('a class lock left held is taken over once the owner is marked dead', async () => {
    const pool = ZsPool.create({ maxBytes: 4 << 20, lockStat: true });
    const c = pool.classIndexFor(100);
    const { threadId, cpu } = await holdAndDie({ kind: 'class-lock', shared: pool.shared, index: c });
    expect(cpu).toBeGreaterThan(0);
    expect(pool.locks.mutexContended(pool.cls, c * 32)).toBe(false);
    expect(pool.locks.mutexOwnerGone(pool.cls, c * 32)).toBe(false); // the parent has not marked it yet
    expect(pool.markThreadDead(threadId)).toEqual([cpu]);
    expect(pool.locks.mutexOwnerGone(pool.cls, c * 32)).toBe(true); // so malloc below cannot hang
    const h = pool.malloc(100);
    expect(h).toBeGreaterThan(0);
    expect(pool.locks.recovered).toBe(1);
    pool.free(h);
    pool.verify();
  });

  it('a zram slot lock left held is released by recoverDeadLocks', async () => {
    const dev = ZramDevice.create({ disksize: 1 << 20 });
    const page = new Uint8Array(4096).fill(7);
    dev.writePage(3, page);
    const { threadId } = await holdAndDie({ kind: 'slot-lock', shared: dev.shared, index: 3 });
    dev.pool.markThreadDead(threadId);
    expect(dev.recoverDeadLocks()).toBe(1);
    const out = new Uint8Array(4096);
    dev.readPage(3, out); // cannot spin: the lock was released above
    expect(out[100]).toBe(7);
    dev.verify();
  });
});
