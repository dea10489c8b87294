// zram page I/O: single-thread ZramDevice.writePage and readPage over a
// seeded swap-like stream of 4 KiB pages (zero, same-filled, text, binary,
// random), each next to the bare codec doing the same pages in the same run:
// lz4 compress for writes, lz4 decompress for reads, through the very codec
// the device uses (createCodec('lz4')). Every write pass starts on a reset
// device (untimed); the overwrite pass writes over a full device (each slot
// gets another page of the stream, so every write frees the slot's old
// object). After the timed part it reads every page back and checks it, runs
// dev.verify(), and reports mem_used_total / compr_data_size and the
// compression ratio of a full fill.

import { PAGE_SIZE } from '@zsmalloc/core';
import { ZramDevice, createCodec } from '@zsmalloc/zram';
import { fillPage, swapLikeKind, type PageKind } from '@zsmalloc/zram/testing';
import { measure, type Case, type MicroConfig } from '../measure.js';
import { linkBaselines, type BenchRow } from '../report.js';

const ALGORITHM = 'lz4';
const COMPRESS = 'lz4 compress 4KiB (codec)';
const WRITE = 'zram writePage 4KiB';
const OVERWRITE = 'zram writePage 4KiB (overwrite)';
const DECOMPRESS = 'lz4 decompress 4KiB (codec)';
const READ = 'zram readPage 4KiB';
const SEED = 1;

export interface PageStream {
  /** The pages, back to back. */
  bytes: Uint8Array;
  /** One 4 KiB view per page (made once: no allocation in the timed loops). */
  pages: Uint8Array[];
  kinds: Record<PageKind, number>;
}

/** N pages of swapLikeKind content, deterministic from the seed. */
export function swapLikeStream(n: number, seed = SEED): PageStream {
  const bytes = new Uint8Array(n * PAGE_SIZE);
  const pages: Uint8Array[] = [];
  const kinds: Record<PageKind, number> = { zero: 0, same: 0, text: 0, binary: 0, random: 0 };
  for (let i = 0; i < n; i++) {
    const page = bytes.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
    const kind = swapLikeKind(i, seed);
    fillPage(page, kind, (seed * 0x85ebca6b + i) >>> 0);
    kinds[kind]++;
    pages.push(page);
  }
  return { bytes, pages, kinds };
}

function makeDevice(n: number, name: string): ZramDevice {
  const disksize = n * PAGE_SIZE;
  return ZramDevice.create({ disksize, maxDisksize: disksize, algorithm: ALGORITHM, name });
}

function fill(dev: ZramDevice, pages: readonly Uint8Array[]): void {
  for (let i = 0; i < pages.length; i++) dev.writePage(i, pages[i]!);
}

/** Reads every page back and compares it with the stream; returns pages checked. */
function checkDevice(dev: ZramDevice, stream: PageStream, what: string): number {
  const buf = new Uint8Array(PAGE_SIZE);
  const { pages } = stream;
  for (let i = 0; i < pages.length; i++) {
    dev.readPage(i, buf);
    const want = pages[i]!;
    for (let k = 0; k < PAGE_SIZE; k++) {
      if (buf[k] !== want[k]) throw new Error(`zram (${what}): page ${i} byte ${k} differs after the run`);
    }
  }
  dev.verify();
  return pages.length;
}

/** Reads every slot of the overwrite device back: slot i holds page (i + shift) % n. */
function checkShifted(dev: ZramDevice, stream: PageStream, shift: number): number {
  const buf = new Uint8Array(PAGE_SIZE);
  const { pages } = stream;
  const n = pages.length;
  for (let i = 0; i < n; i++) {
    dev.readPage(i, buf);
    const want = pages[(i + shift) % n]!;
    for (let k = 0; k < PAGE_SIZE; k++) {
      if (buf[k] !== want[k]) throw new Error(`zram (overwrite device): page ${i} byte ${k} differs after the run`);
    }
  }
  dev.verify();
  return n;
}

