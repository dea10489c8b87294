// The device's shared control words and statistics ("struct zram_stats" and
// the knobs next to it), one Int32Array over a SharedArrayBuffer so every
// attached thread updates the same numbers with Atomics, plus the kernel's
// text layouts of mm_stat, io_stat, bd_stat and debug_stat.
//
// Widths: every counter is a 32-bit word read as unsigned. Byte counts are
// kept only where they are bounded by the device size (compr_data_size <=
// disksize <= MAX_DISKSIZE < 4 GiB); everything else counts pages or events.

export enum S {
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
  // knobs
  DISKSIZE_PAGES,
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
  PARAMS_GEN, // bumped whenever an algorithm or its parameters change (threads rebuild codecs)
  COUNT,
}

export const STATS_WORDS = 32;

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
