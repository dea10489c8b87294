import { describe, expect, it } from 'vitest';
import { PAGE_SIZE, ZS_HANDLE_SIZE } from './constants.js';
import { ZsError } from './errors.js';
import { objToOffset, objToPfn } from './location.js';
import {
  MIGRATE_EBUSY,
  MIGRATE_GONE,
  MIGRATE_OK,
  compactFrames,
  isolateFrame,
  migrateFrame,
  migratePage,
  putbackFrame,
} from './migrate.js';
import { getNextPfn } from './page-desc.js';
import { ZsPool } from './pool.js';

function fill(buf: Uint8Array, h: number): void {
  for (let k = 0; k < buf.length; k++) buf[k] = (h * 13 + k * 5) & 255;
}
function check(pool: ZsPool, live: Map<number, number>): void {
  const out = new Uint8Array(PAGE_SIZE);
  for (const [h, size] of live) {
    expect(pool.read(h, out)).toBe(size);
    for (let k = 0; k < size; k++)
      if (out[k] !== ((h * 13 + k * 5) & 255)) throw new Error(`handle ${h} byte ${k} corrupted`);
  }
}
function framesOf(pool: ZsPool, kind: number): number[] {
  const map = pool.frameMap();
  const out: number[] = [];
  map.forEach((v, pfn) => {
    if (v === kind) out.push(pfn);
  });
  return out;
}

describe('page migration', () => {
  it('moves every zspage frame to a new frame and rewrites handles (normal and huge objects)', () => {
    for (const lockMode of ['class', 'pool'] as const) {
      const pool = ZsPool.create({ maxBytes: 16 << 20, lockMode });
      const live = new Map<number, number>();
      for (let i = 0; i < 2000; i++) {
        const size = 1 + (((i * 2654435761) >>> 0) % PAGE_SIZE);
        const h = pool.malloc(size);
        const b = new Uint8Array(size);
        fill(b, h);
        pool.write(h, b);
        live.set(h, size);
      }
      const frames = [...framesOf(pool, 1), ...framesOf(pool, 2)];
      expect(framesOf(pool, 2).length).toBeGreaterThan(0);
      let ok = 0;
      for (const pfn of frames) if (migratePage(pool, pfn) === MIGRATE_OK) ok++;
      expect(ok).toBe(frames.length);
      expect(pool.migrationStats().framesMigrated).toBe(frames.length);
      pool.verify();
      check(pool, live);
      expect(pool.stats().pagesUsed).toBe(frames.length); // every old frame went back to the buddy allocator
    }
  });

  it('fails with EBUSY, never waiting, while the zspage is mapped; retry succeeds after unmap', () => {
    const pool = ZsPool.create({ maxBytes: 4 << 20 });
    const h = pool.malloc(3000);
    const b = new Uint8Array(3000);
    fill(b, h);
    pool.write(h, b);
    const pfn = framesOf(pool, 1)[0]!;
    pool.map(h, 'ro');
    expect(migratePage(pool, pfn)).toBe(MIGRATE_EBUSY);
    expect(pool.migrationStats().failedBusy).toBe(1);
    pool.unmap(h);
    pool.verify(); // putback left nothing isolated
    expect(migratePage(pool, pfn)).toBe(MIGRATE_OK);
    check(pool, new Map([[h, 3000]]));
    pool.verify();
  });

  it('handles a zspage freed while one of its frames is isolated (the frame is freed, not leaked)', () => {
    const pool = ZsPool.create({ maxBytes: 4 << 20 });
    const hs = Array.from({ length: 3 }, () => pool.malloc(1500)); // one multi-page zspage
    const frames = framesOf(pool, 1);
    expect(frames.length).toBeGreaterThan(1);
    expect(isolateFrame(pool, frames[1]!)).toBe(true);
    expect(isolateFrame(pool, frames[1]!)).toBe(false); // already isolated
    pool.verify();
    for (const h of hs) pool.free(h); // the zspage dies with a frame isolated
    expect(pool.frameMap()[frames[1]!]).toBe(3); // orphan: isolated, no zspage
    pool.verify();
    expect(migrateFrame(pool, frames[1]!, -1)).toBe(MIGRATE_GONE);
    expect(pool.frameMap()[frames[1]!]).toBe(0);
    pool.verify();
    expect(pool.stats().pagesUsed).toBe(0);
  });

  it('puts back an isolated frame whose zspage is still alive, and frees an orphan on putback', () => {
    const pool = ZsPool.create({ maxBytes: 4 << 20 });
    const a = pool.malloc(100);
    const pfn = framesOf(pool, 1)[0]!;
    expect(isolateFrame(pool, pfn)).toBe(true);
    putbackFrame(pool, pfn);
    expect(pool.frameMap()[pfn]).toBe(1);
    expect(isolateFrame(pool, pfn)).toBe(true);
    pool.free(a);
    putbackFrame(pool, pfn);
    expect(pool.frameMap()[pfn]).toBe(0);
    pool.verify();
  });
});

