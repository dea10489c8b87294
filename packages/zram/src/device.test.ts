import { ZsError, ZsPool } from '@zsmalloc/core';
import { describe, expect, it } from 'vitest';
import { ALGORITHMS } from './codec.js';
import { ZramDevice } from './device.js';
import { PAGE_KINDS, fillPage, prng, swapLikeKind, type PageKind } from './pages.js';

const PAGE = 4096;
const MiB = 1 << 20;

function page(kind: PageKind, seed: number): Uint8Array {
  return fillPage(new Uint8Array(PAGE), kind, seed);
}

function snapshot(dev: ZramDevice): Uint8Array {
  const out = new Uint8Array(dev.disksize);
  dev.read(0, out);
  return out;
}

function fields(text: string): number[] {
  return text.trim().split(/\s+/).map(Number);
}

/** compr_data_size must equal the sum of stored object sizes; pool must be consistent. */
function checkConsistent(dev: ZramDevice): void {
  dev.verify();
  const mm = dev.statValues().mm;
  expect(mm.comprDataSize).toBe(dev.pool.stats().bytesStored);
}

describe('ZramDevice basics', () => {
  it('counts an overwrite as its net change, from every kind of content to every other', () => {
    const kinds: PageKind[] = ['zero', 'same', 'text', 'random'];
    const dev = ZramDevice.create({ disksize: 32 * PAGE });
    let slot = 0;
    let hugeWrites = 0;
    for (const a of kinds) {
      for (const b of kinds) {
        dev.writePage(slot, page(a, slot + 1));
        dev.writePage(slot, page(b, slot + 100));
        if (a === 'random') hugeWrites++;
        if (b === 'random') hugeWrites++;
        slot++;
      }
    }
    const mm = dev.statValues().mm;
    expect(mm.hugePagesSince).toBe(hugeWrites); // random pages do not compress: stored huge
    expect(mm.hugePages).toBe(4);
    expect(mm.samePages).toBe(8);
    expect(mm.origDataSize).toBe(16 * PAGE);
    expect(dev.recountStats()).toBe(0); // every counter already what the slots say
    checkConsistent(dev);
    for (let i = 0; i < slot; i++) dev.discard(i * PAGE, PAGE);
    expect(dev.mmStat().trim().split(/\s+/).map(Number).slice(0, 3)).toEqual([0, 0, 0]);
    expect(dev.recountStats()).toBe(0);
    dev.close();
  });

  it('creates a page-aligned device; unwritten pages read as zeros', () => {
    const dev = ZramDevice.create({ disksize: 10 * PAGE + 1 });
    expect(dev.disksize).toBe(11 * PAGE);
    expect(dev.pages).toBe(11);
    const dst = new Uint8Array(PAGE).fill(7);
    dev.readPage(10, dst);
    expect(dst.every((b) => b === 0)).toBe(true);
    expect(dev.mmStat()).toBe(`${'       0 '.repeat(8)}       0\n`);
    expect(dev.compAlgorithm()).toBe('[lz4] deflate brotli zstd \n');
  });

  for (const algorithm of ALGORITHMS) {
    it(`round-trips mixed pages with ${algorithm}`, () => {
      const dev = ZramDevice.create({ disksize: 64 * PAGE, algorithm });
      expect(dev.compAlgorithm()).toContain(`[${algorithm}]`);
      const ref: Uint8Array[] = [];
      for (let i = 0; i < 64; i++) {
        const p = page(PAGE_KINDS[i % PAGE_KINDS.length]!, i + 1);
        ref.push(p);
        dev.writePage(i, p);
      }
      const dst = new Uint8Array(PAGE);
      for (let i = 63; i >= 0; i--) {
        dev.readPage(i, dst);
        expect(Buffer.compare(dst, ref[i]!), `page ${i}`).toBe(0);
      }
      const mm = dev.statValues().mm;
      expect(mm.origDataSize).toBe(64 * PAGE);
      // zero and same pages are same-filled: 2 of every 5
      expect(mm.samePages).toBe(26);
      // random pages are incompressible: huge
      expect(mm.hugePages).toBe(12);
      expect(mm.hugePagesSince).toBe(12);
      expect(dev.pool.stats().objUsed).toBe(64 - 26);
      checkConsistent(dev);
    });
  }

  it('stores same-filled pages (any repeated 8-byte word) without allocating', () => {
    const dev = ZramDevice.create({ disksize: 16 * PAGE });
    const before = dev.pool.stats();
    const pattern = new Uint8Array(PAGE);
    for (let i = 0; i < PAGE; i++) pattern[i] = [1, 2, 3, 4, 5, 6, 7, 0xff][i & 7]!;
    dev.writePage(0, pattern);
    dev.writePage(1, new Uint8Array(PAGE).fill(0x61));
    dev.writePage(2, new Uint8Array(PAGE));
    dev.writePage(3, page('same', 77));
    const after = dev.pool.stats();
    expect(after.objUsed).toBe(before.objUsed);
    expect(after.pagesUsed).toBe(before.pagesUsed);
    const mm = dev.statValues().mm;
    expect(mm.samePages).toBe(4);
    expect(mm.comprDataSize).toBe(0);
    expect(mm.origDataSize).toBe(4 * PAGE);
    const dst = new Uint8Array(PAGE);
    dev.readPage(0, dst);
    expect(Buffer.compare(dst, pattern)).toBe(0);
    dev.readPage(1, dst);
    expect(dst.every((b) => b === 0x61)).toBe(true);
    dev.readPage(3, dst);
    expect(Buffer.compare(dst, page('same', 77))).toBe(0);
    // A page equal everywhere but in its last word is not same-filled.
    const almost = new Uint8Array(PAGE).fill(9);
    almost[PAGE - 1] = 8;
    dev.writePage(4, almost);
    expect(dev.statValues().mm.samePages).toBe(4);
    dev.readPage(4, dst);
    expect(Buffer.compare(dst, almost)).toBe(0);
    // Overwriting a same page with data (and back) keeps the counters right.
    dev.writePage(1, page('text', 1));
    dev.writePage(4, new Uint8Array(PAGE));
    expect(dev.statValues().mm.samePages).toBe(4);
    checkConsistent(dev);
  });

  it('stores incompressible pages raw as huge; huge_pages_since only grows', () => {
    const dev = ZramDevice.create({ disksize: 8 * PAGE });
    dev.writePage(0, page('random', 1));
    dev.writePage(1, page('random', 2));
    let mm = dev.statValues().mm;
    expect(mm.hugePages).toBe(2);
    expect(mm.comprDataSize).toBe(2 * PAGE);
    dev.writePage(0, page('text', 1));
    mm = dev.statValues().mm;
    expect(mm.hugePages).toBe(1);
    expect(mm.hugePagesSince).toBe(2);
    const dst = new Uint8Array(PAGE);
    dev.readPage(1, dst);
    expect(Buffer.compare(dst, page('random', 2))).toBe(0);
    expect(dev.pool.hugeClassSize).toBeGreaterThan(3000);
    checkConsistent(dev);
  });

  it('byte-granular read/write at unaligned offsets matches a flat reference', () => {
    const size = 24 * PAGE;
    const dev = ZramDevice.create({ disksize: size });
    const ref = new Uint8Array(size);
    const rnd = prng(42);
    const kinds: PageKind[] = ['text', 'random', 'binary', 'zero', 'same'];
    for (let op = 0; op < 300; op++) {
      const off = rnd() % size;
      const len = Math.min(size - off, (rnd() % (3 * PAGE)) + 1);
      if (rnd() % 3 !== 0) {
        const src = fillPage(new Uint8Array(len), kinds[rnd() % kinds.length]!, op);
        dev.write(off, src);
        ref.set(src, off);
      } else {
        const dst = new Uint8Array(len);
        dev.read(off, dst);
        expect(Buffer.compare(dst, ref.subarray(off, off + len)), `read @${off}+${len}`).toBe(0);
      }
    }
    expect(Buffer.compare(snapshot(dev), ref)).toBe(0);
    // Zero-length I/O at the very end is fine.
    dev.write(size, new Uint8Array(0));
    dev.read(size, new Uint8Array(0));
    checkConsistent(dev);
  });

  it('discards whole pages only and counts notify_free', () => {
    const dev = ZramDevice.create({ disksize: 8 * PAGE });
    for (let i = 0; i < 8; i++) dev.writePage(i, page('text', i + 1));
    const objs = dev.pool.stats().objUsed;
    // Inside one page: nothing.
    dev.discard(100, 1000);
    // From the middle of page 1 to the middle of page 4: pages 2 and 3.
    dev.discard(PAGE + 10, 3 * PAGE);
    expect(dev.pool.stats().objUsed).toBe(objs - 2);
    expect(fields(dev.ioStat())).toEqual([0, 0, 0, 2]);
    // Whole pages 6..7, and page 7 again (already empty: still counted, as the kernel does).
    dev.discard(6 * PAGE, 2 * PAGE);
    dev.discard(7 * PAGE, PAGE);
    expect(fields(dev.ioStat())[3]).toBe(5);
    const dst = new Uint8Array(PAGE);
    for (const i of [2, 3, 6, 7]) {
      dev.readPage(i, dst);
      expect(dst.every((b) => b === 0)).toBe(true);
    }
    for (const i of [0, 1, 4, 5]) {
      dev.readPage(i, dst);
      expect(Buffer.compare(dst, page('text', i + 1))).toBe(0);
    }
    expect(dev.statValues().mm.origDataSize).toBe(4 * PAGE);
    checkConsistent(dev);
  });

  it('slotFreeNotify frees a page, or counts miss_free when the slot is busy', () => {
    const dev = ZramDevice.create({ disksize: 4 * PAGE });
    dev.writePage(0, page('text', 1));
    dev.writePage(1, page('text', 2));
    expect(dev.slotFreeNotify(0)).toBe(true);
    const slots = (dev as unknown as { slots: { lock(i: number): void; unlock(i: number): void } }).slots;
    slots.lock(1);
    expect(dev.slotFreeNotify(1)).toBe(false);
    slots.unlock(1);
    expect(dev.debugStat()).toBe('version: 1\n       0        1\n');
    expect(fields(dev.ioStat())[3]).toBe(1);
    expect(dev.statValues().mm.origDataSize).toBe(PAGE);
  });

  it('another ZramDevice attached to the same shared memory sees the same device', () => {
    const dev = ZramDevice.create({ disksize: 4 * PAGE });
    const other = ZramDevice.attach(structuredClone(dev.shared));
    dev.writePage(2, page('binary', 5));
    const dst = new Uint8Array(PAGE);
    other.readPage(2, dst);
    expect(Buffer.compare(dst, page('binary', 5))).toBe(0);
    other.writePage(3, page('text', 8));
    expect(dev.mmStat()).toBe(other.mmStat());
    expect(dev.statValues().mm.origDataSize).toBe(2 * PAGE);
  });

  it("takes its slot locks through the pool, so they show in the pool's lock_stat", () => {
    const dev = ZramDevice.create({ disksize: 8 * PAGE, pool: { maxBytes: 4 * MiB, lockStat: true } });
    for (let i = 0; i < 8; i++) dev.writePage(i, page('text', i));
    dev.write(100, new Uint8Array(5000));
    dev.read(0, new Uint8Array(8 * PAGE));
    const text = dev.pool.lockStatText();
    expect(text).toContain('zram->table[index].lock');
    const row = dev.pool.lockStats().find((s) => s.name === 'zram->table[index].lock');
    expect(row!.acquisitions).toBeGreaterThanOrEqual(8 + 2 + 8);
    dev.verify();
  });

  it('can share one pool between two devices', () => {
    const pool = ZsPool.create({ maxBytes: 4 * MiB });
    const a = ZramDevice.create({ disksize: 8 * PAGE, pool });
    const b = ZramDevice.create({ disksize: 8 * PAGE, pool, algorithm: 'deflate' });
    a.writePage(0, page('text', 1));
    b.writePage(0, page('text', 2));
    const dst = new Uint8Array(PAGE);
    a.readPage(0, dst);
    expect(Buffer.compare(dst, page('text', 1))).toBe(0);
    b.readPage(0, dst);
    expect(Buffer.compare(dst, page('text', 2))).toBe(0);
    expect(pool.stats().objUsed).toBe(2);
    pool.verify();
  });
});

