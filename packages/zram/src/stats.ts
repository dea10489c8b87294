// The device's shared control words and statistics ("struct zram_stats" and
// the knobs next to it) in one SharedArrayBuffer, so every attached thread
// updates the same numbers with Atomics, plus the kernel's text layouts of
// mm_stat, io_stat, bd_stat and debug_stat.
//
// Widths: every statistic is a 64-bit counter (the kernel's atomic64_t), kept
// in a BigInt64Array at the start of the buffer and changed with
// Atomics.add/sub/compareExchange on it, or, on the page write path, with the
// 64-bit add of core's WebAssembly atomics (one locked instruction, no BigInt;
// the buffer is a shared WebAssembly memory's for that), so each update is one
// atomic read-modify-write and every read is a consistent 64-bit value (no torn
// low/high halves). The knobs after it are 32-bit words (page counts and
// ids). Byte and page counts past 4 GiB / 2^32 pages are therefore exact.

import { type AtomicMemory, type AtomicOps, createAtomicMemory } from '@zsmalloc/core';

/** 64-bit counters, indexes into the BigInt64Array. */
export enum C {
  // mm_stat
  PAGES_STORED = 0,
  COMPR_DATA_SIZE, // bytes
  SAME_PAGES,
  HUGE_PAGES,
  HUGE_PAGES_SINCE,
  MAX_USED_PAGES,
  COMPACTED_BASE, // pool pagesCompacted at the last reset (mm_stat counts from there)
  // io_stat
  FAILED_READS,
  FAILED_WRITES,
  INVALID_IO,
  NOTIFY_FREE,
  // bd_stat (4 KiB units)
  BD_COUNT,
  BD_READS,
  BD_WRITES,
  // debug_stat
  WRITESTALL,
  MISS_FREE,
  COUNT,
}

/** 32-bit knobs, indexes into the Int32Array that follows the counters. */
export enum S {
  DISKSIZE_PAGES = 0,
  LIMIT_PAGES,
  WB_LIMIT_ENABLE,
  WB_LIMIT, // 4 KiB units
  COMP_ID0, // algorithm id + 1 per priority (0 = none)
  COMP_ID1,
  COMP_ID2,
  COMP_ID3,
  EPOCH_SEC, // wall-clock seconds at creation; access times count from here
  BACKING_GEN, // bumped whenever the backing file changes
  BACKING_PATH_LEN,
  BACKING_BLOCKS, // usable bits in the backing bitmap (block 0 is never used)
  BACKING_HINT, // where the next block search starts
  BACKING_FD, // the backing file's descriptor + 1 (0: none); descriptors are process-wide
  FENCED, // 1 once a thread's death left damage repair could not undo: all I/O refused
  PARAMS_GEN, // bumped whenever an algorithm or its parameters change (threads rebuild codecs)
  COUNT,
}

export const STATS_WORDS = 32;
/** Bytes of the counters; the knob words start here. */
export const COUNTERS_BYTES = 32 * 8;
export const STATS_BYTES = COUNTERS_BYTES + STATS_WORDS * 4;

/** A new stats buffer: a shared WebAssembly memory (so the page write path can use core's 64-bit atomic add). */
export function createStatsMemory(): AtomicMemory {
  return createAtomicMemory(STATS_BYTES);
}

/** The two views of a stats buffer. */
export function statsViews(sab: SharedArrayBuffer): { c64: BigInt64Array; st: Int32Array } {
  return { c64: new BigInt64Array(sab, 0, COUNTERS_BYTES / 8), st: new Int32Array(sab, COUNTERS_BYTES, STATS_WORDS) };
}

/** BigInts 0..4096 made once: a page's byte counts are added per page, and BigInt(n) allocates. */
const SMALL_BIGINTS: readonly bigint[] = Array.from({ length: 4097 }, (_, n) => BigInt(n));

function big(n: number): bigint {
  return n >= 0 && n <= 4096 && (n | 0) === n ? SMALL_BIGINTS[n]! : BigInt(n);
}

export function add64(c: BigInt64Array, i: C, n: number): void {
  Atomics.add(c, i, big(n));
}

export function sub64(c: BigInt64Array, i: C, n: number): void {
  Atomics.sub(c, i, big(n));
}

/**
 * Adds n (any sign) to counter i through `ops` (the stats memory's WebAssembly
 * atomics): one 64-bit add, no BigInt; an amount past 32 bits takes the BigInt way.
 * What the page write path changes its counters with.
 */
export function addCount(ops: AtomicOps, c: BigInt64Array, i: C, n: number): void {
  if (n === 0) return;
  if ((n | 0) === n) ops.add64(i, n);
  else if (n > 0) add64(c, i, n);
  else sub64(c, i, -n);
}

export function inc64(c: BigInt64Array, i: C): void {
  Atomics.add(c, i, 1n);
}

export function dec64(c: BigInt64Array, i: C): void {
  Atomics.sub(c, i, 1n);
}

/** A counter as a number (exact below 2^53). */
export function get64(c: BigInt64Array, i: C): number {
  return Number(Atomics.load(c, i));
}

/** Raises counter i to v if it is lower (a lock-free maximum). */
export function max64(c: BigInt64Array, i: C, v: number): void {
  const nv = BigInt(v);
  for (;;) {
    const cur = Atomics.load(c, i);
    if (nv <= cur || Atomics.compareExchange(c, i, cur, nv) === cur) return;
  }
}

/** C's "%8llu" for a non-negative integer. */
export function u8(v: number): string {
  return String(v).padStart(8, ' ');
}

export function u32(st: Int32Array, i: number): number {
  return Atomics.load(st, i) >>> 0;
}

export interface MmStat {
  origDataSize: number;
  comprDataSize: number;
  memUsedTotal: number;
  memLimit: number;
  memUsedMax: number;
  samePages: number;
  pagesCompacted: number;
  hugePages: number;
  hugePagesSince: number;
}

export interface IoStat {
  failedReads: number;
  failedWrites: number;
  invalidIo: number;
  notifyFree: number;
}
export interface BdStat {
  bdCount: number;
  bdReads: number;
  bdWrites: number;
}
export interface DebugStat {
  writestall: number;
  missFree: number;
}

export function mmStatText(s: MmStat): string {
  return (
    `${u8(s.origDataSize)} ${u8(s.comprDataSize)} ${u8(s.memUsedTotal)} ${u8(s.memLimit)} ${u8(s.memUsedMax)} ` +
    `${u8(s.samePages)} ${u8(s.pagesCompacted)} ${u8(s.hugePages)} ${u8(s.hugePagesSince)}\n`
  );
}

export function ioStatText(s: IoStat): string {
  return `${u8(s.failedReads)} ${u8(s.failedWrites)} ${u8(s.invalidIo)} ${u8(s.notifyFree)}\n`;
}

export function bdStatText(s: BdStat): string {
  return `${u8(s.bdCount)} ${u8(s.bdReads)} ${u8(s.bdWrites)}\n`;
}

export function debugStatText(s: DebugStat): string {
  return `version: 1\n${u8(s.writestall)} ${u8(s.missFree)}\n`;
}
