// lock_stat's contention points: the call site that waited is the one counted. A
// worker reads an object in a loop (call site "object access") while this thread
// repeatedly holds the pool lock for writing for a millisecond (call site
// "test"): the pool lock's contention points must be led by object access, and
// lockStatText() must list it under the &pool->lock row.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { SITE_TEST, ZsPool, type LockMode } from '@zsmalloc/core';

const workerUrl = new URL('./workers/access-loop-worker.mjs', import.meta.url);

describe.each<LockMode>(['class', 'pool'])('contention points per call site (lockMode %s)', (lockMode) => {
  it('a reader blocked by a long writer is counted at "object access", with its wait', async () => {
    const pool = ZsPool.create({ maxBytes: 4 << 20, lockMode, lockStat: true });
    const h = pool.malloc(1000);
    pool.write(h, new Uint8Array(1000).fill(1));
    const stop = new SharedArrayBuffer(8);
    const stopWord = new Int32Array(stop);
    const w = new Worker(workerUrl, { workerData: { shared: pool.shared, handle: h, stop } });
    const done = new Promise<{ ok: boolean; reads?: number; error?: string }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    while (Atomics.load(stopWord, 1) === 0) await new Promise((r) => setTimeout(r, 5));
    const spin = new Int32Array(new SharedArrayBuffer(4));
    for (let k = 0; k < 40; k++) {
      pool.poolWriteLock(SITE_TEST);
      Atomics.wait(spin, 0, 0, 1); // hold it for 1 ms while the reader loops
      pool.poolWriteUnlock();
      await new Promise((r) => setImmediate(r));
    }
    Atomics.store(stopWord, 0, 1);
    const r = await done;
    expect(r.error ?? '').toBe('');
    expect(r.reads).toBeGreaterThan(0);
    const row = pool.lockStats().find((s) => s.name === '&pool->lock' && s.points.length > 0);
    expect(row).toBeDefined();
    const top = row!.points[0]!;
    expect(top.site).toBe('object access');
    expect(top.contentions).toBeGreaterThan(0);
    expect(top.waitTotal).toBeGreaterThan(0);
    // the per-site counts add up to the class's contentions (summed over both states)
    const all = pool.lockStats().filter((s) => s.name === '&pool->lock');
    const total = all.reduce((a, s) => a + s.contentions, 0);
    expect(row!.points.reduce((a, p) => a + p.contentions, 0)).toBe(total);
    const text = pool.lockStatText();
    expect(text).toMatch(/&pool->lock +\d+ +\[object access\] waittime-total \d/);
  });
});
