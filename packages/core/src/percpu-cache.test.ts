import { describe, expect, it } from 'vitest';
import { PAGE_SIZE, ZS_INUSE_RATIO_0, ZS_INUSE_RATIO_99, ZS_INUSE_RATIO_100 } from './constants.js';
import { PCP_BATCH, PCP_CAPACITY, PerCpuCache } from './percpu-cache.js';
import { ZsPool, type LockMode } from './pool.js';
import { buildFullnessTable, fullnessGroup } from './zspage.js';

/** The kernel's formula as written: integer percentage, then its tens. */
function kernelGroup(inuse: number, objs: number): number {
  if (inuse === 0) return ZS_INUSE_RATIO_0;
  if (inuse === objs) return ZS_INUSE_RATIO_100;
  const ratio = Math.floor((100 * inuse) / objs);
  return Math.floor(ratio / 10) + 1;
}

describe('fullness groups without division', () => {
  it('the integer group equals the kernel percentage rule for every zspage geometry (1..2048 objects)', () => {
    for (let objs = 1; objs <= 2048; objs++)
      for (let inuse = 0; inuse <= objs; inuse++) {
        if (fullnessGroup(inuse, objs) !== kernelGroup(inuse, objs))
          throw new Error(`inuse ${inuse}/${objs}: ${fullnessGroup(inuse, objs)} vs ${kernelGroup(inuse, objs)}`);
      }
  });

  it('pins the groups of a 7-object and a 100-object zspage, and the table agrees', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((i) => fullnessGroup(i, 7))).toEqual([0, 2, 3, 5, 6, 8, 9, 11]);
    expect([1, 9, 10, 11, 50, 89, 90, 99, 100].map((i) => fullnessGroup(i, 100))).toEqual([
      1,
      1,
      2,
      2,
      6,
      9,
      10,
      ZS_INUSE_RATIO_99,
      ZS_INUSE_RATIO_100,
    ]);
    const objs = Int32Array.from([1, 7, 100, 2048]);
    const t = buildFullnessTable(objs);
    for (let c = 0; c < objs.length; c++)
      for (let i = 0; i <= objs[c]!; i++) expect(t.groups[t.base[c]! + i]).toBe(fullnessGroup(i, objs[c]!));
  });
});

function rnd(seed: number): () => number {
  let s = seed;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
    return s;
  };
}

/** The same malloc/write/free sequence on a pool; returns the live handles and their sizes. */
function workload(pool: ZsPool, seed: number): Map<number, number> {
  const r = rnd(seed);
  const live = new Map<number, number>();
  const b = new Uint8Array(PAGE_SIZE);
  for (let i = 0; i < 6000; i++) {
    const size = 32 + (r() % 3000);
    const h = pool.malloc(size);
    b.fill(h & 255, 0, size);
    pool.write(h, b.subarray(0, size));
    live.set(h, size);
  }
  for (const h of [...live.keys()])
    if (r() % 10 < 6) {
      pool.free(h);
      live.delete(h);
    }
  return live;
}

function checkLive(pool: ZsPool, live: Map<number, number>): void {
  const b = new Uint8Array(PAGE_SIZE);
  for (const [h, size] of live) {
    expect(pool.read(h, b)).toBe(size);
    for (let k = 0; k < size; k++) if (b[k] !== (h & 255)) throw new Error(`object ${h} byte ${k} changed`);
  }
}

