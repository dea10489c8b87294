// Ports of the kernel's own zram checks:
//  - tools/testing/selftests/zram/zram01.sh: fill a 2 MiB device (mem_limit 2M)
//    with zeros in 1 KiB appends until a write fails, then require
//    100 * 1024 * written_KiB / mem_used_total >= 100.
//  - LTP zram01.sh: the same fill per device/algorithm (25 MiB, mem_limit 25M),
//    on a filesystem, so there is metadata next to the zero-filled file.
//  - LTP zram03.c: write 'a' over a 512 MiB device, verify every byte, read mm_stat.
import { describe, expect, it } from 'vitest';
import { ALGORITHMS } from './codec.js';
import { ZramDevice } from './device.js';
import { fillPage } from './pages.js';

const PAGE = 4096;
const KiB = 1024;
const MiB = 1 << 20;

function memUsedTotal(dev: ZramDevice): number {
  // awk '{print $3}' /sys/block/zramN/mm_stat
  return Number(dev.mmStat().trim().split(/\s+/)[2]);
}

/** The selftest's ratio: 100 * 1024 * KiB / mem_used_total (integer shell arithmetic). */
function ratio(writtenKiB: number, used: number): number {
  // With every page same-filled nothing is allocated and mem_used_total is 0: the shell's
  // division would fault; the real ratio is unbounded, which passes the ">= 100" check.
  return used === 0 ? Number.POSITIVE_INFINITY : Math.floor((100 * 1024 * writtenKiB) / used);
}

/** dd conv=notrunc if=/dev/zero oflag=append count=1 bs=1024, until it fails. */
function appendZerosUntilFailure(dev: ZramDevice, start: number): { kib: number; error: unknown } {
  const zeros = new Uint8Array(KiB);
  let kib = 0;
  for (;;) {
    try {
      dev.write(start + kib * KiB, zeros);
    } catch (error) {
      return { kib, error };
    }
    kib++;
  }
}

/** A small "filesystem" image at the start of the device: superblock, bitmaps, inode table. */
function writeFsMetadata(dev: ZramDevice, pages: number): void {
  const p = new Uint8Array(PAGE);
  for (let i = 0; i < pages; i++) dev.writePage(i, fillPage(p, i % 3 === 0 ? 'text' : 'binary', 1000 + i));
}

describe('selftests zram01: zero fill of a 2 MiB device with mem_limit 2M', () => {
  it('raw device: fills to the end, allocates nothing, ratio unbounded', () => {
    const dev = ZramDevice.create({ disksize: 2 * MiB, memLimit: 2 * MiB, algorithm: 'lz4' });
    const { kib, error } = appendZerosUntilFailure(dev, 0);
    expect(error).toBeInstanceOf(RangeError); // the end of the device (dd: No space left)
    expect(kib).toBe(2048);
    const used = memUsedTotal(dev);
    expect(used).toBe(0);
    expect(ratio(kib, used)).toBeGreaterThanOrEqual(100);
    const mm = dev.statValues().mm;
    expect(mm.samePages).toBe(512);
    expect(mm.origDataSize).toBe(2 * MiB);
    expect(mm.memLimit).toBe(2 * MiB);
    expect(dev.statValues().io.failedWrites).toBe(0);
    dev.verify();
  });

  it('with filesystem metadata: ratio = 100*1024*KiB/mem_used_total >= 100', () => {
    const dev = ZramDevice.create({ disksize: 2 * MiB, memLimit: 2 * MiB });
    writeFsMetadata(dev, 16);
    const { kib, error } = appendZerosUntilFailure(dev, 16 * PAGE);
    expect(error).toBeInstanceOf(RangeError);
    expect(kib).toBe(2048 - 64);
    const used = memUsedTotal(dev);
    expect(used).toBeGreaterThan(0);
    const v = ratio(kib, used);
    expect(v).toBeGreaterThanOrEqual(100);
    dev.verify();
  });
});

describe('LTP zram01: per-algorithm fill (25 MiB devices, mem_limit 25M)', () => {
  for (const algorithm of ALGORITHMS) {
    it(`${algorithm}: zero-filled file on a filesystem compresses >= 1:1`, () => {
      const dev = ZramDevice.create({ disksize: 25 * MiB, memLimit: 25 * MiB, algorithm });
      expect(dev.compAlgorithm()).toContain(`[${algorithm}]`);
      writeFsMetadata(dev, 64);
      const { kib, error } = appendZerosUntilFailure(dev, 64 * PAGE);
      expect(error).toBeInstanceOf(RangeError);
      expect(kib).toBe(25 * 1024 - 256);
      const used = memUsedTotal(dev);
      expect(used).toBeGreaterThan(0);
      expect(ratio(kib, used)).toBeGreaterThanOrEqual(100);
      // The metadata survived the fill.
      const p = new Uint8Array(PAGE);
      const q = new Uint8Array(PAGE);
      for (let i = 0; i < 64; i++) {
        dev.readPage(i, p);
        expect(Buffer.compare(p, fillPage(q, i % 3 === 0 ? 'text' : 'binary', 1000 + i))).toBe(0);
      }
      dev.verify();
    });

    it(`${algorithm}: compressible data fills until mem_limit stops it (ENOMEM)`, () => {
      const dev = ZramDevice.create({ disksize: 4 * MiB, memLimit: MiB, algorithm });
      const p = new Uint8Array(PAGE);
      let pages = 0;
      let error: unknown;
      for (;;) {
        try {
          dev.writePage(pages, fillPage(p, pages % 2 ? 'text' : 'binary', pages));
        } catch (e) {
          error = e;
          break;
        }
        pages++;
      }
      expect((error as { code?: string }).code).toBe('ENOMEM');
      expect(dev.statValues().io.failedWrites).toBe(1);
      const used = memUsedTotal(dev);
      expect(used).toBeLessThanOrEqual(MiB);
      expect(ratio(pages * 4, used)).toBeGreaterThanOrEqual(100);
      for (let i = 0; i < pages; i++) {
        dev.readPage(i, p);
        const q = fillPage(new Uint8Array(PAGE), i % 2 ? 'text' : 'binary', i);
        expect(Buffer.compare(p, q)).toBe(0);
      }
      dev.verify();
    });
  }
});

describe("LTP zram03: fill a 512 MiB device with 'a' and verify every byte", () => {
  it('reads back only a, and mm_stat shows same-filled pages and no memory', () => {
    const size = 512 * MiB;
    const dev = ZramDevice.create({ disksize: size, pool: { maxBytes: 16 * MiB } });
    const chunk = new Uint8Array(MiB).fill(0x61);
    for (let off = 0; off < size; off += MiB) dev.write(off, chunk);
    const back = new Uint8Array(MiB);
    for (let off = 0; off < size; off += MiB) {
      back.fill(0);
      dev.read(off, back);
      if (Buffer.compare(back, chunk) !== 0) {
        const bad = back.findIndex((b) => b !== 0x61);
        throw new Error(`byte ${off + bad} is ${back[bad]}, expected 'a'`);
      }
    }
    const [orig, compr, used, limit, max, same, compacted, huge, hugeSince] = dev
      .mmStat()
      .trim()
      .split(/\s+/)
      .map(Number);
    expect(orig).toBe(size);
    expect(compr).toBe(0);
    expect(used).toBe(0);
    expect(limit).toBe(0);
    expect(max).toBe(0);
    expect(same).toBe(size / PAGE);
    expect(compacted).toBe(0);
    expect(huge).toBe(0);
    expect(hugeSince).toBe(0);
    dev.verify();
  });
});
