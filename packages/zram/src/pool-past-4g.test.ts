// A zram device on a pool past 4 GiB, inside a CI runner's memory: the pool reserves
// 5 GiB (two segments of growable buffer, committed by the operating system page by
// page as written) and the frames below 4 GiB are taken first with allocPages, which
// never writes them, so every compressed page the device stores lies above 4 GiB.
// Then the same device on a small pool of 4 MiB segments (the segmentBytes testing
// knob), so compressed pages lie in several segments and move between them.

import { MAX_ORDER, compactFrames } from '@zsmalloc/core';
import { describe, expect, it } from 'vitest';
import { ZramDevice } from './device.js';
import { type PageKind, fillPage } from './pages.js';

const PAGE = 4096;
const GiB = 2 ** 30;
const LINE = (4 * GiB) / PAGE;

function fields(text: string): number[] {
  return text.trim().split(/\s+/).map(Number);
}

describe('zram on a pool past 4 GiB', () => {
  it('stores pages whose objects lie above 4 GiB, reads them back, compacts, and mm_stat counts them', () => {
    const rss0 = process.memoryUsage().rss;
    const dev = ZramDevice.create({ disksize: 64 << 20, pool: { maxBytes: 5 * GiB, name: 'zram-past4g' } });
    const pool = dev.pool;
    while (pool.phys.presentFrames < LINE) pool.allocPages(MAX_ORDER);
    const kinds: PageKind[] = ['text', 'binary', 'random'];
    const pages = 3000;
    const want = (i: number): Uint8Array => fillPage(new Uint8Array(PAGE), kinds[i % 3]!, i + 1);
    for (let i = 0; i < pages; i++) dev.writePage(i, want(i));
    const map = pool.frameMap();
    let zspageFrames = 0;
    for (let pfn = 0; pfn < map.length; pfn++)
      if (map[pfn] === 1 || map[pfn] === 2) {
        expect(pfn).toBeGreaterThanOrEqual(LINE);
        zspageFrames++;
      }
    expect(zspageFrames).toBe(pool.stats().pagesUsed);
    expect(dev.slotState(2).huge).toBe(true); // random pages are stored as huge objects
    const got = new Uint8Array(PAGE);
    for (let i = 0; i < pages; i++) {
      dev.readPage(i, got);
      expect(Buffer.compare(got, want(i)), `page ${i}`).toBe(0);
    }
    let mm = fields(dev.mmStat());
    expect(mm[0]).toBe(pages * PAGE); // orig_data_size
    expect(mm[2]).toBe(pool.stats().pagesUsed * PAGE); // mem_used_total: zspage frames only, not allocPages
    expect(mm[4]).toBeGreaterThanOrEqual(mm[2]!); // mem_used_max
    // free two pages in three, then compact: objects move between zspages above the line
    for (let i = 0; i < pages; i++) if (i % 3 !== 0) dev.discard(i * PAGE, PAGE);
    const freed = dev.compact();
    expect(freed).toBeGreaterThan(0);
    mm = fields(dev.mmStat());
    expect(mm[6]).toBe(freed); // pages_compacted
    expect(mm[2]).toBe(pool.stats().pagesUsed * PAGE);
    for (let i = 0; i < pages; i += 3) {
      dev.readPage(i, got);
      expect(Buffer.compare(got, want(i)), `page ${i}`).toBe(0);
    }
    pool.verify();
    expect(process.memoryUsage().rss - rss0).toBeLessThan(1 * GiB);
  });

  it('stores pages in a pool of several segments, reads them back, compacts, and frame compaction moves them down a segment', () => {
    const SEG = 4 << 20;
    const dev = ZramDevice.create({
      disksize: 64 << 20,
      pool: { maxBytes: 32 << 20, segmentBytes: SEG, name: 'zram-segs' },
    });
    const pool = dev.pool;
    const kinds: PageKind[] = ['text', 'binary', 'random'];
    const want = (i: number): Uint8Array => fillPage(new Uint8Array(PAGE), kinds[i % 3]!, i + 7);
    let pages = 0;
    while (pool.phys.presentFrames < (3 * SEG) / PAGE) dev.writePage(pages, want(pages++));
    const used = pool.shared.phys.segments.filter((b) => b.byteLength > 0).length;
    expect(used).toBe(3);
    const got = new Uint8Array(PAGE);
    const check = (i: number): void => {
      dev.readPage(i, got);
      expect(Buffer.compare(got, want(i)), `page ${i}`).toBe(0);
    };
    for (let i = 0; i < pages; i++) check(i);
    for (let i = 0; i < pages; i++) if (i % 4 !== 0) dev.discard(i * PAGE, PAGE);
    expect(dev.compact()).toBeGreaterThan(0);
    // the frame compactor moves what is left down, across the segment boundaries: the
    // free max-order blocks are taken first, so only moving frames can make one
    const taken: number[] = [];
    while (pool.buddyinfo()[MAX_ORDER]! > 0) taken.push(pool.phys.allocBlock(MAX_ORDER, false));
    const top = (): number => pool.frameMap().findLastIndex((k) => k === 1 || k === 2);
    const topBefore = top();
    const r = compactFrames(pool, MAX_ORDER);
    expect(r.migrated).toBeGreaterThan(0);
    expect(r.success).toBe(true);
    expect(Math.floor(top() / (SEG / PAGE))).toBeLessThan(Math.floor(topBefore / (SEG / PAGE)));
    for (const pfn of taken) pool.phys.freeBlock(pfn, MAX_ORDER);
    for (let i = 0; i < pages; i += 4) check(i);
    pool.verify();
    expect(fields(dev.mmStat())[2]).toBe(pool.stats().pagesUsed * PAGE);
  });
});
