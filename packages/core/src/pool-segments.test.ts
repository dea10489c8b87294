// Physical memory in several segments, inside a small pool. A pool past 4 GiB keeps
// its frames in segments of 4 GiB, one growable SharedArrayBuffer each; the
// `segmentBytes` testing knob makes them 4 MiB here, so a 32 MiB pool has eight, and
// the buddy allocator, zspages whose frames lie in two segments, objects that cross
// from one segment into the next, compaction and migration all meet segment
// boundaries without a large pool.

import { describe, expect, it } from 'vitest';
import { MAX_ORDER, PAGE_SIZE } from './constants.js';
import { objToOffset, objToPfn } from './location.js';
import { MIGRATE_OK, compactFrames, isolateFrame, migrateFrame } from './migrate.js';
import { getNextPfn, getZspageOf } from './page-desc.js';
import { SEGMENT_MIN_BYTES } from './phys-mem.js';
import { ZsPool } from './pool.js';
import { holds, pattern } from './testing.js';
import { ZD_FIRST, ZD_WORDS } from './zspage.js';

const MiB = 2 ** 20;
const SEG = 4 * MiB;
const SEG_FRAMES = SEG / PAGE_SIZE;

const segOf = (pfn: number): number => Math.floor(pfn / SEG_FRAMES);
const pfnOf = (pool: ZsPool, h: number): number => objToPfn(pool.handles.words[h]!);

/** The chain of frames of the zspage holding handle h's object. */
function chainOf(pool: ZsPool, h: number): number[] {
  const zs = getZspageOf(pool.phys.fd, pfnOf(pool, h));
  const out: number[] = [];
  for (let p = pool.zd[zs * ZD_WORDS + ZD_FIRST]!; p >= 0; p = getNextPfn(pool.phys.fd, p)) out.push(p);
  return out;
}

/** Does h's object start in one segment and end in the next frame of its chain, in another segment? */
function crossesSegments(pool: ZsPool, h: number, len: number): boolean {
  const loc = pool.handles.words[h]!;
  const pfn = objToPfn(loc);
  if (objToOffset(loc) + 8 + len <= PAGE_SIZE) return false;
  return segOf(getNextPfn(pool.phys.fd, pfn)) !== segOf(pfn);
}

/** Fills a pool with objects of 3000 B (crossing frames) and a few other sizes until memory spans `segments` segments. */
function fill(pool: ZsPool, segments: number): Map<number, Uint8Array> {
  const sizes = [3000, 3000, 3000, 40, 200, 1000, 4096];
  const live = new Map<number, Uint8Array>();
  for (let i = 0; pool.phys.presentFrames < segments * SEG_FRAMES; i++) {
    const data = pattern(sizes[i % sizes.length]!, i);
    live.set(pool.mallocWrite(data), data);
  }
  return live;
}