describe('memory limit and mem_used_max', () => {
  it('fails writes past mem_limit with ENOMEM, losing nothing stored', () => {
    const limit = 64 * 1024;
    const dev = ZramDevice.create({ disksize: 256 * PAGE, memLimit: limit });
    const ref: (Uint8Array | undefined)[] = [];
    let failedAt = -1;
    for (let i = 0; i < 256; i++) {
      const p = page('random', i + 1);
      try {
        dev.writePage(i, p);
        ref[i] = p;
      } catch (e) {
        expect(e).toBeInstanceOf(ZsError);
        expect((e as ZsError).code).toBe('ENOMEM');
        failedAt = i;
        break;
      }
    }
    expect(failedAt).toBeGreaterThan(0);
    const stats = dev.statValues();
    expect(stats.io.failedWrites).toBe(1);
    expect(stats.mm.memLimit).toBe(limit);
    expect(dev.pool.stats().pagesUsed * PAGE).toBeLessThanOrEqual(limit);
    // Overwriting an existing page with more incompressible data also fails; the old content stays.
    expect(() => dev.writePage(0, page('random', 999))).toThrow(ZsError);
    expect(() => dev.write(PAGE + 5, page('random', 998).subarray(0, 100))).toThrow(/mem_limit/);
    expect(dev.statValues().io.failedWrites).toBe(3);
    const dst = new Uint8Array(PAGE);
    for (let i = 0; i < failedAt; i++) {
      dev.readPage(i, dst);
      expect(Buffer.compare(dst, ref[i]!), `page ${i}`).toBe(0);
    }
    dev.readPage(failedAt, dst);
    expect(dst.every((b) => b === 0)).toBe(true);
    // mem_used_max went past the limit by at most the failed allocation.
    expect(dev.memUsedMax).toBeGreaterThanOrEqual(dev.pool.stats().pagesUsed * PAGE);
    checkConsistent(dev);
    // The limit can change live.
    dev.setMemLimit(0);
    dev.writePage(failedAt, page('random', 5));
    expect(dev.statValues().mm.memLimit).toBe(0);
    // Same-filled pages need no memory: they succeed even at the limit.
    dev.setMemLimit(PAGE);
    dev.writePage(200, new Uint8Array(PAGE).fill(3));
    checkConsistent(dev);
  });

  it('tracks mem_used_max and resets it to the current usage', () => {
    const dev = ZramDevice.create({ disksize: 64 * PAGE });
    for (let i = 0; i < 64; i++) dev.writePage(i, page('random', i));
    const peak = dev.statValues().mm.memUsedMax;
    expect(peak).toBeGreaterThanOrEqual(64 * PAGE);
    dev.discard(0, 64 * PAGE);
    dev.compact();
    expect(dev.statValues().mm.memUsedMax).toBe(peak);
    dev.resetMemUsedMax();
    const now = dev.pool.stats().pagesUsed * PAGE;
    expect(dev.statValues().mm.memUsedMax).toBe(now);
    expect(dev.statValues().mm.memUsedTotal).toBe(now);
  });
});

