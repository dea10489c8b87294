// A pool past 4 GiB of frames, inside a CI runner's memory. How: the pool reserves
// 5 GiB (two segments of growable SharedArrayBuffer, 4 GiB and 1 GiB, grown as
// frames are handed out; the operating system commits a page only when it is first
// written), and
// the test first takes the whole 4 GiB below the line with allocPages(MAX_ORDER):
// that writes frame descriptors (a separate, small buffer) but never the frames.
// Every zspage the test then builds lies above 4 GiB, so the process writes only
// the few MiB its objects use; the RSS check below proves nothing wrote the rest.

import { totalmem } from 'node:os';
import { describe, expect, it } from 'vitest';
import { MAX_ORDER, PAGE_SIZE } from './constants.js';
import { objToOffset, objToPfn } from './location.js';
import { MIGRATE_OK, isolateFrame, migrateFrame, migratePage } from './migrate.js';
import { getNextPfn, getZspageOf } from './page-desc.js';
import { PHYS_MAX_FRAMES } from './phys-mem.js';
import { ZsPool } from './pool.js';
import { WASM_PAGE } from './wasm-atomics.js';
import { holds, pattern } from './testing.js';
import { ZD_FIRST, ZD_WORDS } from './zspage.js';

const GiB = 2 ** 30;
const LINE = (4 * GiB) / PAGE_SIZE; // first frame above 4 GiB: 2^20, past the old location word's frame limit

/** A pool of maxBytes whose frames below frame `line` are all taken (reserved, never written). */
function poolAboveTheLine(maxBytes: number, line: number): { pool: ZsPool; reserved: number[] } {
  const pool = ZsPool.create({ maxBytes, name: 'past4g' });
  const reserved: number[] = [];
  while (pool.phys.presentFrames < line) reserved.push(pool.allocPages(MAX_ORDER));
  expect(reserved[reserved.length - 1]).toBe(line - (1 << MAX_ORDER));
  return { pool, reserved };
}

/**
 * Objects stored, read (also through a second pool object), freed, compacted and
 * migrated, every frame at or above `line`; then one frame migrated down to frame 5,
 * below 4 GiB, so objects cross from one segment into another.
 */
