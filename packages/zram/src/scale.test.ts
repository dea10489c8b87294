import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_DISKSIZE, MAX_DISKSIZE, ZramDevice } from './device.js';
import { fillPage } from './pages.js';

const PAGE = 4096;
const GiB = 2 ** 30;

function fields(text: string): number[] {
  return text.trim().split(/\s+/).map(Number);
}

describe('zram at distro scale', () => {
  it('a 1 TiB device stores and reads back pages at offsets above 4 GiB', () => {
    expect(MAX_DISKSIZE).toBeGreaterThanOrEqual(2 ** 40);
    const dev = ZramDevice.create({ disksize: 2 ** 40, pool: { maxBytes: 16 << 20 } });
    expect(dev.disksize).toBe(2 ** 40);
    const offsets = [0, 4 * GiB - PAGE, 4 * GiB, 4 * GiB + PAGE, 17 * GiB + 5 * PAGE, 2 ** 39, 2 ** 40 - PAGE];
    const want = offsets.map((_, k) => fillPage(new Uint8Array(PAGE), k % 2 ? 'binary' : 'text', k + 1));
    for (const [k, off] of offsets.entries()) dev.write(off, want[k]!);
    // A byte range that crosses the 4 GiB line, written and read unaligned.
    const cross = fillPage(new Uint8Array(3 * PAGE), 'text', 99);
    dev.write(8 * GiB - PAGE - 100, cross);
    const got = new Uint8Array(PAGE);
    offsets.forEach((off, k) => {
      dev.readPage(off / PAGE, got);
      expect(Buffer.compare(got, want[k]!), `offset ${off}`).toBe(0);
    });
    const back = new Uint8Array(3 * PAGE);
    dev.read(8 * GiB - PAGE - 100, back);
    expect(Buffer.compare(back, cross)).toBe(0);
    expect(dev.slotState((2 ** 40 - PAGE) / PAGE).allocated).toBe(true);
    expect(fields(dev.mmStat())[0]).toBe((offsets.length + 4) * PAGE);
    dev.discard(2 ** 39, PAGE);
    expect(dev.slotState(2 ** 39 / PAGE).allocated).toBe(false);
    dev.reset();
    expect(dev.initialized).toBe(false);
    expect(fields(dev.mmStat())[0]).toBe(0);
  });

  it('rejects a disksize past the limit and a maxDisksize below it, changing nothing', () => {
    expect(() => ZramDevice.create({ disksize: MAX_DISKSIZE + PAGE })).toThrow(
      expect.objectContaining({ code: 'EINVAL' }),
    );
    const dev = ZramDevice.create({ disksize: 0 });
    expect(() => dev.setDisksize(DEFAULT_MAX_DISKSIZE + PAGE)).toThrow(expect.objectContaining({ code: 'ENOMEM' }));
    expect(dev.initialized).toBe(false);
    dev.setDisksize(DEFAULT_MAX_DISKSIZE);
    expect(dev.disksize).toBe(DEFAULT_MAX_DISKSIZE);
  });

  it('64-bit counters: orig_data_size past 4 GiB is exact in mm_stat', () => {
    const pages = 2 ** 20 + 3; // 4 GiB + 12 KiB of same-filled pages
    const dev = ZramDevice.create({ disksize: 8 * GiB, pool: { maxBytes: 16 << 20 } });
    const same = new Uint8Array(PAGE).fill(0x5a);
    for (let i = 0; i < pages; i++) dev.writePage(i, same);
    const mm = fields(dev.mmStat());
    expect(mm[0]).toBe(pages * PAGE);
    expect(mm[0]).toBeGreaterThan(2 ** 32);
    expect(mm[5]).toBe(pages); // same_pages
    expect(dev.statValues().mm.origDataSize).toBe(pages * PAGE);
    for (let i = 0; i < pages; i++) dev.slotFreeNotify(i);
    expect(fields(dev.ioStat())[3]).toBe(pages); // notify_free
    expect(fields(dev.mmStat())[0]).toBe(0);
    dev.verify();
  });
});