describe('knobs: disksize, algorithm, reset', () => {
  it('refuses to change disksize or algorithm once set (EBUSY), until reset', () => {
    const dev = ZramDevice.create({ disksize: 8 * PAGE });
    const code = (f: () => void) => {
      try {
        f();
      } catch (e) {
        return (e as ZsError).code;
      }
      return 'none';
    };
    expect(code(() => dev.setDisksize(16 * PAGE))).toBe('EBUSY');
    expect(code(() => dev.setAlgorithm('deflate'))).toBe('EBUSY');
    expect(code(() => dev.setAlgorithm('nope'))).toBe('EINVAL');
    dev.writePage(1, page('text', 1));
    dev.writePage(2, page('random', 1));
    dev.writePage(3, page('zero', 1));
    dev.setMemLimit(MiB);
    dev.reset();
    expect(dev.disksize).toBe(0);
    expect(dev.pool.stats().objUsed).toBe(0);
    expect(dev.mmStat()).toBe(`${'       0 '.repeat(8)}       0\n`);
    expect(dev.ioStat()).toBe('       0        0        0        0\n');
    expect(() => dev.readPage(0, new Uint8Array(PAGE))).toThrow(RangeError);
    dev.setAlgorithm('brotli');
    dev.setDisksize(32 * PAGE - 100);
    expect(dev.disksize).toBe(32 * PAGE);
    expect(dev.compAlgorithm()).toBe('lz4 deflate [brotli] zstd \n');
    const dst = new Uint8Array(PAGE);
    dev.readPage(1, dst);
    expect(dst.every((b) => b === 0)).toBe(true);
    dev.writePage(31, page('text', 3));
    dev.readPage(31, dst);
    expect(Buffer.compare(dst, page('text', 3))).toBe(0);
    dev.verify();
  });

  it('can start uninitialized and get its disksize later', () => {
    const dev = ZramDevice.create({ disksize: 0, maxDisksize: 64 * PAGE, algorithm: 'deflate' });
    expect(dev.initialized).toBe(false);
    expect(() => dev.writePage(0, new Uint8Array(PAGE))).toThrow(RangeError);
    expect(() => dev.setDisksize(65 * PAGE)).toThrow(ZsError);
    dev.setDisksize(64 * PAGE);
    dev.writePage(63, page('text', 1));
    const other = ZramDevice.attach(dev.shared);
    const dst = new Uint8Array(PAGE);
    other.readPage(63, dst);
    expect(Buffer.compare(dst, page('text', 1))).toBe(0);
  });
});

