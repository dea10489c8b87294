// Codec micro-benchmarks: compress and decompress of the same swap-like stream
// of 4 KiB pages (the zram benchmark's: zero, same-filled, text, binary,
// random) with lz4-wasm-nodejs (zram's lz4 codec, the baseline of every row),
// lz4-napi (native lz4_flex, for comparison), deflate, brotli and zstd at
// levels 1, 3 and 7 and at level 3 with a dictionary trained (by zram's
// trainer) on a disjoint sample of the same kind of stream (zram's codecs). MB/s counts uncompressed bytes, both ways; each compressor row notes
// the stream's compression ratio (lz4 sizes without the 4-byte length prefix
// both libraries put in front). Every codec's round trip of every page is
// checked byte for byte outside the timed part.

import { PAGE_SIZE } from '@zsmalloc/core';
import { createCodec, trainZstdDictionary, type Codec, type CodecParams } from '@zsmalloc/zram';
import { compressSync as napiCompress, uncompressSync as napiUncompress } from 'lz4-napi';
import { measure, type Case, type MicroConfig } from '../measure.js';
import { linkBaselines, type BenchRow } from '../report.js';
import { swapLikeStream } from './zram.js';

/** lz4-napi's compressSync prepends the uncompressed size (u32 little-endian), as lz4-wasm does. */
const NAPI_PREFIX = 4;

interface CodecUnderTest {
  label: string;
  /** Pages per batch, as a fraction of the stream (slow codecs get smaller batches). */
  share: number;
  compress: (page: Buffer) => Uint8Array;
  /** Decompresses `c` (this codec's own output for that page) into `dst`. */
  decompress: (c: Uint8Array, dst: Uint8Array) => void;
  /** Bytes of `c` counted in the ratio. */
  size: (c: Uint8Array) => number;
}

function zramCodec(name: string, label: string, share: number, params: CodecParams = {}): CodecUnderTest {
  const codec: Codec = createCodec(name, params);
  return {
    label,
    share,
    compress: (p) => codec.compress(p).slice(),
    decompress: (c, dst) => {
      codec.decompress(c, c.length, dst);
    },
    size: (c) => c.length,
  };
}

function napiCodec(): CodecUnderTest {
  return {
    label: 'lz4-napi',
    share: 1,
    compress: (p) => napiCompress(p),
    decompress: (c, dst) => {
      dst.set(napiUncompress(c));
    },
    size: (c) => c.length - NAPI_PREFIX,
  };
}

/** A 32 KiB dictionary trained on a sample of the same kind of stream with another seed (disjoint pages). */
function trainingDictionary(n: number): Uint8Array {
  const sample = swapLikeStream(Math.max(256, n), 7).pages;
  return trainZstdDictionary(sample, { dictSize: 32 * 1024, segmentSize: 128 });
}

const BASE = 'lz4-wasm';
const compressName = (label: string): string => `${label} compress 4KiB`;
const decompressName = (label: string): string => `${label} decompress 4KiB`;

export async function benchCodecs(cfg: MicroConfig): Promise<BenchRow[]> {
  const n = cfg.zramPages;
  const stream = swapLikeStream(n);
  // Buffer views of the pages (lz4-napi's compressSync takes a Buffer; the others take any Uint8Array)
  const pages = stream.pages.map((p) => Buffer.from(p.buffer, p.byteOffset, p.length));
  const codecs: CodecUnderTest[] = [
    zramCodec('lz4', BASE, 1),
    napiCodec(),
    zramCodec('deflate', 'deflate', 1 / 4),
    zramCodec('brotli', 'brotli', 1 / 8),
    zramCodec('zstd', 'zstd-1', 1 / 4, { level: 1 }),
    zramCodec('zstd', 'zstd-3', 1 / 4, { level: 3 }),
    zramCodec('zstd', 'zstd-7', 1 / 8, { level: 7 }),
    zramCodec('zstd', 'zstd-3+dict', 1 / 4, { level: 3, dict: trainingDictionary(n) }),
  ];
  // every codec's compressed form of every page (decompress input), made once
  const compressed = codecs.map((k) => pages.map((p) => k.compress(p)));
  const out = new Uint8Array(PAGE_SIZE);
  let sink = 0;

  const compressCases: Case[] = [];
  const decompressCases: Case[] = [];
  codecs.forEach((k, ci) => {
    const batch = Math.max(1, Math.round(n * k.share));
    const mine = compressed[ci]!;
    let cur = 0;
    let dcur = 0;
    compressCases.push({
      name: compressName(k.label),
      group: 'codecs',
      batch,
      bytesPerOp: PAGE_SIZE,
      ...(k.label === BASE ? {} : { baseline: compressName(BASE) }),
      run(m) {
        let s = 0;
        for (let i = 0; i < m; i++) {
          s += k.compress(pages[cur]!).length;
          cur = cur + 1 < n ? cur + 1 : 0;
        }
        sink ^= s;
        return m;
      },
    });
    decompressCases.push({
      name: decompressName(k.label),
      group: 'codecs',
      batch,
      bytesPerOp: PAGE_SIZE,
      ...(k.label === BASE ? {} : { baseline: decompressName(BASE) }),
      run(m) {
        for (let i = 0; i < m; i++) {
          k.decompress(mine[dcur]!, out);
          dcur = dcur + 1 < n ? dcur + 1 : 0;
        }
        sink ^= out[0]!;
        return m;
      },
    });
  });
  // batches are whole numbers of pages, not scaled (the stream is already small in a smoke run)
  const rows = linkBaselines(
    await measure([...compressCases, ...decompressCases], { ...cfg, batchScale: 1 }, 'codecs'),
  );

  // outside the timed part: every codec's round trip is exact, and its ratio over the stream
  const check = new Uint8Array(PAGE_SIZE);
  codecs.forEach((k, ci) => {
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      const c = compressed[ci]![i]!;
      const again = k.compress(pages[i]!);
      if (again.length !== c.length)
        throw new Error(`${k.label}: page ${i} compressed to ${again.length} then ${c.length} bytes`);
      check.fill(0xa5);
      k.decompress(c, check);
      const want = pages[i]!;
      for (let b = 0; b < PAGE_SIZE; b++) {
        if (check[b] !== want[b]) throw new Error(`${k.label}: page ${i} byte ${b} differs after a round trip`);
      }
      bytes += k.size(c);
    }
    const row = rows.find((r) => r.name === compressName(k.label))!;
    row.extra = { comprRatio: (n * PAGE_SIZE) / bytes, avgComprBytes: bytes / n, pages: n, verified: true };
    if (k.label === 'lz4-napi') {
      // the prefix lz4-napi puts in front: the page size, little-endian
      const c = compressed[ci]![0]!;
      const prefix = c[0]! | (c[1]! << 8) | (c[2]! << 16) | (c[3]! << 24);
      if (prefix !== PAGE_SIZE) throw new Error(`lz4-napi: size prefix ${prefix}, expected ${PAGE_SIZE}`);
    }
  });
  if (!Number.isFinite(sink)) throw new Error('unreachable'); // keeps the results alive
  return rows;
}
