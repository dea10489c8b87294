// Per-CPU object caches across threads: a thread that dies with objects in its
// magazines has them reclaimed once it is marked dead; the objects it stored stay.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { ZsPool } from '@zsmalloc/core';

const url = new URL('./workers/magazine-worker.mjs', import.meta.url);

function fillAndDie(shared: unknown): Promise<{ threadId: number; cpu: number; live: [number, number][] }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(url, { workerData: { shared } });
    const threadId = w.threadId;
    let msg: { cpu: number; live: [number, number][] } | undefined;
    w.on('message', (m) => {
      msg = m;
    });
    w.on('error', reject);
    w.on('exit', () => (msg ? resolve({ threadId, ...msg }) : reject(new Error('worker sent nothing'))));
  });
}

describe.each(['class', 'pool'] as const)('per-CPU caches of a dead thread (lockMode %s)', (lockMode) => {
  it('are reclaimed when the thread is marked dead; its stored objects stay intact', async () => {
    const pool = ZsPool.create({ maxBytes: 16 << 20, lockMode, percpuCache: true });
    const { threadId, cpu, live } = await fillAndDie(pool.shared);
    expect(cpu).toBeGreaterThan(0);
    const before = pool.stats();
    expect(before.objUsed).toBe(live.length);
    expect(before.objAllocated - before.objUsed).toBeGreaterThan(0);
    pool.verify(); // magazines of a thread gone but not yet marked dead are still consistent
    expect(pool.markThreadDead(threadId)).toEqual([cpu]);
    pool.verify();
    const after = pool.stats();
    expect(after.objUsed).toBe(live.length);
    expect(after.bytesStored).toBe(live.reduce((a, [, s]) => a + s, 0));
    expect(after.objAllocated).toBeLessThan(before.objAllocated);
    const buf = new Uint8Array(4096);
    for (const [h, size] of live) {
      expect(pool.read(h, buf)).toBe(size);
      for (let k = 0; k < size; k++) if (buf[k] !== (h & 255)) throw new Error(`object ${h} changed`);
    }
    for (const [h] of live) pool.free(h);
    pool.drainCaches();
    expect(pool.stats()).toMatchObject({ pagesUsed: 0, objAllocated: 0, objUsed: 0, bytesStored: 0 });
    pool.verify();
  });
});
