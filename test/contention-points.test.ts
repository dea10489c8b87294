// lock_stat's contention points: the call site that waited is the one counted.
// Each round, this thread takes the pool lock for writing (call site "test")
// while no one else holds anything, then lets a worker read an object (call
// site "object access") and releases the lock 10 ms later. Only the worker
// can ever wait, so every contention of the pool lock must be attributed to
// object access, none to "test", and lockStatText() must list it under the
// &pool->lock row.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { SITE_TEST, ZsPool, type LockMode } from '@zsmalloc/core';

const workerUrl = new URL('./workers/access-loop-worker.mjs', import.meta.url);
const ROUNDS = 20;

describe.each<LockMode>(['class', 'pool'])('contention points per call site (lockMode %s)', (lockMode) => {
  it('a reader blocked by a writer is counted at "object access", with its wait; the writer never waits', async () => {
    const pool = ZsPool.create({ maxBytes: 4 << 20, lockMode, lockStat: true });
    const h = pool.malloc(1000);
    pool.write(h, new Uint8Array(1000).fill(1));
    const ctl = new SharedArrayBuffer(16);
    const w = new Int32Array(ctl);
    const worker = new Worker(workerUrl, { workerData: { shared: pool.shared, handle: h, ctl } });
    const done = new Promise<{ ok: boolean; reads?: number; error?: string }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    while (Atomics.load(w, 1) === 0) await new Promise((r) => setTimeout(r, 5));
    pool.clearLockStat();
    const sleep = new Int32Array(new SharedArrayBuffer(4));
    for (let k = 1; k <= ROUNDS; k++) {
      pool.poolWriteLock(SITE_TEST); // the worker holds nothing now: uncontended
      Atomics.store(w, 2, k);
      Atomics.notify(w, 2);
      Atomics.wait(sleep, 0, 0, 10); // the reader arrives and waits for the lock
      pool.poolWriteUnlock();
      while (Atomics.load(w, 3) !== k) Atomics.wait(w, 3, Atomics.load(w, 3), 100);
    }
    Atomics.store(w, 0, 1);
    Atomics.store(w, 2, ROUNDS + 1);
    Atomics.notify(w, 2);
    const r = await done;
    expect(r.error ?? '').toBe('');
    expect(r.reads).toBe(ROUNDS);
    const rows = pool.lockStats().filter((s) => s.name === '&pool->lock');
    const points = rows.flatMap((s) => s.points);
    // every contention is the reader's, at object access; the writer's site never waited
    expect(points.map((p) => p.site)).toEqual(['object access']);
    const top = points[0]!;
    expect(top.contentions).toBeGreaterThan(0);
    expect(top.contentions).toBeLessThanOrEqual(ROUNDS);
    expect(top.waitTotal).toBeGreaterThan(0);
    expect(top.contentions).toBe(rows.reduce((a, s) => a + s.contentions, 0));
    expect(pool.lockStatText()).toMatch(/&pool->lock +\d+ +\[object access\] waittime-total \d/);
  });
});