describe('bad input changes nothing', () => {
  it('rejects out-of-range I/O, wrong buffer sizes and unknown algorithms', () => {
    const dev = ZramDevice.create({ disksize: 16 * PAGE, memLimit: MiB });
    for (let i = 0; i < 16; i++) dev.writePage(i, page(swapLikeKind(i), i));
    const before = {
      data: snapshot(dev),
      mm: dev.mmStat(),
      io: dev.ioStat(),
      bd: dev.bdStat(),
      dbg: dev.debugStat(),
      pool: dev.pool.stats(),
    };
    const p = new Uint8Array(PAGE);
    const bad: Array<[() => unknown, new (...a: never[]) => Error]> = [
      [() => dev.writePage(16, p), RangeError],
      [() => dev.writePage(-1, p), RangeError],
      [() => dev.writePage(1.5, p), RangeError],
      [() => dev.readPage(16, p), RangeError],
      [() => dev.readPage(Number.NaN, p), RangeError],
      [() => dev.writePage(0, new Uint8Array(100)), RangeError],
      [() => dev.writePage(0, new Uint8Array(PAGE + 1)), RangeError],
      [() => dev.readPage(0, new Uint8Array(10)), RangeError],
      [() => dev.write(16 * PAGE - 10, new Uint8Array(11)), RangeError],
      [() => dev.write(-1, new Uint8Array(1)), RangeError],
      [() => dev.read(16 * PAGE, new Uint8Array(1)), RangeError],
      [() => dev.read(0, new Uint8Array(16 * PAGE + 1)), RangeError],
      [() => dev.discard(0, 17 * PAGE), RangeError],
      [() => dev.discard(15 * PAGE, 2 * PAGE), RangeError],
      [() => dev.slotFreeNotify(99), RangeError],
      [() => dev.writeback({ mode: 'page_index', index: 16 }), RangeError],
      [() => dev.setAlgorithm('lz4hc'), ZsError],
      [() => dev.setRecompAlgorithm('lzo', 1), ZsError],
      [() => dev.setRecompAlgorithm('brotli', 4), ZsError],
      [() => dev.setMemLimit(-5), ZsError],
      [() => dev.markIdle(-1), ZsError],
      [() => dev.recompress({ threshold: 100000 }), ZsError],
      [() => dev.setDisksize(32 * PAGE), ZsError],
    ];
    for (const [f, type] of bad) {
      expect(f, f.toString()).toThrow(type);
      dev.verify();
    }
    expect(() => dev.setAlgorithm('lz4hc')).toThrow(/lz4, deflate, brotli, zstd/);
    expect(Buffer.compare(snapshot(dev), before.data)).toBe(0);
    expect(dev.mmStat()).toBe(before.mm);
    expect(dev.ioStat()).toBe(before.io);
    expect(dev.bdStat()).toBe(before.bd);
    expect(dev.debugStat()).toBe(before.dbg);
    expect(dev.pool.stats()).toEqual(before.pool);
    expect(dev.memLimit).toBe(MiB);
    expect(dev.algorithm).toBe('lz4');
    checkConsistent(dev);
  });
});

