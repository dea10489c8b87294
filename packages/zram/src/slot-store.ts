// The slot store: how a page's content gets into a slot and out of it. prepare
// compresses and allocates a page's new content outside the slot lock into a
// PreparedPage (a value, reused: nothing is allocated per page); replaceLocked
// puts it into a slot, counting the net change once; freeSlotLocked and releaseContent take
// content out again and uncount it; loadLocked and decompressLoaded read it
// back. Also this thread's state those need (the SlotStore): its codec per
// priority, the access-time clock and the scratch pages (the kernel's per-CPU
// buffers).

import { ZsError } from '@zsmalloc/core';
import type { AlgorithmParamsStore } from './algorithm-params.js';
import { createCodec, type Codec } from './codec.js';
import { PAGE, type DeviceState } from './device-state.js';
import { ZramError } from './errors.js';
import { fillWord, sameFilled, type FillWord } from './same-page.js';
import {
  PRIO_SHIFT,
  SIZE_MASK,
  SlotTable,
  ZRAM_ENTRY_LOCK,
  ZRAM_HUGE,
  ZRAM_IDLE,
  ZRAM_PP_SLOT,
  ZRAM_SAME,
  ZRAM_WB,
} from './slots.js';
import { C, S, addCount, inc64, max64 } from './stats.js';
import { SlotJournal } from './slot-repair.js';

/** What prepare() made of a page, for installLocked()/replaceLocked(). */
export interface PreparedPage extends FillWord {
  /** Same-filled: the fill word is in lo/hi and nothing was allocated. */
  same: boolean;
  /** Otherwise: the pool object holding the page, its size and whether it is huge (stored uncompressed). */
  handle: number;
  size: number;
  huge: boolean;
}

export function newPreparedPage(): PreparedPage {
  return { same: false, lo: 0, hi: 0, handle: 0, size: 0, huge: false };
}

/** A device as one thread's slot store sees it: the shared views plus this thread's codecs, clock and scratch. */
export interface SlotStore extends DeviceState {
  readonly params: AlgorithmParamsStore;
  /** This thread's codec per priority, valid while codecGen matches S.PARAMS_GEN. */
  readonly codecs: (Codec | undefined)[];
  codecGen: number;
  /** The access-time clock: read once per batch (beginBatch) instead of once per page. */
  batchDepth: number;
  batchNow: number;
  /** Scratch page: read-modify-write, writeback, recompression, swap-in. */
  readonly page: Uint8Array;
  /** A compressed object copied out of the pool. */
  readonly cbuf: Uint8Array;
  /** The page prepare() fills for this thread's writes (one at a time: writes do not nest). */
  readonly prepared: PreparedPage;
  /** The 64-bit statistics as 32-bit halves (plain reads without BigInts). */
  readonly c32: Int32Array;
}

/** A device's views (`state`) and this thread's new codec cache, clock and scratch, as one object. */
export function newSlotStore(
  state: Omit<DeviceState, 'fenceReason' | 'journal'>,
  params: AlgorithmParamsStore,
): SlotStore {
  return {
    name: state.name,
    pool: state.pool,
    slots: state.slots,
    st: state.st,
    c64: state.c64,
    statOps: state.statOps,
    backing: state.backing,
    journal: new SlotJournal(state.pool, state.slots.lockArrayId),
    fenceReason: '',
    params,
    codecs: [],
    codecGen: -1,
    batchDepth: 0,
    batchNow: 0,
    page: new Uint8Array(PAGE),
    cbuf: new Uint8Array(PAGE),
    prepared: newPreparedPage(),
    c32: new Int32Array(state.c64.buffer, state.c64.byteOffset, state.c64.length * 2),
  };
}

// ---------------------------------------------------------------- clock and codecs

function clockNow(s: SlotStore): number {
  return Math.floor(Date.now() / 1000) - Atomics.load(s.st, S.EPOCH_SEC) + 1;
}

/** Seconds since the device epoch, for access times (the batch's time inside a batch). */
export function now(s: SlotStore): number {
  return s.batchDepth > 0 ? s.batchNow : clockNow(s);
}

export function beginBatch(s: SlotStore): void {
  if (s.batchDepth++ === 0) s.batchNow = clockNow(s);
}

export function endBatch(s: SlotStore): void {
  if (s.batchDepth > 0) s.batchDepth--;
}

