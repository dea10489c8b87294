import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PAGE_SIZE } from './constants.js';
import { ZsError } from './errors.js';
import { objToPfn } from './location.js';
import { FD_WORDS, FD_ZSPAGE } from './phys-mem.js';
import { ZsPool, type LockMode } from './pool.js';

/** The zspage holding a handle's object (test-only peek at the location word). */
function zspageOf(pool: ZsPool, h: number): number {
  const pfn = objToPfn(pool.handles.words[h]!);
  return pool.phys.fd[pfn * FD_WORDS + FD_ZSPAGE]!;
}

function fill(buf: Uint8Array, h: number, seed: number): void {
  for (let k = 0; k < buf.length; k++) buf[k] = (h * 31 + seed + k * 7) & 255;
}
function matches(buf: Uint8Array, h: number, seed: number): boolean {
  for (let k = 0; k < buf.length; k++) if (buf[k] !== ((h * 31 + seed + k * 7) & 255)) return false;
  return true;
}
function expectZsError(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ZsError);
    expect((e as ZsError).code).toBe(code);
    return;
  }
  throw new Error(`expected ZsError ${code}`);
}

describe.each<LockMode>(['class', 'pool'])('ZsPool (lockMode %s)', (lockMode) => {
  it('stores, reads back and frees objects of every size from 1 to 4096 bytes', () => {
    const pool = ZsPool.create({ maxBytes: 32 << 20, lockMode });
    const live: [number, number][] = [];
    for (let size = 1; size <= PAGE_SIZE; size += 13) {
      const h = pool.malloc(size);
      expect(h).toBeGreaterThan(0);
      expect(pool.objSize(h)).toBe(size);
      const b = new Uint8Array(size);
      fill(b, h, size);
      pool.write(h, b);
      live.push([h, size]);
    }
    pool.verify();
    const out = new Uint8Array(PAGE_SIZE);
    for (const [h, size] of live) {
      expect(pool.read(h, out)).toBe(size);
      expect(matches(out.subarray(0, size), h, size)).toBe(true);
    }
    for (const [h] of live) pool.free(h);
    pool.verify();
    expect(pool.stats()).toMatchObject({ pagesUsed: 0, objUsed: 0, objAllocated: 0, bytesStored: 0 });
  });

  it('rejects bad requests with typed errors and changes nothing', () => {
    const pool = ZsPool.create({ maxBytes: 1 << 20, lockMode });
    const h = pool.malloc(100);
    const before = pool.stats();
    expectZsError(() => pool.malloc(0), 'EINVAL');
    expectZsError(() => pool.malloc(-5), 'EINVAL');
    expectZsError(() => pool.malloc(1.5), 'EINVAL');
    expectZsError(() => pool.malloc(PAGE_SIZE + 1), 'ENOSPC');
    expectZsError(() => pool.free(0), 'EINVAL');
    expectZsError(() => pool.free(h + 12345), 'EINVAL');
    expectZsError(() => pool.free(Number.NaN), 'EINVAL');
    expectZsError(() => pool.read(h + 1, new Uint8Array(10)), 'EINVAL');
    expectZsError(() => pool.write(h, new Uint8Array(101)), 'EINVAL');
    expectZsError(() => pool.read(h, new Uint8Array(99)), 'EINVAL');
    expectZsError(() => pool.unmap(h), 'EINVAL');
    pool.free(h);
    expectZsError(() => pool.free(h), 'EINVAL'); // double free
    expectZsError(() => pool.objSize(h), 'EINVAL');
    expect(pool.stats().objUsed).toBe(before.objUsed - 1);
    pool.verify();
  });

  it('refuses to free a dead handle whose word was made to name a live object, and keeps that object', () => {
    const pool = ZsPool.create({ maxBytes: 1 << 20, lockMode });
    const live = pool.malloc(300);
    const b = new Uint8Array(300);
    fill(b, live, 9);
    pool.write(live, b);
    const dead = pool.malloc(300);
    pool.free(dead);
    // damage: the dead handle's word names the live object (its header names `live`)
    pool.handles.words[dead] = pool.handles.words[live]!;
    const before = pool.stats();
    expectZsError(() => pool.free(dead), 'EINVAL');
    pool.handles.words[dead] = -1;
    expect(pool.stats()).toEqual(before);
    expect(pool.read(live, b)).toBe(300);
    expect(matches(b, live, 9)).toBe(true);
    pool.verify();
  });

  it('objSizeUnlocked agrees with objSize for live objects, also after compaction moved them, and is -1 for none', () => {
    const pool = ZsPool.create({ maxBytes: 8 << 20, lockMode });
    const sizes = new Map<number, number>();
    for (let i = 0; i < 600; i++) {
      const size = 16 + ((i * 397) % (PAGE_SIZE - 16));
      sizes.set(pool.malloc(size), size);
    }
    let k = 0;
    for (const h of [...sizes.keys()])
      if (k++ % 3 !== 0) {
        pool.free(h);
        expect(pool.objSizeUnlocked(h)).toBe(-1);
        sizes.delete(h);
      }
    expect(pool.compact()).toBeGreaterThan(0);
    for (const [h, size] of sizes) {
      expect(pool.objSizeUnlocked(h)).toBe(size);
      expect(pool.objSize(h)).toBe(size);
    }
    for (const bad of [0, -1, 1.5, Number.NaN, 1 << 30]) expect(pool.objSizeUnlocked(bad)).toBe(-1);
  });

  it('fails with ENOMEM when the pool is full, keeps everything stored, and recovers after frees', () => {
    const pool = ZsPool.create({ maxBytes: 64 * PAGE_SIZE, lockMode });
    const hs: number[] = [];
    const b = new Uint8Array(1000);
    for (;;) {
      let h: number;
      try {
        h = pool.malloc(1000);
      } catch (e) {
        expect((e as ZsError).code).toBe('ENOMEM');
        break;
      }
      fill(b, h, 1);
      pool.write(h, b);
      hs.push(h);
    }
    expect(hs.length).toBeGreaterThan(100);
    const stats = pool.stats();
    expectZsError(() => pool.malloc(3000), 'ENOMEM');
    expect(pool.stats()).toEqual(stats);
    pool.verify();
    const out = new Uint8Array(1000);
    for (const h of hs) {
      pool.read(h, out);
      expect(matches(out, h, 1)).toBe(true);
    }
    for (const h of hs.splice(0, 10)) pool.free(h);
    pool.malloc(1000);
    pool.verify();
  });

  it('maps objects: ro does not write back, wo does not fill, rw does both, also across frames', () => {
    const pool = ZsPool.create({ maxBytes: 4 << 20, lockMode });
    // 7 objects of 1000 bytes (class 1008+) span frame boundaries in a multi-page zspage
    const hs = Array.from({ length: 12 }, () => pool.malloc(1000));
    const b = new Uint8Array(1000);
    for (const h of hs) {
      fill(b, h, 2);
      pool.write(h, b);
    }
    for (const h of hs) {
      const ro = pool.map(h, 'ro');
      expect(ro.length).toBe(1000);
      expect(matches(ro, h, 2)).toBe(true);
      ro[0] = ro[0]! ^ 0xff;
      // a mapping inside one frame is the frame itself; a straddling one is a copy
      pool.unmap(h);
      const rw = pool.map(h, 'rw');
      const direct = rw[0] !== ((h * 31 + 2) & 255);
      rw[0] = (h * 31 + 2) & 255; // restore if the ro write went straight to the frame
      rw[1] = 0xaa;
      pool.unmap(h);
      const out = new Uint8Array(1000);
      pool.read(h, out);
      expect(out[1]).toBe(0xaa);
      out[1] = (h * 31 + 2 + 7) & 255;
      expect(matches(out, h, 2)).toBe(true);
      void direct;
      const wo = pool.map(h, 'wo');
      wo.set(b.map((_, k) => (k * 3) & 255));
      pool.unmap(h);
      pool.read(h, out);
      for (let k = 0; k < 1000; k++) expect(out[k]).toBe((k * 3) & 255);
    }
    pool.verify();
  });

  it('allows one mapping per thread (no nesting), as the per-CPU mapping area', () => {
    const pool = ZsPool.create({ maxBytes: 1 << 20, lockMode });
    const a = pool.malloc(10);
    const b = pool.malloc(10);
    pool.map(a, 'ro');
    expectZsError(() => pool.map(b, 'ro'), 'EBUSY');
    expectZsError(() => pool.unmap(b), 'EINVAL');
    pool.unmap(a);
    pool.map(b, 'rw');
    pool.unmap(b);
    pool.verify();
  });

  it('keeps huge objects (one per page, no header) and counts them', () => {
    const pool = ZsPool.create({ maxBytes: 1 << 20, lockMode });
    expect(pool.hugeClassSize).toBe(3632);
    const h = pool.malloc(4096);
    const b = new Uint8Array(4096);
    fill(b, h, 9);
    pool.write(h, b);
    const m = pool.map(h, 'ro');
    expect(m.length).toBe(4096);
    expect(matches(m, h, 9)).toBe(true);
    pool.unmap(h);
    expect(pool.stats().pagesUsed).toBe(1);
    pool.verify();
    pool.free(h);
    expect(pool.stats().pagesUsed).toBe(0);
  });

  it('allocates from the fullest non-full zspage', () => {
    const pool = ZsPool.create({ maxBytes: 4 << 20, lockMode });
    // 1016 + 8 = 1024: one page, 4 objects. Two full zspages A and B; free one object
    // of A (75%) and then two of B (50%): B was touched last, A is fuller.
    const a = [0, 1, 2, 3].map(() => pool.malloc(1016));
    const b = [0, 1, 2, 3].map(() => pool.malloc(1016));
    const zsA = zspageOf(pool, a[0]!);
    const zsB = zspageOf(pool, b[0]!);
    expect(zsA).not.toBe(zsB);
    for (const h of a) expect(zspageOf(pool, h)).toBe(zsA);
    for (const h of b) expect(zspageOf(pool, h)).toBe(zsB);
    pool.free(a[0]!);
    pool.free(b[0]!);
    pool.free(b[1]!);
    const e = pool.malloc(1016);
    expect(zspageOf(pool, e)).toBe(zsA); // the fuller one, not the last touched
    const f = pool.malloc(1016);
    expect(zspageOf(pool, f)).toBe(zsB); // A is full now
    const g = pool.malloc(1016);
    expect(zspageOf(pool, g)).toBe(zsB);
    expect(pool.stats().pagesUsed).toBe(2);
    for (const h of [a[1]!, a[2]!, a[3]!, b[2]!, b[3]!, e, f, g]) pool.free(h);
    expect(pool.stats().pagesUsed).toBe(0);
    pool.verify();
  });

  it('prints the debugfs classes table and the /proc/lock_stat layout', () => {
    const pool = ZsPool.create({ maxBytes: 4 << 20, lockMode, lockStat: true });
    for (let i = 0; i < 100; i++) pool.malloc(100 + i * 30);
    const text = pool.classesText();
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^ class {2}size +10% +20% .* 99% +100% obj_allocated +obj_used pages_used pages_per_zspage freeable$/,
    );
    expect(lines.at(-1)).toMatch(/^ Total /);
    expect(lines.length).toBe(pool.table.distinct.length + 2);
    const ls = pool.lockStatText();
    expect(ls.startsWith('lock_stat version 0.4\n')).toBe(true);
    expect(ls).toMatch(
      /class name +con-bounces +contentions +waittime-min +waittime-max +waittime-total +waittime-avg +acq-bounces +acquisitions +holdtime-min +holdtime-max +holdtime-total +holdtime-avg/,
    );
    const stats = pool.lockStats();
    const classLock = stats.find((s) => s.name === (lockMode === 'class' ? '&class->lock' : '&pool->lock'))!;
    expect(classLock.acquisitions).toBeGreaterThanOrEqual(100);
  });
});

