// Post-processing: idle marking (all / by age), writeback to a backing file,
// writeback_limit, and recompression with secondary algorithms.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ZsError } from '@zsmalloc/core';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ZramDevice } from './device.js';
import { ZramError } from './errors.js';
import { fillPage, prng, type PageKind } from './pages.js';

const PAGE = 4096;
let dir = '';
let n = 0;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zram-wb-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function backing(): string {
  return path.join(dir, `backing-${process.pid}-${n++}.img`);
}

function page(kind: PageKind, seed: number): Uint8Array {
  return fillPage(new Uint8Array(PAGE), kind, seed);
}

/** Random letters from a 16-symbol alphabet: no repeats for LZ4 (huge), ~2x for entropy coders. */
function lowEntropy(seed: number): Uint8Array {
  const rnd = prng(seed);
  const p = new Uint8Array(PAGE);
  for (let i = 0; i < PAGE; i++) p[i] = 0x61 + (rnd() & 15);
  return p;
}

function expectPage(dev: ZramDevice, index: number, want: Uint8Array): void {
  const dst = new Uint8Array(PAGE);
  dev.readPage(index, dst);
  expect(Buffer.compare(dst, want), `page ${index}`).toBe(0);
}

function bd(dev: ZramDevice): number[] {
  return dev.bdStat().trim().split(/\s+/).map(Number);
}

describe('idle marking', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("marks every stored page idle with 'all'; any access clears it; same pages are skipped", () => {
    const dev = ZramDevice.create({ disksize: 8 * PAGE });
    dev.writePage(0, page('text', 1));
    dev.writePage(1, page('random', 1));
    dev.writePage(2, new Uint8Array(PAGE));
    expect(dev.markIdle('all')).toBe(2);
    expect(dev.slotState(0).idle).toBe(true);
    expect(dev.slotState(1).idle).toBe(true);
    expect(dev.slotState(2).idle).toBe(false); // same-filled
    expect(dev.slotState(3).allocated).toBe(false);
    dev.readPage(0, new Uint8Array(PAGE));
    expect(dev.slotState(0).idle).toBe(false);
    dev.write(PAGE + 7, new Uint8Array([1, 2, 3]));
    expect(dev.slotState(1).idle).toBe(false);
    expect(dev.blockState()).toMatch(
      /^ {11}0 +\d+\.000000 \.\.\.\.\.\.\n {11}1 +\d+\.000000 \.\.h\.\.\.\n {11}2 +\d+\.000000 s\.\.\.\.\.\n$/,
    );
  });

  it('marks pages idle by age in seconds', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const t0 = new Date('2030-01-01T00:00:00Z').getTime();
    vi.setSystemTime(t0);
    const dev = ZramDevice.create({ disksize: 8 * PAGE });
    for (let i = 0; i < 4; i++) dev.writePage(i, page('text', i));
    vi.setSystemTime(t0 + 100_000);
    dev.writePage(4, page('binary', 4));
    dev.readPage(0, new Uint8Array(PAGE)); // touched now
    vi.setSystemTime(t0 + 130_000);
    expect(dev.markIdle(60)).toBe(3); // pages 1..3 untouched for 130 s
    expect([0, 1, 2, 3, 4].map((i) => dev.slotState(i).idle)).toEqual([false, true, true, true, false]);
    expect(dev.markIdle(20)).toBe(5);
    // A later, larger age clears IDLE from pages younger than it (as the kernel does).
    expect(dev.markIdle(120)).toBe(3);
    expect(dev.slotState(4).idle).toBe(false);
    expect(dev.slotState(1).accessTime + 130).toBe(dev.slotState(0).accessTime + 30);
  });
});