/** This thread's codec for a compression priority (rebuilt after any algorithm or parameter change). */
export function codecFor(s: SlotStore, prio: number): Codec {
  // a plain read for the per-page check; a change is then read again atomically,
  // which orders the new algorithm ids and parameters before this thread's reads of them
  if (s.st[S.PARAMS_GEN] !== s.codecGen) {
    s.codecs.length = 0;
    s.codecGen = Atomics.load(s.st, S.PARAMS_GEN);
  }
  let c = s.codecs[prio];
  if (c === undefined) {
    const id = Atomics.load(s.st, S.COMP_ID0 + prio) - 1;
    if (id < 0) throw new ZramError('EIO', `no compression algorithm at priority ${prio}`);
    c = createCodec(id, s.params.codecParams(prio));
    s.codecs[prio] = c;
  }
  return c;
}

/** Index of the low and high 32-bit halves of a 64-bit counter in an Int32Array over the same bytes. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const LO = LITTLE_ENDIAN ? 0 : 1;
const HI = 1 - LO;

function updateMaxUsed(s: SlotStore, used: number): void {
  // a plain read of the mark's two halves first: it rarely moves, an atomic update
  // costs more per page, and reading it as a BigInt allocates. A stale read only
  // sends us to the atomic maximum, which decides.
  const w = C.MAX_USED_PAGES * 2;
  if (s.c32[w + HI] !== 0 || used <= s.c32[w + LO]! >>> 0) return;
  max64(s.c64, C.MAX_USED_PAGES, used);
}

// ---------------------------------------------------------------- into a slot

/**
 * Compresses and allocates the new content of a page into `p` (no slot lock
 * needed). On failure counts failed_writes and throws; nothing stored changes.
 */
export function prepare(s: SlotStore, page: Uint8Array, p: PreparedPage): void {
  if (sameFilled(page, p)) {
    p.same = true;
    return;
  }
  p.same = false;
  const pool = s.pool;
  let handle: number;
  let huge: boolean;
  let size: number;
  try {
    const out = codecFor(s, 0).compress(page);
    huge = out.length >= pool.hugeClassSize;
    size = huge ? PAGE : out.length;
    // allocated and filled in one step (the only copy between the codec and the pool)
    handle = pool.mallocWrite(huge ? page : out);
    s.journal.prepared(handle);
  } catch (e) {
    inc64(s.c64, C.FAILED_WRITES);
    throw e;
  }
  const used = pool.pagesUsed();
  updateMaxUsed(s, used);
  const limit = s.st[S.LIMIT_PAGES]!; // plain read: a new limit applies from the next page on
  if (limit !== 0 && used > limit) {
    pool.free(handle);
    s.journal.prepared(0);
    inc64(s.c64, C.FAILED_WRITES);
    throw new ZsError('ENOMEM', `zram: mem_limit ${limit * PAGE} reached (pool uses ${used * PAGE})`);
  }
  p.handle = handle;
  p.size = size;
  p.huge = huge;
}

/** Installs a prepared page into a slot whose old content is released by the caller (slot lock held); counts nothing. */
function installLocked(s: SlotStore, index: number, p: PreparedPage): void {
  if (p.same) s.slots.setEntryLocked(index, p.lo, p.hi, ZRAM_SAME, now(s));
  else s.slots.setEntryLocked(index, p.handle, 0, p.size | (p.huge ? ZRAM_HUGE : 0), now(s));
}

/** Per-counter changes, filled by uncountOf and applied by applyCounts (one per thread, reused). */
const delta = { stored: 0, compr: 0, same: 0, huge: 0 };

/** Sets delta to what uncounting a slot's content (flags f) changes: the one place slot flags become counts. */
function uncountOf(f: number): void {
  delta.stored = 0;
  delta.compr = 0;
  delta.same = 0;
  delta.huge = f & ZRAM_HUGE ? -1 : 0;
  if (f & ZRAM_WB) delta.stored = -1;
  else if (f & ZRAM_SAME) {
    delta.same = -1;
    delta.stored = -1;
  } else if ((f & SIZE_MASK) !== 0) {
    delta.compr = -(f & SIZE_MASK);
    delta.stored = -1;
  }
}

/** Applies delta: one atomic update for each counter that moves. */
function applyCounts(s: DeviceState): void {
  addCount(s.statOps, s.c64, C.PAGES_STORED, delta.stored);
  addCount(s.statOps, s.c64, C.COMPR_DATA_SIZE, delta.compr);
  addCount(s.statOps, s.c64, C.SAME_PAGES, delta.same);
  addCount(s.statOps, s.c64, C.HUGE_PAGES, delta.huge);
}

