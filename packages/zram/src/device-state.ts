// The views one thread holds over a zram device's shared state (pool, slot
// table, status words, 64-bit counters, backing store), as one narrow type the
// device's modules take instead of the whole ZramDevice, and the checks every
// entry point makes against it: the fence, page indexes and byte ranges.

import type { AtomicMemory, AtomicOps, ZsPool, ZsPoolShared } from '@zsmalloc/core';
import type { BackingStore } from './backing.js';
import type { SlotJournal } from './slot-repair.js';
import { ZramError } from './errors.js';
import { checkRange } from './range.js';
import type { SlotTable } from './slots.js';
import { S } from './stats.js';

export const PAGE = 4096;

export interface DeviceState {
  readonly name: string;
  readonly pool: ZsPool;
  readonly slots: SlotTable;
  /** The 32-bit status words (stats.ts S). */
  readonly st: Int32Array;
  /** The 64-bit statistics (stats.ts C). */
  readonly c64: BigInt64Array;
  /** This thread's WebAssembly atomics over the stats memory (add64 on c64's words without a BigInt). */
  readonly statOps: AtomicOps;
  readonly backing: BackingStore;
  /** This thread's slot journal (slot-repair.ts): what a death midway leaves for the repair. */
  readonly journal: SlotJournal;
  /** Why this thread fenced the device ('' when it did not, or another thread did). */
  fenceReason: string;
}

/** Pages in the device now (0 while uninitialized). */
export function devicePages(d: DeviceState): number {
  return Atomics.load(d.st, S.DISKSIZE_PAGES);
}

export function fencedError(d: DeviceState): ZramError {
  return new ZramError(
    'EIO',
    `zram ${d.name}: fenced after a thread died mid-update; I/O refused so nothing reads back wrong${d.fenceReason ? ` (${d.fenceReason})` : ''}`,
  );
}

/**
 * Refuses I/O on a fenced device and page indexes outside it; brings the slot into
 * this thread's table view. Plain reads of the two words (an atomic load is a call
 * into the engine, and every page pays it): the size changes only while no I/O
 * runs, and a fence set meanwhile is seen by the next page, as it would be with an
 * atomic load read just before it was set.
 */
export function checkIndex(d: DeviceState, index: number): void {
  if (d.st[S.FENCED] !== 0) throw fencedError(d);
  const pages = d.st[S.DISKSIZE_PAGES]!;
  if (!(typeof index === 'number' && Number.isInteger(index) && index >= 0 && index < pages)) {
    throw new RangeError(`page index ${String(index)} outside the device (${pages} pages)`);
  }
  d.slots.cover(index);
}

/** Refuses I/O on a fenced device and byte ranges outside it (ZramRangeError); brings the range's slots into view. */
export function checkByteRange(d: DeviceState, offset: number, length: number, op: string): void {
  if (Atomics.load(d.st, S.FENCED) !== 0) throw fencedError(d);
  checkRange(offset, length, Atomics.load(d.st, S.DISKSIZE_PAGES) * PAGE, op);
  if (length > 0) d.slots.cover(Math.floor((offset + length - 1) / PAGE));
}

export type PoolShared = ZsPoolShared;

/** Structured-clonable description of a device: post it to a worker and ZramDevice.attach() it there. */
export interface ZramShared {
  readonly pool: PoolShared;
  readonly table: SharedArrayBuffer;
  /** The status words and counters (stats.ts), in a shared WebAssembly memory. */
  readonly stats: AtomicMemory;
  readonly bitmap: SharedArrayBuffer;
  readonly backingPath: SharedArrayBuffer;
  /** algorithm_params of every priority (levels, dictionaries). */
  readonly params: SharedArrayBuffer;
  readonly maxPages: number;
  readonly name: string;
  /** The slot table's lock-array id in the pool (held-lock records name it). */
  readonly lockArrayId: number;
}