describe('compaction', () => {
  it('frees the pages zs_can_compact predicts and keeps every object intact', () => {
    for (const lockMode of ['class', 'pool'] as const) {
      const pool = ZsPool.create({ maxBytes: 64 << 20, lockMode });
      const live = new Map<number, number>();
      const b = new Uint8Array(PAGE_SIZE);
      let seed = 1;
      const rnd = () => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed;
      };
      for (let i = 0; i < 20000; i++) {
        const size = 64 + (rnd() % 3000);
        const h = pool.malloc(size);
        const v = b.subarray(0, size);
        fill(v, h, 5);
        pool.write(h, v);
        live.set(h, size);
      }
      for (const h of [...live.keys()])
        if (rnd() % 10 < 6) {
          pool.free(h);
          live.delete(h);
        }
      pool.verify();
      const predicted = pool.compactable();
      expect(predicted).toBeGreaterThan(0);
      const freed = pool.compact();
      expect(freed).toBe(predicted);
      expect(pool.stats().pagesCompacted).toBe(freed);
      expect(pool.compactable()).toBe(0);
      pool.verify();
      for (const [h, size] of live) {
        const v = b.subarray(0, size);
        expect(pool.read(h, v)).toBe(size);
        expect(matches(v, h, 5)).toBe(true);
      }
      expect(pool.migrationStats().objectsMoved).toBeGreaterThan(0);
    }
  });

  it('stops compacting a class whose source zspage is mapped (writer only trylocks)', () => {
    const pool = ZsPool.create({ maxBytes: 8 << 20 });
    // 504 + 8 = 512: one page, 8 objects. Five full zspages; keep 1 object in the
    // first (12%: the emptiest, compaction's first source) and 4 in each other (50%).
    const hs = Array.from({ length: 40 }, () => pool.malloc(504));
    const zs = hs.map((h) => zspageOf(pool, h));
    expect(new Set(zs).size).toBe(5);
    const keep = hs.filter((_, i) => (i < 8 ? i === 0 : i % 8 < 4));
    for (const h of hs) if (!keep.includes(h)) pool.free(h);
    const before = pool.compactable();
    expect(before).toBe(2); // 40 allocated, 17 used: two pages' worth of free objects
    const used = pool.stats().pagesUsed;
    pool.map(keep[0]!, 'ro'); // read-locks the emptiest zspage
    expect(pool.compact()).toBe(0); // its trylock fails: the class stops at once
    expect(pool.compactable()).toBe(before);
    expect(pool.stats().pagesUsed).toBe(used);
    expect(pool.migrationStats().objectsMoved).toBe(0);
    expect(zspageOf(pool, keep[0]!)).toBe(zs[0]);
    pool.unmap(keep[0]!);
    pool.verify();
    expect(pool.compact()).toBe(before); // unmapped, the same class compacts fully
    expect(pool.compactable()).toBe(0);
    expect(pool.stats().pagesUsed).toBe(used - before);
    pool.verify();
  });

  it("runs the seeds' experiment: used ratio rises after compaction (goal >= 95%)", () => {
    const pool = ZsPool.create({ maxBytes: 512 << 20 });
    let seed = 42;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const hs: number[] = [];
    const b = new Uint8Array(PAGE_SIZE);
    // compressed-page-like sizes: mostly 200..3000 bytes
    for (let i = 0; i < 160000; i++) {
      const size = Math.max(32, Math.min(3400, Math.round(1400 + 700 * (rnd() + rnd() + rnd() - 1.5) * 1.6)));
      const h = pool.malloc(size);
      pool.write(h, b.subarray(0, size));
      hs.push(h);
    }
    for (const h of hs) if (rnd() < 0.6) pool.free(h);
    const s1 = pool.stats();
    const before = s1.bytesStored / (s1.pagesUsed * PAGE_SIZE);
    pool.compact();
    const s2 = pool.stats();
    const after = s2.bytesStored / (s2.pagesUsed * PAGE_SIZE);
    console.log(
      `seeds' experiment: bytes stored ${s1.bytesStored}, used ${s1.pagesUsed * PAGE_SIZE} -> ${s2.pagesUsed * PAGE_SIZE} bytes; used ratio ${(before * 100).toFixed(2)}% -> ${(after * 100).toFixed(2)}%, pages compacted ${s2.pagesCompacted}`,
    );
    expect(after).toBeGreaterThan(before);
    expect(after).toBeGreaterThanOrEqual(0.95);
    pool.verify();
  });
});