/**
 * Counts a slot's change from its old content (flags f) to prepared page p: the
 * net change of each counter, one atomic update for each that moves (the
 * kernel uncounts the old content and counts the new one, four updates for an
 * overwrite; the sums are the same). What releaseContent would uncount, and
 * what the page adds.
 */
function countReplace(s: SlotStore, f: number, p: PreparedPage): void {
  uncountOf(f);
  delta.stored++;
  if (p.same) delta.same++;
  else {
    delta.compr += p.size;
    if (p.huge) {
      delta.huge++;
      s.statOps.add64(C.HUGE_PAGES_SINCE, 1);
    }
  }
  applyCounts(s);
}

/**
 * Does handle h name an object of `size` bytes? A look without the pool's locks
 * first (the slot lock keeps the object ours, and a move keeps its size); only
 * when that look does not confirm it, objSize under the locks decides (and
 * throws for a handle that names nothing).
 */
function ownSize(s: SlotStore, h: number, size: number): boolean {
  return s.pool.objSizeUnlocked(h) === size || s.pool.objSize(h) === size;
}

/**
 * Swaps a slot's old content for a prepared page (slot lock held). If the slot
 * names an object that is not its own (freed, or reused by this very write),
 * the prepared object is freed again, the write counts as failed and the error
 * propagates: the pool's object count is what it was and nothing leaks.
 */
export function replaceLocked(s: SlotStore, index: number, p: PreparedPage): void {
  const f = s.slots.flagsLocked(index);
  const h = s.slots.handleLocked(index);
  try {
    if ((f & (ZRAM_WB | ZRAM_SAME)) === 0 && (f & SIZE_MASK) !== 0) {
      // the slot must still name its own object: not one freed (objSize throws),
      // nor a freed handle malloc has since given to this very write, nor one of another size
      if ((!p.same && h === p.handle) || !ownSize(s, h, f & SIZE_MASK))
        throw new ZsError('EINVAL', `zram: slot ${index} names handle ${h}, which is not its object (freed or reused)`);
    }
  } catch (e) {
    if (!p.same) {
      s.pool.free(p.handle);
      s.journal.prepared(0);
    }
    inc64(s.c64, C.FAILED_WRITES);
    throw e;
  }
  // the new content goes in first, then the old one is freed: a thread killed in
  // between leaves the journal's record, and the repair finishes the replacement
  if (p.same) s.journal.replace(index, p.lo, p.hi, ZRAM_SAME, h, f);
  else s.journal.replace(index, p.handle, 0, p.size | (p.huge ? ZRAM_HUGE : 0), h, f);
  installLocked(s, index, p);
  freeContent(s, f, h);
  countReplace(s, f, p);
  s.journal.replaced();
}

// ---------------------------------------------------------------- out of a slot

/** zram_free_page: releases whatever the slot holds and clears it (slot lock held). */
export function freeSlotLocked(s: DeviceState, index: number): void {
  const slots = s.slots;
  const f = slots.flagsLocked(index);
  if ((f & ~ZRAM_ENTRY_LOCK) === 0) return; // never written, or already freed: nothing to clear
  const h = slots.handleLocked(index);
  // the slot lets go first, then its content: the slot never names something freed,
  // and a thread killed midway leaves the journal's record for the repair
  s.journal.replace(index, 0, 0, 0, h, f);
  slots.setEntryLocked(index, 0, 0, 0, 0);
  releaseContent(s, f, h);
  s.journal.replaced();
}

/** Frees what a slot held (flags f, handle word h) and uncounts it; the slot no longer names it. */
export function releaseContent(s: DeviceState, f: number, h: number): void {
  freeContent(s, f, h);
  uncountOf(f);
  applyCounts(s);
}

/** Frees what a slot held (flags f, handle word h), counting nothing. */
function freeContent(s: DeviceState, f: number, h: number): void {
  if (f & ZRAM_WB) s.backing.freeBlock(h);
  else if ((f & ZRAM_SAME) === 0 && (f & SIZE_MASK) !== 0) s.pool.free(h);
}

/**
 * Loads a slot's content (slot lock held). Fills dst and returns 0; or, for a
 * compressed object, copies it into s.cbuf and returns the slot's flags (never
 * 0: they carry its size and priority), to pass to decompressLoaded() after
 * unlocking.
 */