describe('a pool in several segments (segmentBytes, the testing knob)', () => {
  it('reserves every segment at creation and grows each only as the buddy allocator hands out its frames', () => {
    const pool = ZsPool.create({ maxBytes: 8 * SEG + 64 * PAGE_SIZE, segmentBytes: SEG, name: 'segs' });
    const segs = pool.shared.phys.segments;
    expect(segs.length).toBe(9); // eight whole segments and a short one
    expect(segs[8]!.maxByteLength).toBe(64 * PAGE_SIZE);
    expect(segs.every((s) => s.byteLength === 0)).toBe(true);
    const a = pool.allocPages(MAX_ORDER);
    const b = pool.allocPages(MAX_ORDER);
    const c = pool.allocPages(MAX_ORDER - 1);
    expect([a, b, c]).toEqual([0, SEG_FRAMES, 2 * SEG_FRAMES]); // a max-order block is a whole segment
    expect(segs.map((s) => s.byteLength)).toEqual([SEG, SEG, SEG, 0, 0, 0, 0, 0, 0]);
    // buddyinfo counts the free half of segment 2 (one order MAX_ORDER - 1 block)
    expect(pool.buddyinfo()[MAX_ORDER - 1]).toBe(1);
    // freed blocks merge within their segment, never across (a segment is one max-order block here)
    pool.freePages(b, MAX_ORDER);
    pool.freePages(c, MAX_ORDER - 1);
    const info = pool.buddyinfo();
    expect(info[MAX_ORDER]).toBe(2);
    expect(info.slice(0, MAX_ORDER).every((n) => n === 0)).toBe(true);
    pool.verify();
    // the whole pool: eight segments and the short tail, then ENOMEM
    const blocks = [a];
    for (let i = 0; i < 7; i++) blocks.push(pool.allocPages(MAX_ORDER));
    expect(blocks.map(segOf).sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const tail = pool.allocPages(6);
    expect(segOf(tail)).toBe(8);
    expect(segs[8]!.byteLength).toBe(64 * PAGE_SIZE);
    expect(() => pool.allocPages(0)).toThrow(/ENOMEM|out of memory/);
    for (const p of blocks) pool.freePages(p, MAX_ORDER);
    pool.freePages(tail, 6);
    expect(pool.buddyinfo()[MAX_ORDER]).toBe(8);
    pool.verify();
  });

  it('stores objects whose zspages span segments and objects that cross a segment boundary; every thread sees them', () => {
    const pool = ZsPool.create({ maxBytes: 8 * SEG, segmentBytes: SEG, name: 'segs' });
    const other = ZsPool.attach(pool.shared); // attached before memory grows: its views must follow
    const live = fill(pool, 4);
    const spanning = [...live.keys()].filter((h) => new Set(chainOf(pool, h).map(segOf)).size > 1);
    expect(spanning.length).toBeGreaterThan(0);
    const crossing = [...live].filter(([h, d]) => crossesSegments(pool, h, d.length));
    expect(crossing.length).toBeGreaterThan(0);
    for (const [h, data] of live) {
      expect(holds(pool, h, data)).toBe(true);
      expect(holds(other, h, data)).toBe(true);
    }
    // map a crossing object: read through the copy, written back across the boundary
    const [h, d] = crossing[0]!;
    const ro = pool.map(h, 'ro');
    expect(Buffer.from(ro).equals(d)).toBe(true);
    pool.unmap(h);
    const d2 = pattern(d.length, 777);
    pool.map(h, 'wo').set(d2);
    pool.unmap(h);
    live.set(h, d2);
    expect(holds(other, h, d2)).toBe(true);
    // written by the other thread's object, across the boundary, read by the first
    const [h3, d3] = crossing[crossing.length - 1]!;
    const d3b = pattern(d3.length, 4242);
    other.write(h3, d3b);
    live.set(h3, d3b);
    expect(holds(pool, h3, d3b)).toBe(true);
    pool.verify();
    other.detach();
  });

  it('compacts objects from zspages in one segment into zspages in another', () => {
    const pool = ZsPool.create({ maxBytes: 8 * SEG, segmentBytes: SEG, name: 'segs' });
    const live = fill(pool, 5);
    const before = new Map<number, number>();
    for (const h of live.keys()) before.set(h, pfnOf(pool, h));
    let k = 0;
    for (const h of [...live.keys()])
      if (k++ % 4 !== 0) {
        pool.free(h);
        live.delete(h);
      }
    const freed = pool.compact();
    expect(freed).toBeGreaterThan(0);
    let movedAcross = 0;
    for (const [h, data] of live) {
      expect(holds(pool, h, data)).toBe(true);
      if (segOf(pfnOf(pool, h)) !== segOf(before.get(h)!)) movedAcross++;
    }
    expect(movedAcross).toBeGreaterThan(0);
    pool.verify();
  });

  it('migrates frames across segment boundaries: one by one, and by the frame compactor', () => {
    const pool = ZsPool.create({ maxBytes: 8 * SEG, segmentBytes: SEG, name: 'segs' });
    const low = pool.allocPages(MAX_ORDER); // segment 0, kept free of zspages for now
    const live = fill(pool, 4);
    expect(segOf(low)).toBe(0);
    // the first frame of a zspage whose object crosses into the next frame, in a high segment
    const [h, d] = [...live].find(([x, data]) => {
      if (data.length !== 3000) return false;
      const chain = chainOf(pool, x);
      const pfn = pfnOf(pool, x);
      return segOf(pfn) >= 2 && chain[0] === pfn && objToOffset(pool.handles.words[x]!) + 3008 > PAGE_SIZE;
    })!;
    const high = pfnOf(pool, h);
    const next = getNextPfn(pool.phys.fd, high);
    pool.freePages(low, MAX_ORDER);
    pool.phys.zoneLock();
    expect(pool.phys.isolateFreeFrameLocked(low + 3)).toBe(true);
    pool.phys.zoneUnlock();
    expect(isolateFrame(pool, high)).toBe(true);
    expect(migrateFrame(pool, high, low + 3)).toBe(MIGRATE_OK);
    expect(pfnOf(pool, h)).toBe(low + 3);
    expect(getNextPfn(pool.phys.fd, low + 3)).toBe(next);
    expect(segOf(next)).not.toBe(0); // the object now crosses from segment 0 into a high one
    expect(holds(pool, h, d)).toBe(true);
    const d2 = pattern(3000, 31);
    pool.write(h, d2);
    live.set(h, d2);
    pool.verify();

    // the frame compactor moves frames from the top segment down into segment 0
    const zspageFramesIn0 = (): number =>
      [...pool.frameMap().subarray(0, SEG_FRAMES)].filter((k) => k === 1 || k === 2).length;
    expect(zspageFramesIn0()).toBe(1);
    const r = compactFrames(pool, MAX_ORDER);
    expect(r.migrated).toBeGreaterThan(0);
    expect(r.success).toBe(true);
    expect(zspageFramesIn0()).toBe(1 + r.migrated);
    for (const [x, data] of live) expect(holds(pool, x, data)).toBe(true);
    const info = pool.buddyinfo();
    expect(info.reduce((a, n, o) => a + n * 2 ** o, 0)).toBe(pool.phys.freePages());
    pool.verify();
    for (const x of live.keys()) pool.free(x);
    expect(pool.stats().objUsed).toBe(0);
    pool.verify();
  });

  it('serves per-CPU caches from objects in every segment', () => {
    const pool = ZsPool.create({ maxBytes: 8 * SEG, segmentBytes: SEG, name: 'segs', percpuCache: true });
    const live = fill(pool, 4);
    const crossing = [...live].filter(([h, d]) => crossesSegments(pool, h, d.length));
    expect(crossing.length).toBeGreaterThan(0);
    // free and reallocate through the magazines many times over
    const hs = [...live.keys()];
    for (let round = 0; round < 3; round++) {
      for (let i = round; i < hs.length; i += 3) {
        const old = live.get(hs[i]!)!;
        pool.free(hs[i]!);
        live.delete(hs[i]!);
        const data = pattern(old.length, i * 10 + round);
        const h = pool.mallocWrite(data);
        live.set(h, data);
        hs[i] = h;
      }
      pool.verify();
    }
    for (const [h, data] of live) expect(holds(pool, h, data)).toBe(true);
    expect(new Set([...live.keys()].map((h) => segOf(pfnOf(pool, h)))).size).toBeGreaterThanOrEqual(3);
  });

  it('rejects a segment size that is not a power of two from 4 MiB to 4 GiB with EINVAL', () => {
    for (const bad of [SEGMENT_MIN_BYTES / 2, 3 * MiB * 2, 2 ** 33, 5.5, Number.NaN, '4194304' as unknown as number])
      expect(() => ZsPool.create({ maxBytes: 16 * MiB, segmentBytes: bad })).toThrow(
        /segmentBytes must be a power of two/,
      );
    expect(ZsPool.create({ maxBytes: 16 * MiB, segmentBytes: SEGMENT_MIN_BYTES }).shared.phys.segments.length).toBe(4);
    expect(ZsPool.create({ maxBytes: 16 * MiB }).shared.phys.segments.length).toBe(1);
  });
});