describe.each<LockMode>(['class', 'pool'])('per-CPU object caches (lockMode %s)', (lockMode) => {
  it('counts reserved objects as allocated but not used, in stats, the classes table and verify', () => {
    const pool = ZsPool.create({ maxBytes: 16 << 20, lockMode, percpuCache: true });
    expect(pool.percpuCache).toBe(true);
    const c = pool.classIndexFor(100);
    const hs = [pool.malloc(100), pool.malloc(100), pool.malloc(100)];
    // one refill reserved a batch; three of it are used
    expect(PerCpuCache.reserved(pool.pcpWords!, c)).toBe(PCP_BATCH - 3);
    const s = pool.stats();
    expect(s.objUsed).toBe(3);
    expect(s.bytesStored).toBe(300);
    expect(s.objAllocated).toBe(pool.table.objsPerZspage[c]);
    const row = pool.classStats().find((k) => k.index === c)!;
    expect(row.objUsed).toBe(3);
    expect(row.objAllocated - row.objUsed).toBe(pool.table.objsPerZspage[c]! - 3);
    expect(pool.classesText()).toMatch(new RegExp(` ${row.objAllocated} +3 +${row.pagesUsed} `));
    pool.verify();
    for (const h of hs) pool.free(h);
    expect(pool.stats()).toMatchObject({ objUsed: 0, bytesStored: 0 });
    expect(PerCpuCache.reserved(pool.pcpWords!, c)).toBe(PCP_BATCH);
    expect(pool.stats().pagesUsed).toBe(row.pagesUsed); // the cache keeps its zspage
    pool.verify();
    expect(pool.drainCaches()).toBe(PCP_BATCH);
    expect(pool.stats()).toMatchObject({ pagesUsed: 0, objAllocated: 0, objUsed: 0 });
    pool.verify();
  });

  it('serves mallocs the same objects, in the same order, as the locked path', () => {
    const a = ZsPool.create({ maxBytes: 16 << 20, lockMode });
    const b = ZsPool.create({ maxBytes: 16 << 20, lockMode, percpuCache: true });
    // one class: zspages are built in the same order, so locations match exactly
    for (let i = 0; i < 500; i++) {
      const ha = a.malloc(700);
      const hb = b.malloc(700);
      expect(hb).toBe(ha);
      expect(b.handles.words[hb]).toBe(a.handles.words[ha]);
    }
  });

  it('frees beyond a magazine flush half of it back to the zspages, and a double free fails', () => {
    const pool = ZsPool.create({ maxBytes: 16 << 20, lockMode, percpuCache: true });
    const c = pool.classIndexFor(200);
    const hs = Array.from({ length: 64 }, () => pool.malloc(200));
    for (const h of hs) pool.free(h);
    const r = PerCpuCache.reserved(pool.pcpWords!, c);
    expect(r).toBeGreaterThan(0);
    expect(r).toBeLessThanOrEqual(PCP_CAPACITY);
    expect(() => pool.free(hs[0]!)).toThrow(/not a live handle/);
    pool.verify();
  });

  it('compaction with live magazines leaves reserved objects alone; drained, it frees what the kernel path frees', () => {
    const plain = ZsPool.create({ maxBytes: 64 << 20, lockMode });
    const live = ZsPool.create({ maxBytes: 64 << 20, lockMode, percpuCache: true });
    const drained = ZsPool.create({ maxBytes: 64 << 20, lockMode, percpuCache: true });
    const livePlain = workload(plain, 7);
    const liveLive = workload(live, 7);
    const liveDrained = workload(drained, 7);
    expect([...liveLive.keys()]).toEqual([...livePlain.keys()]);
    // live magazines: compaction works around the zspages they pin, moves no reserved object
    const reserved = PerCpuCache.reserved(live.pcpWords!, live.classIndexFor(1000));
    live.compact();
    live.verify(); // every magazine entry still names a reserved object
    expect(PerCpuCache.reserved(live.pcpWords!, live.classIndexFor(1000))).toBe(reserved);
    checkLive(live, liveLive);
    expect(live.stats().objUsed).toBe(liveLive.size);
    // drained first (as the compaction worker does): the very pages the kernel path frees
    expect(drained.drainCaches()).toBeGreaterThan(0);
    expect(drained.stats()).toEqual(plain.stats());
    expect(drained.compactable()).toBe(plain.compactable());
    const freedPlain = plain.compact();
    expect(freedPlain).toBeGreaterThan(0);
    expect(drained.compact()).toBe(freedPlain);
    expect(drained.stats()).toEqual(plain.stats());
    // the pool compacted with live magazines ends in the same place once drained and compacted
    live.drainCaches();
    live.compact();
    expect(live.stats().pagesUsed).toBe(plain.stats().pagesUsed);
    for (const p of [plain, live, drained]) p.verify();
    checkLive(plain, livePlain);
    checkLive(live, liveLive);
    checkLive(drained, liveDrained);
  });

  it('a thread detaching gives its magazines back', () => {
    const pool = ZsPool.create({ maxBytes: 16 << 20, lockMode, percpuCache: true });
    const other = ZsPool.attach(pool.shared);
    const h = other.malloc(300);
    other.free(other.malloc(300));
    expect(PerCpuCache.reserved(pool.pcpWords!, pool.classIndexFor(300))).toBeGreaterThan(0);
    other.detach();
    expect(PerCpuCache.reserved(pool.pcpWords!, pool.classIndexFor(300))).toBe(0);
    expect(pool.stats().objUsed).toBe(1);
    pool.verify();
    pool.free(h); // into this CPU's magazine: the zspage stays until drained
    expect(pool.stats().objUsed).toBe(0);
    pool.drainCaches();
    expect(pool.stats().pagesUsed).toBe(0);
  });
});

describe.each<[LockMode, boolean]>([
  ['class', false],
  ['pool', false],
  ['class', true],
])('mallocWrite (lockMode %s, percpuCache %s)', (lockMode, percpuCache) => {
  it('allocates and fills objects of every size in one step, huge and frame-straddling ones included', () => {
    const pool = ZsPool.create({ maxBytes: 32 << 20, lockMode, percpuCache });
    const live: [number, Uint8Array][] = [];
    for (let size = 1; size <= PAGE_SIZE; size += 37) {
      const src = new Uint8Array(size);
      for (let k = 0; k < size; k++) src[k] = (size * 7 + k * 13) & 255;
      const h = pool.mallocWrite(src);
      expect(pool.objSize(h)).toBe(size);
      live.push([h, src]);
    }
    pool.verify();
    const out = new Uint8Array(PAGE_SIZE);
    for (const [h, src] of live) {
      expect(pool.read(h, out)).toBe(src.length);
      expect(Buffer.compare(out.subarray(0, src.length), src)).toBe(0);
    }
    expect(() => pool.mallocWrite(new Uint8Array(0))).toThrow(/positive/);
    expect(() => pool.mallocWrite(new Uint8Array(PAGE_SIZE + 1))).toThrow(/larger than a page/);
    expect(pool.stats().objUsed).toBe(live.length);
    for (const [h] of live) pool.free(h);
    pool.drainCaches();
    expect(pool.stats().pagesUsed).toBe(0);
  });
});