describe('frame compaction and high-order allocations', () => {
  it("reproduces the seeds' scenario: order-3 fails with many free frames, frame compaction makes it succeed", () => {
    const pool = ZsPool.create({ maxBytes: 8 << 20 });
    const live = new Map<number, number>();
    // Fill all of memory with one-page zspages (2048-byte class: 2 objects per page).
    for (;;) {
      let h: number;
      try {
        h = pool.malloc(2040);
      } catch (e) {
        expect((e as ZsError).code).toBe('ENOMEM');
        break;
      }
      const b = new Uint8Array(2040);
      fill(b, h);
      pool.write(h, b);
      live.set(h, 2040);
    }
    // Free both objects of every other page: free frames alternate with used ones.
    const pages = new Map<number, number[]>();
    for (const h of live.keys()) {
      const pfn = objToPfn(pool.handles.words[h]!);
      pages.set(pfn, [...(pages.get(pfn) ?? []), h]);
    }
    for (const [pfn, hs] of pages)
      if (pfn % 2 === 0)
        for (const h of hs) {
          pool.free(h);
          live.delete(h);
        }
    pool.verify();
    const before = pool.buddyinfo();
    const freeFrames = before.reduce((a, n, o) => a + (n << o), 0);
    expect(freeFrames).toBeGreaterThan(900);
    expect(before.slice(3).every((n) => n === 0)).toBe(true);
    expect(pool.phys.allocBlock(3, false)).toBe(-1); // no order-3 block without compaction
    const migratedBefore = pool.migrationStats().framesMigrated;
    const pfn = pool.allocPages(3); // compacts frames, then succeeds
    const after = pool.buddyinfo();
    const migrated = pool.migrationStats().framesMigrated - migratedBefore;
    console.log(
      `seeds' scenario: buddyinfo before ${before.join(' ')}; after allocPages(3) ${after.join(' ')}; frames migrated ${migrated}`,
    );
    expect(pfn % 8).toBe(0);
    expect(migrated).toBeGreaterThan(0);
    expect(pool.migrationStats().compactSuccess).toBe(1);
    pool.verify();
    check(pool, live);
    // a full compaction run raises the high-order counts further
    compactFrames(pool, 10);
    const full = pool.buddyinfo();
    console.log(
      `seeds' scenario: buddyinfo after a full frame compaction ${full.join(' ')}; frames migrated in all ${pool.migrationStats().framesMigrated}`,
    );
    expect(full.slice(3).reduce((a, b) => a + b, 0)).toBeGreaterThan(after.slice(3).reduce((a, b) => a + b, 0));
    const idx = pool.unusableIndex();
    expect(idx[0]).toBe(0);
    pool.freePages(pfn, 3);
    pool.verify();
    check(pool, live);
  });

  it('rejects bad allocPages / freePages calls with EINVAL and changes nothing', () => {
    const pool = ZsPool.create({ maxBytes: 1 << 20 });
    const pfn = pool.allocPages(2);
    expect(() => pool.allocPages(11)).toThrow(ZsError);
    expect(() => pool.freePages(pfn, 1)).toThrow(ZsError);
    expect(() => pool.freePages(pfn + 1, 2)).toThrow(ZsError);
    expect(() => pool.freePages(-1, 0)).toThrow(ZsError);
    pool.verify();
    pool.freePages(pfn, 2);
    expect(() => pool.freePages(pfn, 2)).toThrow(ZsError); // double free
    pool.verify();
  });

  it('fails allocPages with ENOMEM when memory is truly full', () => {
    const pool = ZsPool.create({ maxBytes: 64 * PAGE_SIZE });
    for (;;) {
      try {
        pool.malloc(4000);
      } catch {
        break;
      }
    }
    expect(() => pool.allocPages(0)).toThrow(/ENOMEM/);
    pool.verify();
  });

  it('uses the movable-only region for zspages and keeps unmovable blocks out of it', () => {
    const pool = ZsPool.create({ maxBytes: 8 << 20, cmaBytes: 4 << 20 });
    const cmaEnd = (4 << 20) / PAGE_SIZE;
    for (let i = 0; i < 500; i++) pool.malloc(4000);
    const zsFrames = [...framesOf(pool, 2)];
    expect(zsFrames.every((p) => p < cmaEnd)).toBe(true);
    const blocks = Array.from({ length: 8 }, () => pool.allocPages(3));
    expect(blocks.every((p) => p >= cmaEnd)).toBe(true);
    pool.verify();
  });
});

