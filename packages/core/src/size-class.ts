// The size-class table: which class an allocation lands in, pages per zspage,
// objects per zspage, merged (aliased) classes and the huge class, computed by
// the kernel's rules for a chain size of 4..16 pages. Pure and thread-agnostic.

import {
  PAGE_SIZE,
  ZS_HANDLE_SIZE,
  ZS_MAX_ALLOC_SIZE,
  ZS_MAX_CHAIN,
  ZS_MIN_ALLOC_SIZE,
  ZS_MIN_CHAIN,
  ZS_SIZE_CLASSES,
  ZS_SIZE_CLASS_DELTA,
} from './constants.js';
import { ZsError } from './errors.js';

/**
 * 'waste': the current rule (6.3+): first chain length k minimising (k*4096) mod size,
 * one page for power-of-two sizes. 'percent': the rule of the original chain-size
 * patch, which compared integer percentages of used space and so lost precision.
 */
export type ChainRule = 'waste' | 'percent';

export interface SizeClassTable {
  readonly chainSize: number;
  readonly rule: ChainRule;
  /** Object size of each of the 255 class indexes (32 + 16*i). */
  readonly size: Int32Array;
  readonly pagesPerZspage: Int32Array;
  readonly objsPerZspage: Int32Array;
  /** For every class index, the index of the class that really holds its objects. */
  readonly merged: Int32Array;
  /** Indexes of the distinct (non-alias) classes, largest first. */
  readonly distinct: readonly number[];
  /** Compressed sizes at or above this are stored as huge (raw) pages by zram. */
  readonly hugeClassSize: number;
  /** True for classes whose zspage is one page holding one object (no in-object header). */
  readonly huge: Uint8Array;
  /** For every request size 0..PAGE_SIZE, its class (merged index): malloc's one lookup. */
  readonly bySize: Uint8Array;
}

export function chainLength(size: number, chain: number, rule: ChainRule): number {
  if (rule === 'waste') {
    if ((size & (size - 1)) === 0) return 1;
    let best = 1;
    let minWaste = Number.MAX_SAFE_INTEGER;
    for (let k = 1; k <= chain; k++) {
      const waste = (k * PAGE_SIZE) % size;
      if (waste < minWaste) {
        minWaste = waste;
        best = k;
      }
    }
    return best;
  }
  let best = 1;
  let maxUsedPct = 0;
  for (let k = 1; k <= chain; k++) {
    const zspageSize = k * PAGE_SIZE;
    const usedPct = Math.floor(((zspageSize - (zspageSize % size)) * 100) / zspageSize);
    if (usedPct > maxUsedPct) {
      maxUsedPct = usedPct;
      best = k;
    }
  }
  return best;
}

/** Raw class index for an object of `size` bytes, header included. */
export function rawClassIndex(sizeWithHeader: number): number {
  if (sizeWithHeader <= ZS_MIN_ALLOC_SIZE) return 0;
  const idx = Math.ceil((sizeWithHeader - ZS_MIN_ALLOC_SIZE) / ZS_SIZE_CLASS_DELTA);
  return Math.min(idx, ZS_SIZE_CLASSES - 1);
}

export function buildSizeClasses(chainSize: number, rule: ChainRule = 'waste'): SizeClassTable {
  if (!Number.isInteger(chainSize) || chainSize < ZS_MIN_CHAIN || chainSize > ZS_MAX_CHAIN) {
    throw new ZsError('EINVAL', `chainSize must be an integer in ${ZS_MIN_CHAIN}..${ZS_MAX_CHAIN}, got ${chainSize}`);
  }
  const n = ZS_SIZE_CLASSES;
  const size = new Int32Array(n);
  const pagesPerZspage = new Int32Array(n);
  const objsPerZspage = new Int32Array(n);
  const merged = new Int32Array(n);
  const huge = new Uint8Array(n);
  const distinct: number[] = [];
  let hugeClassSize = 0;
  let prev = -1;
  for (let i = n - 1; i >= 0; i--) {
    const s = Math.min(ZS_MIN_ALLOC_SIZE + i * ZS_SIZE_CLASS_DELTA, ZS_MAX_ALLOC_SIZE);
    const k = chainLength(s, chainSize, rule);
    const objs = Math.floor((k * PAGE_SIZE) / s);
    size[i] = s;
    pagesPerZspage[i] = k;
    objsPerZspage[i] = objs;
    huge[i] = k === 1 && objs === 1 ? 1 : 0;
    // Iterating from the largest class down, the first class that holds more than
    // one object in more than one page bounds the huge classes.
    if (k !== 1 && objs !== 1 && hugeClassSize === 0) hugeClassSize = s;
    if (prev >= 0 && pagesPerZspage[prev] === k && objsPerZspage[prev] === objs) {
      merged[i] = prev;
      continue;
    }
    merged[i] = i;
    distinct.push(i);
    prev = i;
  }
  const bySize = new Uint8Array(PAGE_SIZE + 1);
  for (let s = 0; s <= PAGE_SIZE; s++) bySize[s] = merged[rawClassIndex(s + ZS_HANDLE_SIZE)]!;
  return { chainSize, rule, size, pagesPerZspage, objsPerZspage, merged, distinct, hugeClassSize, huge, bySize };
}

/** The class (merged index) an allocation request of `size` bytes lands in. */
export function classIndexFor(table: SizeClassTable, size: number): number {
  if (Number.isInteger(size) && size >= 0 && size <= PAGE_SIZE) return table.bySize[size]!;
  return table.merged[rawClassIndex(size + ZS_HANDLE_SIZE)]!;
}