function storeAboveTheLine(maxBytes: number, line: number): void {
  const rss0 = process.memoryUsage().rss;
  const { pool, reserved } = poolAboveTheLine(maxBytes, line);
  // sizes: small, frame-straddling (3000 B objects cross frame boundaries) and huge
  const sizes = [40, 200, 3000, 4096];
  const live = new Map<number, Uint8Array>();
  for (let i = 0; i < 4000; i++) {
    const data = pattern(sizes[i % sizes.length]!, i);
    const h = pool.mallocWrite(data);
    live.set(h, data);
  }
  for (const [h, data] of live) {
    const loc = pool.handles.words[h]!;
    expect(objToPfn(loc)).toBeGreaterThanOrEqual(line); // the location names a frame past 2^20
    expect(holds(pool, h, data)).toBe(true);
  }
  // another thread's pool object (as a worker attaches) sees the same memory through its own views
  const other = ZsPool.attach(pool.shared);
  for (const [h, data] of [...live].slice(0, 50)) expect(holds(other, h, data)).toBe(true);
  other.detach();
  pool.verify();
  const used = pool.stats().pagesUsed;
  expect(pool.phys.presentFrames).toBeGreaterThan(line + used - 1);

  // free most objects (every class), then compact: objects move between zspages above the line
  let k = 0;
  for (const h of [...live.keys()])
    if (k++ % 5 !== 0) {
      pool.free(h);
      live.delete(h);
    }
  pool.verify();
  const freed = pool.compact();
  expect(freed).toBeGreaterThan(0);
  expect(pool.stats().pagesCompacted).toBe(freed);
  for (const [h, data] of live) expect(holds(pool, h, data)).toBe(true);
  pool.verify();

  // migration above the line: a frame moves to another free frame (any)
  const [h1, d1] = [...live].find(([, d]) => d.length === 200)!;
  const pfn1 = objToPfn(pool.handles.words[h1]!);
  expect(migratePage(pool, pfn1)).toBe(MIGRATE_OK);
  const moved1 = objToPfn(pool.handles.words[h1]!);
  expect(moved1).not.toBe(pfn1);
  expect(holds(pool, h1, d1)).toBe(true);

  // migration across the line: give back the lowest reserved block, move the first
  // frame of a straddling zspage down into it; its objects that cross into the next
  // frame (still above 4 GiB) are then read across two segments
  pool.freePages(reserved[0]!, MAX_ORDER);
  const [h2, d2] = [...live].find(([h, d]) => {
    if (d.length !== 3000) return false;
    const loc = pool.handles.words[h]!;
    const zs = getZspageOf(pool.phys.fd, objToPfn(loc));
    return pool.zd[zs * ZD_WORDS + ZD_FIRST] === objToPfn(loc) && objToOffset(loc) + 3000 + 8 > PAGE_SIZE;
  })!;
  const high = objToPfn(pool.handles.words[h2]!);
  const next = getNextPfn(pool.phys.fd, high);
  expect(next).toBeGreaterThanOrEqual(line);
  const low = 5;
  pool.phys.zoneLock();
  expect(pool.phys.isolateFreeFrameLocked(low)).toBe(true);
  pool.phys.zoneUnlock();
  expect(isolateFrame(pool, high)).toBe(true);
  expect(migrateFrame(pool, high, low)).toBe(MIGRATE_OK);
  expect(objToPfn(pool.handles.words[h2]!)).toBe(low);
  expect(getNextPfn(pool.phys.fd, low)).toBe(next);
  expect(holds(pool, h2, d2)).toBe(true);
  // and written across the segments, then read back
  const d2b = pattern(3000, 99);
  pool.write(h2, d2b);
  live.set(h2, d2b);
  for (const [h, data] of live) expect(holds(pool, h, data)).toBe(true);
  pool.verify();

  // buddyinfo covers both sides: the freed low block (minus the frame taken) is free
  const info = pool.buddyinfo();
  const freeFrames = info.reduce((a, n, o) => a + n * 2 ** o, 0);
  expect(freeFrames).toBe(pool.phys.freePages());
  expect(freeFrames).toBeGreaterThanOrEqual((1 << MAX_ORDER) - 1);

  for (const h of live.keys()) pool.free(h);
  expect(pool.stats().objUsed).toBe(0);
  pool.verify();
  // 5 GiB reserved, 4 GiB of it "allocated": the process wrote only what it used
  const grew = process.memoryUsage().rss - rss0;
  expect(grew).toBeLessThan(1 * GiB);
}

describe('a pool past 4 GiB', () => {
  it('stores, frees, compacts and migrates objects whose frames lie above 4 GiB, touching none below', () => {
    storeAboveTheLine(5 * GiB, LINE);
  });

  // Frames above 8 GiB (the third segment) and above 16 GiB (the fifth, past where one
  // Int32 view of memory used to end). The pools reserve 12 and 20 GiB of address
  // space (committed only where written) and 96 and 160 MiB of frame descriptors; a
  // small runner's operating system could refuse that, so they run where memory is ample.
  it.skipIf(totalmem() < 16 * GiB)('does the same above 8 GiB (the third segment)', () => {
    storeAboveTheLine(12 * GiB, 2 * LINE);
  });
  it.skipIf(totalmem() < 16 * GiB)('does the same above 16 GiB (the fifth segment)', () => {
    storeAboveTheLine(20 * GiB, 4 * LINE);
  });

  it.skipIf(totalmem() < 16 * GiB)(
    'creates a pool of the full 32 GiB: eight segments, the handle table at its cap',
    () => {
      const pool = ZsPool.create({ maxBytes: 32 * GiB, name: 'max' });
      expect(pool.shared.phys.segments.map((b) => b.maxByteLength)).toEqual(new Array(8).fill(4 * GiB));
      // the handle table's memory grows to 4 GiB: 2^30 - 1 handles and word 0
      const mem = pool.shared.handles;
      mem.grow((4 * GiB) / WASM_PAGE - mem.buffer.byteLength / WASM_PAGE);
      expect(mem.buffer.byteLength).toBe(4 * GiB);
      const data = pattern(3000, 5);
      const h = pool.mallocWrite(data);
      expect(holds(pool, h, data)).toBe(true);
      pool.verify();
    },
  );

  it('rejects a pool past its limit (32 GiB: the frames a location word names) with EINVAL', () => {
    expect(PHYS_MAX_FRAMES * PAGE_SIZE).toBe(32 * GiB);
    expect(() => ZsPool.create({ maxBytes: 32 * GiB + PAGE_SIZE })).toThrow(/at most 34359738368/);
  });
});