describe('stat texts', () => {
  it('prints mm_stat, io_stat, bd_stat and debug_stat in the kernel layout', () => {
    const dev = ZramDevice.create({ disksize: 8 * PAGE, memLimit: 2 * MiB });
    dev.writePage(0, new Uint8Array(PAGE)); // same
    dev.writePage(1, page('random', 1)); // huge
    dev.writePage(2, page('text', 1));
    const v = dev.statValues().mm;
    const used = dev.pool.stats().pagesUsed * PAGE;
    const pad = (n: number) => String(n).padStart(8, ' ');
    expect(dev.mmStat()).toBe(
      `${[3 * PAGE, v.comprDataSize, used, 2 * MiB, v.memUsedMax, 1, 0, 1, 1].map(pad).join(' ')}\n`,
    );
    expect(v.comprDataSize).toBeGreaterThan(PAGE);
    expect(dev.ioStat()).toBe('       0        0        0        0\n');
    expect(dev.bdStat()).toBe('       0        0        0\n');
    expect(dev.debugStat()).toBe('version: 1\n       0        0\n');
    // Wide values keep single-space separation.
    expect(
      dev
        .mmStat()
        .split(' ')
        .filter((s) => s === '').length,
    ).toBeGreaterThan(0);
    expect(dev.mmStat().endsWith('\n')).toBe(true);
  });
});