describe('migration interleaved with allocator traffic', () => {
  it('keeps every object intact when frames migrate between random malloc / write / read / free', () => {
    const pool = ZsPool.create({ maxBytes: 32 << 20 });
    let s = 7;
    const rnd = () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s;
    };
    const live = new Map<number, [number, number]>();
    const hs: number[] = [];
    const buf = new Uint8Array(PAGE_SIZE);
    const byteAt = (h: number, v: number, k: number) => (h * 31 + v * 17 + k * 7) & 255;
    let pfn = 0;
    let migrated = 0;
    for (let i = 0; i < 30000; i++) {
      const r = rnd() % 100;
      if (r < 40 || hs.length < 50) {
        const size = 1 + (rnd() % PAGE_SIZE);
        const h = pool.malloc(size);
        const v = rnd() & 0xffff;
        for (let k = 0; k < size; k++) buf[k] = byteAt(h, v, k);
        pool.write(h, buf.subarray(0, size));
        live.set(h, [size, v]);
        hs.push(h);
      } else if (r < 70) {
        const h = hs[rnd() % hs.length]!;
        const [size, v] = live.get(h)!;
        pool.read(h, buf);
        for (let k = 0; k < size; k++)
          if (buf[k] !== byteAt(h, v, k)) throw new Error(`op ${i}: handle ${h} byte ${k} corrupted`);
      } else {
        const j = rnd() % hs.length;
        const h = hs[j]!;
        hs[j] = hs[hs.length - 1]!;
        hs.pop();
        live.delete(h);
        pool.free(h);
      }
      if (i % 10 === 0) {
        const present = pool.phys.presentFrames;
        for (let k = 0; k < 8; k++) {
          pfn = (pfn + 1) % present;
          if (pool.frameMap()[pfn] === 1 || pool.frameMap()[pfn] === 2) {
            if (migratePage(pool, pfn) === MIGRATE_OK) migrated++;
          }
        }
      }
    }
    expect(migrated).toBeGreaterThan(1000);
    pool.verify();
  });
});

describe('objects that cross a frame boundary', () => {
  it('are written and read whole whether the next frame of their chain follows in memory or lies elsewhere', () => {
    const pool = ZsPool.create({ maxBytes: 16 << 20 });
    const size = 3000; // its zspages hold objects that cross from one frame into the next
    const hs = Array.from({ length: 64 }, () => pool.malloc(size));
    const firstPfn = (h: number) => objToPfn(pool.handles.words[h]!);
    const crosses = (h: number) => objToOffset(pool.handles.words[h]!) + ZS_HANDLE_SIZE + size > PAGE_SIZE;
    const adjacent = (h: number) => getNextPfn(pool.phys.fd, firstPfn(h)) === firstPfn(h) + 1;
    const put = (round: number) => {
      for (const h of hs) {
        const b = new Uint8Array(size);
        for (let k = 0; k < size; k++) b[k] = (h * 7 + k * 3 + round) & 255;
        pool.write(h, b);
      }
    };
    const check = (round: number) => {
      const out = new Uint8Array(PAGE_SIZE);
      for (const h of hs) {
        expect(pool.read(h, out)).toBe(size);
        for (let k = 0; k < size; k++)
          if (out[k] !== ((h * 7 + k * 3 + round) & 255)) throw new Error(`handle ${h} byte ${k} differs`);
      }
    };
    put(0);
    check(0);
    // a frame an object crosses into moves elsewhere, in every other zspage (a zspage's
    // middle frame is crossed into and out of), so both kinds of crossing stay
    const moved = new Set<number>();
    hs.filter(crosses).forEach((h, i) => {
      const next = getNextPfn(pool.phys.fd, firstPfn(h));
      if (i % 4 === 0 && !moved.has(next) && migratePage(pool, next) === MIGRATE_OK) moved.add(next);
    });
    expect(moved.size).toBeGreaterThan(0);
    check(0); // read back across the moved frames
    put(1); // and written across them
    check(1);
    const crossing = hs.filter(crosses);
    expect(crossing.filter(adjacent).length).toBeGreaterThan(0);
    expect(crossing.filter((h) => !adjacent(h)).length).toBeGreaterThan(0);
    pool.verify();
  });
});
