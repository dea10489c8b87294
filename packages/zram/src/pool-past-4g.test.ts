// A zram device on a pool past 4 GiB, inside a CI runner's memory: the pool reserves
// 5 GiB (a fixed-length buffer the operating system commits page by page as it is
// written) and the frames below 4 GiB are taken first with allocPages, which never
// writes them, so every compressed page the device stores lies above 4 GiB.

import { MAX_ORDER } from '@zsmalloc/core';
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
});