export async function benchZram(cfg: MicroConfig): Promise<BenchRow[]> {
  const n = cfg.zramPages;
  const stream = swapLikeStream(n);
  const { pages } = stream;

  // the baseline codec, and the compressed form of every page for the decompress baseline
  const codec = createCodec(ALGORITHM);
  const compressed: Uint8Array[] = pages.map((p) => codec.compress(p).slice());
  const lz4Bytes = compressed.reduce((a, c) => a + c.length, 0);

  // writes: a device reset (and re-sized) before every pass; reads: a device filled once
  const wdev = makeDevice(n, 'zram_bench_w');
  const rdev = makeDevice(n, 'zram_bench_r');
  const odev = makeDevice(n, 'zram_bench_o');
  fill(rdev, pages);
  fill(odev, pages);
  /** The overwrite device holds page (i + shift) % n in slot i. */
  let shift = 0;

  const out = new Uint8Array(PAGE_SIZE);
  let sink = 0;
  let writePasses = 0;

  const cases: Case[] = [
    {
      name: COMPRESS,
      group: 'zram',
      batch: n,
      bytesPerOp: PAGE_SIZE,
      run(k) {
        let s = 0;
        for (let i = 0; i < k; i++) s += codec.compress(pages[i]!).length;
        sink ^= s;
        return k;
      },
    },
    {
      name: WRITE,
      group: 'zram',
      batch: n,
      bytesPerOp: PAGE_SIZE,
      baseline: COMPRESS,
      prepare() {
        wdev.reset();
        wdev.setDisksize(n * PAGE_SIZE);
      },
      run(k) {
        // one batch, as the compression workers write: one clock read for the access times
        wdev.beginBatch();
        for (let i = 0; i < k; i++) wdev.writePage(i, pages[i]!);
        wdev.endBatch();
        writePasses++;
        return k;
      },
    },
    {
      name: OVERWRITE,
      group: 'zram',
      batch: n,
      bytesPerOp: PAGE_SIZE,
      baseline: COMPRESS,
      run(k) {
        const next = shift + 1 < n ? shift + 1 : 0;
        odev.beginBatch();
        for (let i = 0, j = next; i < k; i++, j = j + 1 < n ? j + 1 : 0) odev.writePage(i, pages[j]!);
        odev.endBatch();
        shift = next;
        return k;
      },
    },
    {
      name: DECOMPRESS,
      group: 'zram',
      batch: n,
      bytesPerOp: PAGE_SIZE,
      run(k) {
        let s = 0;
        for (let i = 0; i < k; i++) {
          const c = compressed[i]!;
          s += codec.decompress(c, c.length, out);
        }
        sink ^= s;
        return k;
      },
    },
    {
      name: READ,
      group: 'zram',
      batch: n,
      bytesPerOp: PAGE_SIZE,
      baseline: DECOMPRESS,
      run(k) {
        rdev.beginBatch();
        for (let i = 0; i < k; i++) rdev.readPage(i, out);
        rdev.endBatch();
        sink ^= out[0]!;
        return k;
      },
    },
  ];
  // a batch is one pass over the stream, not scaled
  const rows = linkBaselines(await measure(cases, { ...cfg, batchScale: 1 }, 'zram'));

  // outside the timed part: both devices hold exactly the stream, and are consistent
  const checked =
    checkDevice(rdev, stream, 'read device') +
    checkDevice(wdev, stream, 'write device') +
    checkShifted(odev, stream, shift);
  const mm = rdev.statValues().mm;
  const memOverCompr = mm.memUsedTotal / mm.comprDataSize;
  const comprRatio = mm.origDataSize / mm.comprDataSize;

  const [compress, write, overwrite, decompress, read] = rows as [BenchRow, BenchRow, BenchRow, BenchRow, BenchRow];
  const writeVsCompress = compress.nsPerOp / write.nsPerOp; // rate ratio: write MB/s / compress MB/s
  const overwriteVsCompress = compress.nsPerOp / overwrite.nsPerOp;
  const readVsDecompress = decompress.nsPerOp / read.nsPerOp;
  write.targets = [
    {
      goal: '>= 0.95x the bare lz4 compress rate',
      measured: `${writeVsCompress.toFixed(2)}x`,
      met: writeVsCompress >= 0.95,
    },
    {
      goal: 'mem_used_total / compr_data_size <= 1.05 after a fill',
      measured: memOverCompr.toFixed(3),
      met: memOverCompr <= 1.05,
    },
  ];
  overwrite.targets = [
    {
      goal: '>= 0.95x the bare lz4 compress rate',
      measured: `${overwriteVsCompress.toFixed(2)}x`,
      met: overwriteVsCompress >= 0.95,
    },
  ];
  overwrite.extra = { pages: n, overwriteVsCompress };
  read.targets = [
    {
      goal: '>= 1.0x the bare lz4 decompress rate',
      measured: `${readVsDecompress.toFixed(2)}x`,
      met: readVsDecompress >= 1.0,
    },
  ];
  write.extra = {
    pages: n,
    writePasses,
    writeVsCompress,
    origDataSize: mm.origDataSize,
    comprDataSize: mm.comprDataSize,
    memUsedTotal: mm.memUsedTotal,
    memUsedOverCompr: memOverCompr,
    comprRatio,
    effectiveRatio: mm.origDataSize / mm.memUsedTotal,
    samePages: mm.samePages,
    hugePages: mm.hugePages,
  };
  read.extra = { readVsDecompress, verified: true, pagesChecked: checked };
  compress.extra = { ...stream.kinds, lz4Ratio: (n * PAGE_SIZE) / lz4Bytes };
  if (!Number.isFinite(sink)) throw new Error('unreachable'); // keeps the results alive
  wdev.close();
  rdev.close();
  odev.close();
  return rows;
}
