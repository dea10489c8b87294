// zstd dictionary training ("zram train-dict"). Neither zstd package this
// project uses exposes libzstd's trainer (ZDICT_trainFromBuffer), so this
// module builds a raw-content dictionary itself, the way zstd's COVER trainer
// chooses content: count how many sample pages contain each 8-byte d-gram,
// cut the samples into one epoch per dictionary segment, take from each epoch
// the segment whose not-yet-covered d-grams are the most frequent, and lay the
// segments out with the best last (zstd reaches the end of a dictionary with
// the shortest offsets). libzstd accepts any bytes as a raw-content
// dictionary, so the output needs no header.

import { ZsError } from '@zsmalloc/core';

const D = 8;
const HASH_BITS = 20;
export const DEFAULT_DICT_SIZE = 16 * 1024;
export const DEFAULT_SEGMENT_SIZE = 256;

function hashAt(b: Uint8Array, i: number): number {
  const lo = b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
  const hi = b[i + 4]! | (b[i + 5]! << 8) | (b[i + 6]! << 16) | (b[i + 7]! << 24);
  return (Math.imul(lo, 0x9e3779b1) ^ Math.imul(hi ^ (lo >>> 15), 0x85ebca77)) >>> (32 - HASH_BITS);
}

export interface TrainOptions {
  /** Dictionary size in bytes (default 16 KiB). */
  dictSize?: number;
  /** Segment length in bytes (default 256). */
  segmentSize?: number;
}

/**
 * Builds a dictionary from sample pages (each a Uint8Array; a page that is all one byte
 * is skipped: zram stores those as same-filled). Returns at most dictSize bytes.
 */
export function trainZstdDictionary(samples: readonly Uint8Array[], opts: TrainOptions = {}): Uint8Array {
  const dictSize = opts.dictSize ?? DEFAULT_DICT_SIZE;
  const k = opts.segmentSize ?? DEFAULT_SEGMENT_SIZE;
  if (!Number.isInteger(dictSize) || dictSize < 256 || dictSize > 1 << 20)
    throw new ZsError('EINVAL', `dictionary size must be an integer in 256..${1 << 20}, got ${dictSize}`);
  if (!Number.isInteger(k) || k < 16 || k > dictSize)
    throw new ZsError('EINVAL', `segment size must be an integer in 16..${dictSize}, got ${k}`);
  const useful = samples.filter((s) => s.length >= k && !s.every((b) => b === s[0]));
  if (useful.length === 0) throw new ZsError('EINVAL', 'no usable sample pages (all empty or same-filled)');

  // How many samples contain each d-gram (counted once per sample).
  const freq = new Uint32Array(1 << HASH_BITS);
  const seen = new Int32Array(1 << HASH_BITS).fill(-1);
  for (let s = 0; s < useful.length; s++) {
    const b = useful[s]!;
    for (let i = 0; i + D <= b.length; i++) {
      const h = hashAt(b, i);
      if (seen[h] !== s) {
        seen[h] = s;
        freq[h]!++;
      }
    }
  }

  const nSegs = Math.max(1, Math.floor(dictSize / k));
  const chosen: { score: number; sample: number; at: number }[] = [];
  const perEpoch = Math.max(1, Math.ceil(useful.length / nSegs));
  for (let e = 0; e * perEpoch < useful.length && chosen.length < nSegs; e++) {
    let best = { score: 0, sample: -1, at: 0 };
    for (let s = e * perEpoch; s < Math.min(useful.length, (e + 1) * perEpoch); s++) {
      const b = useful[s]!;
      // Sliding sum of d-gram frequencies over windows of k bytes.
      const grams = k - D + 1;
      let sum = 0;
      for (let i = 0; i < grams; i++) sum += freq[hashAt(b, i)]!;
      for (let at = 0; ; at++) {
        if (sum > best.score) best = { score: sum, sample: s, at };
        if (at + k >= b.length) break;
        sum += freq[hashAt(b, at + grams)]! - freq[hashAt(b, at)]!;
      }
    }
    if (best.sample < 0) continue;
    chosen.push(best);
    const b = useful[best.sample]!;
    for (let i = best.at; i + D <= best.at + k; i++) freq[hashAt(b, i)] = 0;
  }
  if (chosen.length === 0) throw new ZsError('EINVAL', 'samples hold no repeated content to train on');

  chosen.sort((a, b) => a.score - b.score);
  const out = new Uint8Array(chosen.length * k);
  for (let j = 0; j < chosen.length; j++) {
    const c = chosen[j]!;
    out.set(useful[c.sample]!.subarray(c.at, c.at + k), j * k);
  }
  return out;
}

/** Splits a buffer of whole pages into page views (a trailing partial page is ignored). */
export function pagesOf(buf: Uint8Array, pageSize = 4096): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0; off + pageSize <= buf.length; off += pageSize) out.push(buf.subarray(off, off + pageSize));
  return out;
}