describe('random operation sequences against a plain model (fast-check)', () => {
  type Op =
    | { t: 'malloc'; size: number }
    | { t: 'free'; pick: number }
    | { t: 'write'; pick: number; seed: number }
    | { t: 'compact' }
    | { t: 'map'; pick: number };
  const op = fc.oneof(
    {
      arbitrary: fc.record({ t: fc.constant('malloc' as const), size: fc.integer({ min: 1, max: PAGE_SIZE }) }),
      weight: 5,
    },
    { arbitrary: fc.record({ t: fc.constant('free' as const), pick: fc.nat() }), weight: 3 },
    { arbitrary: fc.record({ t: fc.constant('write' as const), pick: fc.nat(), seed: fc.nat(255) }), weight: 2 },
    { arbitrary: fc.record({ t: fc.constant('map' as const), pick: fc.nat() }), weight: 1 },
    { arbitrary: fc.constant({ t: 'compact' as const }), weight: 1 },
  );

  it.each<[LockMode, boolean]>([
    ['class', false],
    ['pool', false],
    ['class', true],
    ['pool', true],
  ])('matches a Map of handle to bytes (lockMode %s, percpuCache %s)', (lockMode, percpuCache) => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), fc.integer({ min: 4, max: 16 }), (ops: Op[], chainSize) => {
        const pool = ZsPool.create({ maxBytes: 2 << 20, chainSize, lockMode, percpuCache });
        const model = new Map<number, Uint8Array>();
        const keys = () => [...model.keys()];
        for (const o of ops) {
          if (o.t === 'malloc') {
            let h: number;
            try {
              h = pool.malloc(o.size);
            } catch (e) {
              expect((e as ZsError).code).toBe('ENOMEM');
              continue;
            }
            expect(model.has(h)).toBe(false);
            const b = new Uint8Array(o.size);
            fill(b, h, o.size & 255);
            pool.write(h, b);
            model.set(h, b);
          } else if (o.t === 'free') {
            const k = keys();
            if (k.length === 0) {
              expect(() => pool.free(1)).toThrow(ZsError);
              continue;
            }
            const h = k[o.pick % k.length]!;
            pool.free(h);
            model.delete(h);
            expect(() => pool.free(h)).toThrow(ZsError);
          } else if (o.t === 'write') {
            const k = keys();
            if (k.length === 0) continue;
            const h = k[o.pick % k.length]!;
            const b = model.get(h)!;
            fill(b, h, o.seed);
            pool.write(h, b);
          } else if (o.t === 'map') {
            const k = keys();
            if (k.length === 0) continue;
            const h = k[o.pick % k.length]!;
            const m = pool.map(h, 'ro');
            expect(Buffer.compare(Buffer.from(m), Buffer.from(model.get(h)!))).toBe(0);
            pool.unmap(h);
          } else if (percpuCache) {
            // compaction with live magazines keeps them; drained, it reaches the kernel's figure
            pool.compact();
            pool.verify();
            pool.drainCaches();
            pool.compact();
            expect(pool.compactable()).toBe(0);
          } else {
            pool.compact();
            expect(pool.compactable()).toBe(0);
          }
        }
        pool.verify();
        for (const [h, b] of model) {
          const out = new Uint8Array(b.length);
          expect(pool.read(h, out)).toBe(b.length);
          expect(Buffer.compare(Buffer.from(out), Buffer.from(b))).toBe(0);
        }
        const s = pool.stats();
        expect(s.objUsed).toBe(model.size);
        expect(s.bytesStored).toBe([...model.values()].reduce((a, b) => a + b.length, 0));
      }),
      { numRuns: 60 },
    );
  });
});
