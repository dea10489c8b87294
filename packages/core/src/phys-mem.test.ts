import { describe, expect, it, vi } from 'vitest';
import { PG_NEW, PG_PCP, getFlags } from './page-desc.js';
import { PCP_MAX_HIGH, PhysMem, Z_PCP_BATCH, Z_PCP_HIGH, pcpHigh, pcpListAt } from './phys-mem.js';
import { ZsPool } from './pool.js';

/** A pool of 64 MiB: page lists of PCP_MAX_HIGH frames. */
function bigPool(): ZsPool {
  return ZsPool.create({ maxBytes: 64 << 20, name: 'pcp_test' });
}

describe('per-CPU page lists', () => {
  it('scale with the pool: one frame per 2 MiB, at most PCP_MAX_HIGH, batch a quarter of high', () => {
    expect(pcpHigh(256)).toBe(0);
    expect(pcpHigh(4096)).toBe(8);
    expect(pcpHigh(16384)).toBe(PCP_MAX_HIGH);
    const pool = bigPool();
    expect(pool.phys.zone[Z_PCP_HIGH]).toBe(PCP_MAX_HIGH);
    expect(pool.phys.zone[Z_PCP_BATCH]).toBe(PCP_MAX_HIGH / 4);
    pool.detach();
  });

  it('keep a freed frame on the freeing CPU, uncounted as free, and hand it out next', () => {
    const pool = bigPool();
    const phys = pool.phys;
    const a = phys.allocBlock(0, true);
    expect(phys.pcpFrames()).toBe(PCP_MAX_HIGH / 4 - 1); // the refill's batch, less the frame handed out
    const free = phys.freePages();
    phys.freeBlock(a, 0);
    expect(phys.freePages()).toBe(free); // free, but on a page list: not in the buddy lists' count
    expect(phys.pcpFrames()).toBe(PCP_MAX_HIGH / 4);
    expect(pool.frameMap()[a]).toBe(0);
    pool.verify();
    expect(phys.allocBlock(0, true)).toBe(a);
    phys.freeBlock(a, 0);
    pool.verify();
    pool.detach();
  });

  it('serve a migration target and take its source back through allocFrame and freeFrame, as allocBlock and freeBlock would', () => {
    // with page lists (64 MiB), and without (1 MiB: pcpHigh is 0, the buddy lists serve)
    for (const maxBytes of [64 << 20, 1 << 20]) {
      const pool = ZsPool.create({ maxBytes, name: 'pcp_frame_test' });
      const phys = pool.phys;
      const high = phys.zone[Z_PCP_HIGH]!;
      const frames: number[] = [];
      // more than a list holds, so freeing them trims full lists on the way
      for (let i = 0; i < 3 * PCP_MAX_HIGH; i++) {
        const pfn = phys.allocFrame();
        expect(pfn).toBeGreaterThanOrEqual(0);
        expect(getFlags(phys.fd, pfn)).toBe(PG_NEW); // taken, not yet owned
        frames.push(pfn);
      }
      expect(new Set(frames).size).toBe(frames.length);
      for (const pfn of frames) {
        phys.freeFrame(pfn);
        expect(phys.pcpFrames()).toBeLessThanOrEqual(high);
        expect(pool.frameMap()[pfn]).toBe(0);
      }
      expect(phys.freePages() + phys.pcpFrames()).toBe(phys.presentFrames);
      pool.verify();
      if (high > 0) {
        // the last frame freed is the next one handed out
        const last = frames[frames.length - 1]!;
        expect(phys.allocFrame()).toBe(last);
        phys.freeFrame(last);
        pool.verify();
      } else expect(phys.pcpFrames()).toBe(0);
      pool.detach();
    }
  });

  it('give the oldest batch back to the buddy lists when a list is full', () => {
    const pool = bigPool();
    const phys = pool.phys;
    const frames: number[] = [];
    for (let i = 0; i < 3 * PCP_MAX_HIGH; i++) frames.push(phys.allocBlock(0, true));
    for (const pfn of frames) {
      phys.freeBlock(pfn, 0);
      expect(phys.pcpFrames()).toBeLessThanOrEqual(PCP_MAX_HIGH);
    }
    expect(phys.freePages() + phys.pcpFrames()).toBe(phys.presentFrames);
    pool.verify();
    pool.detach();
  });

  it('are drained when an allocation finds no free block, so their frames merge', () => {
    const pool = bigPool();
    const phys = pool.phys;
    const taken: number[] = [];
    for (let pfn = phys.allocBlock(0, true); pfn >= 0; pfn = phys.allocBlock(0, true)) taken.push(pfn);
    expect(taken.length).toBe(phys.maxFrames);
    expect(phys.freePages() + phys.pcpFrames()).toBe(0);
    // free one aligned order-5 block: all 32 frames wait on this CPU's list, none in the buddy lists
    const base = 64;
    for (let k = 0; k < 32; k++) phys.freeBlock(base + k, 0);
    expect(phys.pcpFrames()).toBe(32);
    expect(phys.freePages()).toBe(0);
    expect(phys.allocBlock(5, false)).toBe(base);
    expect(phys.pcpFrames()).toBe(0);
    phys.freeBlock(base, 5);
    for (const pfn of taken) if (pfn < base || pfn >= base + 32) phys.freeBlock(pfn, 0);
    phys.drainAll();
    expect(phys.freePages()).toBe(phys.maxFrames);
    expect(phys.buddyinfo()[10]).toBe(phys.maxFrames >> 10);
    pool.verify();
    pool.detach();
  });

  it('are checked with the free lists, and a broken one is rebuilt with them', () => {
    const pool = bigPool();
    const phys = pool.phys;
    const a = phys.allocBlock(0, true);
    phys.freeBlock(a, 0);
    const at = pcpListAt(pool.locks.cpu);
    const n = phys.zone[at]!;
    expect(n).toBeGreaterThan(0);
    // a thread killed while taking a frame off its list: the count dropped, the frame still marked
    phys.zone[at] = n - 1;
    expect(() => pool.verify()).toThrow(/pcp: .* marked PG_PCP but .* on page lists/);
    phys.zoneLock();
    try {
      expect(phys.rebuildFreeListsLocked(() => false)).toBe(phys.presentFrames);
    } finally {
      phys.zoneUnlock();
    }
    expect(phys.pcpFrames()).toBe(0);
    pool.verify();
    // a list naming a frame that is not on it any more
    const b = phys.allocBlock(0, true);
    phys.freeBlock(b, 0);
    phys.zone[at + 1] = phys.zone[at + 1]! + 1;
    expect(() => pool.verify()).toThrow(/pcp: /);
    pool.detach();
  });

  it('stopped partway through giving a batch back, leave frames off every list, never one both listed and free', () => {
    const pool = bigPool();
    const phys = pool.phys;
    const frames: number[] = [];
    for (let i = 0; i < 2 * PCP_MAX_HIGH; i++) frames.push(phys.allocBlock(0, true));
    for (let i = 0; i < PCP_MAX_HIGH; i++) phys.freeBlock(frames[i]!, 0); // the list is full now
    const at = pcpListAt(pool.locks.cpu);
    expect(phys.zone[at]).toBe(PCP_MAX_HIGH);
    // the thread "dies" at the second frame it gives back: the first is in the buddy lists
    let calls = 0;
    const proto = PhysMem.prototype as unknown as { freeBlockLocked(pfn: number, order: number): void };
    const real = proto.freeBlockLocked;
    const stop = vi.spyOn(proto, 'freeBlockLocked').mockImplementation(function (this: PhysMem, pfn, order) {
      if (++calls === 2) throw new Error('injected: the thread stops here');
      real.call(this, pfn, order);
    });
    expect(() => phys.freeBlock(frames[PCP_MAX_HIGH]!, 0)).toThrow(/injected/);
    stop.mockRestore();
    const n = phys.zone[at]!;
    for (let k = 0; k < n; k++) expect(getFlags(phys.fd, phys.zone[at + 1 + k]!)).toBe(PG_PCP);
    expect(() => pool.verify()).toThrow(); // frames are leaked: the check finds them
    pool.detach();
  });
});