describe('write hot path', () => {
  it('tests same-filled pages in place: aligned and unaligned pages inside larger buffers, one differing word', () => {
    const dev = ZramDevice.create({ disksize: 8 * PAGE });
    const big = new Uint8Array(4 * PAGE + 3);
    const word = [1, 2, 3, 4, 5, 6, 7, 8];
    const at = [PAGE, 1, 2 * PAGE + 3]; // aligned, and two unaligned offsets
    for (const [i, off] of at.entries()) {
      const p = big.subarray(off, off + PAGE);
      for (let k = 0; k < PAGE; k++) p[k] = word[k & 7]!;
      dev.writePage(i, p);
      expect(dev.slotState(i).same).toBe(true);
      p[PAGE / 2 + 5] ^= 1; // one byte in the middle: not same-filled any more
      dev.writePage(4 + i, p);
      expect(dev.slotState(4 + i).same).toBe(false);
      const out = new Uint8Array(PAGE);
      dev.readPage(4 + i, out);
      expect(Buffer.compare(out, p)).toBe(0);
      p[PAGE / 2 + 5] ^= 1;
      dev.readPage(i, out);
      expect(Buffer.compare(out, p)).toBe(0);
    }
    expect(dev.statValues().mm.samePages).toBe(3);
    dev.verify();
  });

  it('reads the clock once per batch for access times', () => {
    const dev = ZramDevice.create({ disksize: 64 * PAGE });
    const real = Date.now;
    let calls = 0;
    Date.now = () => {
      calls++;
      return real();
    };
    try {
      dev.beginBatch();
      for (let i = 0; i < 32; i++) dev.writePage(i, page('text', i));
      for (let i = 0; i < 32; i++) dev.readPage(i, new Uint8Array(PAGE));
      dev.endBatch();
      expect(calls).toBe(1);
      dev.writePage(40, page('text', 40)); // outside a batch: one read per page
      expect(calls).toBe(2);
    } finally {
      Date.now = real;
    }
    const t = dev.slotState(0).accessTime;
    expect(t).toBeGreaterThan(0);
    for (let i = 1; i < 32; i++) expect(dev.slotState(i).accessTime).toBe(t);
  });
});
