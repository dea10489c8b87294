// Real multi-threaded stress of the pool: mutator threads malloc/write/read/map/free
// with content checks while one thread compacts in a loop and another migrates
// frames and runs frame compaction, in both lock modes, with and without per-CPU
// object caches (with them, the compactor drains every CPU's magazines now and then),
// and once with physical memory in 4 MiB segments (the segmentBytes testing knob), so
// every thread's views follow segments as they grow and objects, compaction and
// migration cross segment boundaries under contention.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { ZsPool, type LockMode } from '@zsmalloc/core';

const workerUrl = new URL('./workers/pool-stress-worker.mjs', import.meta.url);

interface Result {
  ok: boolean;
  role: string;
  error?: string;
  mismatches?: number;
  done?: number;
  live?: [number, [number, number]][];
  runs?: number;
  freed?: number;
  migrated?: number;
  lockdep?: boolean;
}

function run(shared: unknown, role: string, ops: number, seed: number, stop: SharedArrayBuffer): Promise<Result> {
  return new Promise((resolve, reject) => {
    const w = new Worker(workerUrl, { workerData: { shared, role, ops, seed, stop } });
    w.once('message', (m: Result) => resolve(m));
    w.once('error', reject);
    w.once('exit', (code) => {
      if (code !== 0) reject(new Error(`${role} exited with ${code}`));
    });
  });
}

describe.each<[LockMode, boolean, number?]>([
  ['class', false],
  ['pool', false],
  ['class', true],
  ['pool', true],
  ['class', true, 4 << 20],
])('pool under real contention (lockMode %s, percpuCache %s, segmentBytes %s)', (lockMode, percpuCache, seg) => {
  it('two mutators, a compactor and a migrator: zero mismatches, verify passes, contentions counted', async () => {
    const opts = { maxBytes: 48 << 20, lockMode, lockStat: true, lockdep: true, percpuCache };
    const pool = ZsPool.create(seg === undefined ? opts : { ...opts, segmentBytes: seg });
    const stop = new SharedArrayBuffer(4);
    const stopWord = new Int32Array(stop);
    const background = [run(pool.shared, 'compactor', 0, 3, stop), run(pool.shared, 'migrator', 0, 4, stop)];
    const mutators = await Promise.all([
      run(pool.shared, 'mutator', 60000, 1, stop),
      run(pool.shared, 'mutator', 60000, 2, stop),
    ]);
    Atomics.store(stopWord, 0, 1);
    const bg = await Promise.all(background);
    for (const r of [...mutators, ...bg]) expect(r.error ?? '').toBe('');
    // every thread checked its acquisitions against the lock order (an inversion throws)
    for (const r of [...mutators, ...bg]) expect(r.lockdep).toBe(true);
    const mismatches = mutators.reduce((a, r) => a + (r.mismatches ?? 0), 0);
    expect(mismatches).toBe(0);
    expect(mutators.reduce((a, r) => a + (r.done ?? 0), 0)).toBeGreaterThan(100000);
    pool.verify();
    // with small segments, memory grew into several of them
    if (seg !== undefined) expect(pool.shared.phys.segments.filter((b) => b.byteLength > 0).length).toBeGreaterThan(1);
    // the mutators detached: their magazines are back in the zspages, and the stats are exact
    const live = mutators.reduce((a, r) => a + (r.live?.length ?? 0), 0);
    expect(pool.stats().objUsed).toBe(live);
    // everything the mutators left is still intact, read from this thread
    const buf = new Uint8Array(4096);
    for (const r of mutators)
      for (const [h, [size, v]] of r.live ?? []) {
        expect(pool.read(h, buf)).toBe(size);
        for (let k = 0; k < size; k++)
          if (buf[k] !== ((h * 31 + v * 17 + k * 7) & 255)) throw new Error(`handle ${h} corrupted`);
      }
    const compactor = bg[0]!;
    const migrator = bg[1]!;
    expect(compactor.runs).toBeGreaterThan(0);
    expect(migrator.migrated).toBeGreaterThan(0);
    const stats = pool.lockStats();
    const contentions = stats.reduce((a, s) => a + s.contentions, 0);
    console.log(
      `lockMode ${lockMode}, percpuCache ${percpuCache}: compaction runs ${compactor.runs} freed ${compactor.freed} pages; frames migrated ${migrator.migrated}; contentions ${contentions}`,
    );
    console.log(pool.lockStatText());
    expect(contentions).toBeGreaterThan(0);
    const poolLock = stats.filter((s) => s.name === '&pool->lock');
    expect(poolLock.reduce((a, s) => a + s.acquisitions, 0)).toBeGreaterThan(0);
  }, 180_000);
});