describe('writeback', () => {
  it('needs a backing file (ENODEV)', () => {
    const dev = ZramDevice.create({ disksize: 4 * PAGE });
    dev.writePage(0, page('text', 1));
    dev.markIdle('all');
    expect(() => dev.writeback('idle')).toThrow(ZramError);
    try {
      dev.writeback({ mode: 'idle' });
    } catch (e) {
      expect((e as ZramError).code).toBe('ENODEV');
    }
    expect(() => dev.setBackingFile(backing())).toThrow(ZsError); // EBUSY once initialized
  });

  it('writes idle pages to the file, frees their memory, and reads them back', () => {
    const file = backing();
    const dev = ZramDevice.create({ disksize: 32 * PAGE, backingFile: file });
    expect(dev.backingFile).toBe(file);
    expect(fs.statSync(file).size).toBe(33 * PAGE);
    const kinds: PageKind[] = ['text', 'random', 'zero', 'binary', 'same'];
    const ref: Uint8Array[] = [];
    for (let i = 0; i < 20; i++) {
      ref[i] = page(kinds[i % 5]!, i);
      dev.writePage(i, ref[i]!);
    }
    const before = dev.statValues().mm;
    dev.markIdle('all');
    const written = dev.writeback('idle');
    expect(written).toBe(12); // 8 same-filled pages stay in memory
    expect(bd(dev)).toEqual([12, 0, 12]);
    const after = dev.statValues().mm;
    expect(after.origDataSize).toBe(before.origDataSize);
    expect(after.comprDataSize).toBe(0);
    expect(after.hugePages).toBe(0);
    expect(after.hugePagesSince).toBe(before.hugePagesSince);
    expect(dev.pool.stats().objUsed).toBe(0);
    expect(dev.slotState(0).writtenBack).toBe(true);
    for (let i = 0; i < 20; i++) expectPage(dev, i, ref[i]!);
    expect(bd(dev)).toEqual([12, 12, 12]);
    // Still on the backing file after being read (reads don't bring pages back).
    expect(dev.slotState(0).writtenBack).toBe(true);
    // Another thread's view opens its own descriptor.
    const other = ZramDevice.attach(dev.shared);
    for (let i = 0; i < 20; i++) expectPage(other, i, ref[i]!);
    other.close();
    // Overwrite, partial write and discard free their blocks.
    dev.writePage(0, page('text', 100));
    expect(bd(dev)[0]).toBe(11);
    dev.write(PAGE + 10, new Uint8Array([9, 9, 9]));
    ref[1]!.set([9, 9, 9], 10);
    expect(bd(dev)[0]).toBe(10);
    expect(dev.slotState(1).writtenBack).toBe(false);
    dev.discard(3 * PAGE, PAGE);
    expect(bd(dev)[0]).toBe(9);
    expectPage(dev, 0, page('text', 100));
    expectPage(dev, 1, ref[1]!);
    dev.verify();
    dev.reset();
    expect(bd(dev)).toEqual([0, 0, 0]);
    dev.close();
  });

  it('selects by mode: huge, huge_idle, page_index, page_indexes, incompressible', () => {
    const dev = ZramDevice.create({ disksize: 16 * PAGE, backingFile: backing() });
    for (let i = 0; i < 8; i++) dev.writePage(i, i % 2 ? page('random', i) : page('text', i));
    expect(dev.writeback('huge_idle')).toBe(0); // nothing idle yet
    dev.markIdle('all');
    dev.readPage(1, new Uint8Array(PAGE)); // page 1: huge, no longer idle
    expect(dev.writeback({ mode: 'huge_idle' })).toBe(3); // 3, 5, 7
    expect(dev.writeback({ mode: 'huge' })).toBe(1); // 1
    expect(dev.writeback('page_index=0')).toBe(1);
    expect(dev.writeback({ mode: 'page_index', index: 0 })).toBe(0); // already written back
    expect(dev.writeback({ mode: 'page_indexes', first: 2, last: 4 })).toBe(2); // 2 and 4 (3 done)
    expect(dev.writeback('page_indexes=5-6')).toBe(1); // 6
    expect(dev.writeback('incompressible')).toBe(0);
    expect(dev.slotState(7).writtenBack).toBe(true);
    for (let i = 0; i < 8; i++) expectPage(dev, i, i % 2 ? page('random', i) : page('text', i));
    expect(bd(dev)).toEqual([8, 8, 8]);
    expect(() => dev.writeback({ mode: 'page_indexes', first: 5, last: 2 })).toThrow(ZsError);
    expect(() => dev.writeback({ mode: 'bogus' as 'idle' })).toThrow(ZsError);
    dev.close();
  });

  it('honours writeback_limit (4 KiB units): exhausted -> EIO', () => {
    const dev = ZramDevice.create({ disksize: 16 * PAGE, backingFile: backing() });
    for (let i = 0; i < 6; i++) dev.writePage(i, page('text', i));
    dev.markIdle('all');
    dev.setWritebackLimit(2);
    // Not enabled: the limit does nothing yet.
    expect(dev.writeback('page_index=5')).toBe(1);
    expect(dev.writebackLimit).toBe(2);
    dev.setWritebackLimitEnable(true);
    let err: unknown;
    try {
      dev.writeback('idle');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ZramError);
    expect((err as ZramError).code).toBe('EIO');
    expect((err as ZramError).pagesDone).toBe(2);
    expect(dev.writebackLimit).toBe(0);
    expect(bd(dev)).toEqual([3, 0, 3]);
    dev.setWritebackLimit(10);
    expect(dev.writeback('idle')).toBe(3);
    expect(dev.writebackLimit).toBe(7);
    for (let i = 0; i < 6; i++) expectPage(dev, i, page('text', i));
    dev.close();
  });
});