export function loadLocked(s: SlotStore, index: number, dst: Uint8Array): number {
  const slots = s.slots;
  const f = slots.flags(index);
  if (f & ZRAM_WB) {
    s.backing.readBlock(slots.handle(index), dst);
    inc64(s.c64, C.BD_READS);
    return 0;
  }
  if (f & ZRAM_SAME) {
    fillWord(dst, slots.handle(index), slots.fillHigh(index));
    return 0;
  }
  const size = f & SIZE_MASK;
  if (size === 0) {
    dst.fill(0);
    return 0;
  }
  if (f & ZRAM_HUGE) {
    s.pool.read(slots.handle(index), dst);
    return 0;
  }
  s.pool.read(slots.handle(index), s.cbuf);
  return f;
}

/** Decompresses what loadLocked() left in s.cbuf (`loaded`: its return value, nonzero) into dst. */
export function decompressLoaded(s: SlotStore, loaded: number, dst: Uint8Array): void {
  const got = codecFor(s, (loaded >>> PRIO_SHIFT) & 3).decompress(s.cbuf, loaded & SIZE_MASK, dst);
  if (got !== PAGE) throw new ZramError('EIO', `decompression produced ${got} bytes`);
}

/** zram_accessed: clears IDLE and PP_SLOT, stamps the access time (slot lock held). */
function accessedLocked(s: SlotStore, index: number): void {
  s.slots.clearFlag(index, ZRAM_IDLE | ZRAM_PP_SLOT);
  s.slots.setAccessTime(index, now(s));
}

// ---------------------------------------------------------------- page operations

/** Reads one page into dst (a whole page); counts failed_reads on failure. */
export function readSlot(s: SlotStore, index: number, dst: Uint8Array): void {
  const slots = s.slots;
  let loaded = 0;
  slots.lock(index);
  try {
    loaded = loadLocked(s, index, dst);
    if (SlotTable.allocated(slots.flags(index))) accessedLocked(s, index);
  } catch (e) {
    inc64(s.c64, C.FAILED_READS);
    throw e;
  } finally {
    slots.unlock(index);
  }
  if (loaded !== 0) {
    try {
      decompressLoaded(s, loaded, dst);
    } catch (e) {
      inc64(s.c64, C.FAILED_READS);
      throw e;
    }
  }
}

/** Full-page store: compress and allocate first, then swap under the slot lock. */
export function storeSlot(s: SlotStore, index: number, src: Uint8Array): void {
  const p = s.prepared;
  prepare(s, src, p);
  s.slots.lock(index);
  try {
    replaceLocked(s, index, p);
  } finally {
    s.slots.unlock(index);
  }
}

/** Read-modify-write of src[pos, pos + n) into page `index` at byte `off`, all under its slot lock. */
export function writePartial(s: SlotStore, index: number, off: number, src: Uint8Array, pos: number, n: number): void {
  const page = s.page;
  const slots = s.slots;
  slots.lock(index);
  try {
    try {
      const loaded = loadLocked(s, index, page);
      if (loaded !== 0) decompressLoaded(s, loaded, page);
    } catch (e) {
      inc64(s.c64, C.FAILED_WRITES);
      throw e;
    }
    page.set(src.subarray(pos, pos + n), off);
    prepare(s, page, s.prepared);
    replaceLocked(s, index, s.prepared);
  } finally {
    slots.unlock(index);
  }
}

/** Reads part of one page: dst[pos, pos + n) from byte `off` of page `index`. */
export function readPartial(s: SlotStore, index: number, off: number, dst: Uint8Array, pos: number, n: number): void {
  readSlot(s, index, s.page);
  dst.set(s.page.subarray(off, off + n), pos);
}

/**
 * Swap-in of a written-back page: reads it from the backing file and stores it in
 * memory again, all under the slot lock, so a concurrent write cannot be lost.
 * Returns false when the slot is not (or no longer) written back.
 */
export function swapIn(s: SlotStore, index: number): boolean {
  const page = s.page;
  const slots = s.slots;
  slots.lock(index);
  try {
    if ((slots.flags(index) & ZRAM_WB) === 0) return false;
    loadLocked(s, index, page);
    prepare(s, page, s.prepared);
    replaceLocked(s, index, s.prepared);
    return true;
  } finally {
    slots.unlock(index);
  }
}