describe('recompression', () => {
  it('needs a secondary algorithm', () => {
    const dev = ZramDevice.create({ disksize: 4 * PAGE });
    expect(() => dev.recompress({})).toThrow(/recompression algorithm/);
    expect(() => dev.setRecompAlgorithm('lz4hc', 1)).toThrow(/lz4, deflate, brotli, zstd/);
  });

  it('keeps results in a smaller class, marks the rest incompressible, reads with the right codec', () => {
    const dev = ZramDevice.create({ disksize: 32 * PAGE, backingFile: backing() });
    dev.setRecompAlgorithm('brotli', 1);
    expect(dev.recompAlgorithm()).toBe('#1: lz4 deflate [brotli] zstd \n');
    const ref: Uint8Array[] = [];
    for (let i = 0; i < 12; i++) {
      ref[i] = i < 4 ? page('text', i) : i < 8 ? lowEntropy(i) : page('random', i);
      dev.writePage(i, ref[i]!);
    }
    const before = dev.statValues().mm;
    expect(before.hugePages).toBe(8); // low-entropy and random pages defeat lz4
    const classesBefore = ref.map((_, i) => dev.pool.classIndexFor(dev.slotState(i).size));
    expect(dev.recompress({})).toBe(8); // text and low-entropy pages shrink with brotli
    const after = dev.statValues().mm;
    expect(after.comprDataSize).toBeLessThan(before.comprDataSize);
    expect(after.hugePages).toBe(4); // only random pages are still huge
    expect(after.origDataSize).toBe(before.origDataSize);
    for (let i = 0; i < 12; i++) {
      const s = dev.slotState(i);
      if (i < 8) {
        expect(s.priority).toBe(1);
        expect(dev.pool.classIndexFor(s.size)).toBeLessThan(classesBefore[i]!);
      } else {
        expect(s.priority).toBe(0);
        expect(s.incompressible).toBe(true);
        expect(s.huge).toBe(true);
      }
      expectPage(dev, i, ref[i]!);
    }
    expect(after.comprDataSize).toBe(dev.pool.stats().bytesStored);
    // Nothing left to do; incompressible pages go to the backing file.
    expect(dev.recompress({})).toBe(0);
    expect(dev.writeback('incompressible')).toBe(4);
    // Can't swap priority 1's algorithm while slots may use it.
    expect(() => dev.setRecompAlgorithm('deflate', 1)).toThrow(ZsError);
    dev.verify();
    dev.close();
  });

  it('filters by type, threshold, maxPages and algorithm', () => {
    const dev = ZramDevice.create({ disksize: 32 * PAGE });
    dev.setRecompAlgorithm('deflate', 1);
    dev.setRecompAlgorithm('brotli', 2);
    for (let i = 0; i < 8; i++) dev.writePage(i, i < 4 ? page('text', i) : lowEntropy(i));
    // huge only, and only up to 2 attempts.
    expect(dev.recompress({ type: 'huge', maxPages: 2 })).toBe(2);
    expect([4, 5, 6, 7].map((i) => dev.slotState(i).priority)).toEqual([1, 1, 0, 0]);
    // idle only: nothing is idle.
    expect(dev.recompress({ type: 'idle' })).toBe(0);
    dev.markIdle('all');
    dev.readPage(6, new Uint8Array(PAGE));
    // huge_idle: page 7 (6 was touched).
    expect(dev.recompress({ type: 'huge_idle' })).toBe(1);
    expect(dev.slotState(7).priority).toBe(1);
    expect(dev.slotState(7).idle).toBe(false); // recompression touches the entry
    // Threshold: only objects of >= 3000 bytes (page 6, still huge).
    expect(dev.recompress({ threshold: 3000 })).toBe(1);
    expect(dev.slotState(6).priority).toBe(1);
    // Only brotli, on what deflate left (text pages: lz4 -> brotli directly).
    const n = dev.recompress({ algorithm: 'brotli' });
    expect(n).toBeGreaterThan(0);
    expect(() => dev.recompress({ algorithm: 'lz4' })).toThrow(/not a recompression algorithm/);
    expect(() => dev.recompress({ priority: 3 })).toThrow(/priority 3/);
    expect(dev.recompress({ priority: 2 })).toBe(0); // brotli already had its go
    for (let i = 0; i < 8; i++) expectPage(dev, i, i < 4 ? page('text', i) : lowEntropy(i));
    expect(dev.statValues().mm.comprDataSize).toBe(dev.pool.stats().bytesStored);
    dev.verify();
  });
});
