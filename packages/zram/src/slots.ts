// The zram slot table ("zram->table[]"): one entry per 4 KiB page of the
// device, in a growable SharedArrayBuffer so every thread sees the same
// entries. This module owns the entry layout, the flag bits and the per-slot
// lock (the ENTRY_LOCK bit, a bit spinlock taken through the pool so its
// statistics land in the pool's lock_stat).
//
// Entry layout, 4 Int32 words per slot:
//   [0] handle: zsmalloc handle; or the low 32 bits of the fill word (SAME);
//       or the backing block index (WB)
//   [1] flags: low 13 bits (PAGE_SHIFT + 1) = compressed size, then the flag
//       bits below, then 2 bits of compression priority
//   [2] access time, seconds since the device epoch (0 = never)
//   [3] high 32 bits of the fill word (SAME)
//
// Every flag change keeps the bits this module does not own, so the lock bit
// (and anything the lock implementation keeps in the word) is never clobbered:
// a compare-and-swap, or, by the lock holder replacing a whole entry, one
// atomic store (only the holder changes owned bits).

import { SITE_SLOT_ACCESS, SLOT_LOCK, type ZsPool } from '@zsmalloc/core';

export const SLOT_WORDS = 4;
export const SLOT_BYTES = SLOT_WORDS * 4;

export const FLAG_SHIFT = 13; // PAGE_SHIFT + 1
export const SIZE_MASK = (1 << FLAG_SHIFT) - 1;
export const ZRAM_SAME = 1 << 13;
export const ZRAM_ENTRY_LOCK = 1 << 14;
export const ZRAM_WB = 1 << 15;
export const ZRAM_PP_SLOT = 1 << 16;
export const ZRAM_HUGE = 1 << 17;
export const ZRAM_IDLE = 1 << 18;
export const ZRAM_INCOMPRESSIBLE = 1 << 19;
export const PRIO_SHIFT = 20;
export const PRIO_MASK = 3 << PRIO_SHIFT;
/** Bits this module owns (everything it defines except the lock bit). */
export const OWNED_MASK =
  SIZE_MASK | ZRAM_SAME | ZRAM_WB | ZRAM_PP_SLOT | ZRAM_HUGE | ZRAM_IDLE | ZRAM_INCOMPRESSIBLE | PRIO_MASK;

/** The slot lock's class (its place in the lock order: core's lock-classes.ts). */
export const SLOT_LOCK_CLASS = SLOT_LOCK;

export class SlotTable {
  /**
   * Fixed-length view over the growable table buffer (a length-tracking view is
   * several times slower to index on Node 20); refreshed when the table grows.
   */
  words: Int32Array;
  private readonly lockClass: number;

  constructor(
    readonly buffer: SharedArrayBuffer,
    private readonly pool: ZsPool,
    /** The table's lock-array id in the pool (held-lock and intent records name it). */
    readonly lockArrayId: number,
  ) {
    this.words = new Int32Array(buffer, 0, buffer.byteLength / 4);
    this.lockClass = pool.lockClassId(SLOT_LOCK_CLASS);
    pool.nameLockArray(buffer, lockArrayId);
  }

  static allocate(slots: number, maxSlots: number): SharedArrayBuffer {
    return new SharedArrayBuffer(slots * SLOT_BYTES, { maxByteLength: Math.max(slots, maxSlots) * SLOT_BYTES });
  }

  /** Makes room for `slots` entries (the buffer never shrinks). */
  ensure(slots: number): void {
    const need = slots * SLOT_BYTES;
    if (this.buffer.byteLength < need) this.buffer.grow(need);
    this.refresh();
  }

  /** Re-creates the view over the whole buffer (another thread may have grown it). */
  refresh(): void {
    if (this.words.length !== this.buffer.byteLength / 4)
      this.words = new Int32Array(this.buffer, 0, this.buffer.byteLength / 4);
  }

  /** Makes sure slot `index` is inside this thread's view. */
  cover(index: number): void {
    if (index * SLOT_WORDS >= this.words.length) this.refresh();
  }

  lock(index: number, site = SITE_SLOT_ACCESS): void {
    this.pool.bitLock(this.words, index * SLOT_WORDS + 1, ZRAM_ENTRY_LOCK, this.lockClass, site);
  }

  unlock(index: number): void {
    this.pool.bitUnlock(this.words, index * SLOT_WORDS + 1, ZRAM_ENTRY_LOCK, this.lockClass);
  }

  /** Releases slot locks still held by threads that died, in this table only (see ZsPool.recoverDeadLocks). */
  recoverDeadOwners(): number {
    this.refresh();
    return this.pool.recoverDeadLocks(this.words);
  }

  trylock(index: number): boolean {
    return this.pool.bitTrylock(this.words, index * SLOT_WORDS + 1, ZRAM_ENTRY_LOCK, this.lockClass, SITE_SLOT_ACCESS);
  }

  flags(index: number): number {
    return Atomics.load(this.words, index * SLOT_WORDS + 1);
  }

  /** Replaces every owned bit of the flags word with `owned` (lock holder only). */
  setOwned(index: number, owned: number): void {
    const w = this.words;
    const i = index * SLOT_WORDS + 1;
    for (;;) {
      const old = Atomics.load(w, i);
      const next = (old & ~OWNED_MASK) | (owned & OWNED_MASK);
      if (Atomics.compareExchange(w, i, old, next) === old) return;
    }
  }

  /**
   * The flags word as the slot's lock holder reads it: a plain read, since every
   * change to the owned bits is made under the lock (others only try the lock bit).
   */
  flagsLocked(index: number): number {
    return this.words[index * SLOT_WORDS + 1]!;
  }

  /** The handle word as the slot's lock holder reads it (a plain read, as flagsLocked). */
  handleLocked(index: number): number {
    return this.words[index * SLOT_WORDS]!;
  }

  /**
   * Sets a whole entry (lock holder only): the handle, the fill word's high half and
   * the access time as plain stores, then the flags word (owned bits replaced, the
   * lock bit kept) with one atomic store, which orders the others before it. One
   * atomic instead of one per word plus a compare-and-swap loop: only the holder
   * changes owned bits, so nothing another thread does to the word can be lost.
   */
  setEntryLocked(index: number, handle: number, hi: number, owned: number, time: number): void {
    const w = this.words;
    const i = index * SLOT_WORDS;
    w[i] = handle;
    w[i + 3] = hi;
    w[i + 2] = time;
    Atomics.store(w, i + 1, (w[i + 1]! & ~OWNED_MASK) | (owned & OWNED_MASK));
  }

  setFlag(index: number, bits: number): void {
    Atomics.or(this.words, index * SLOT_WORDS + 1, bits & OWNED_MASK);
  }

  clearFlag(index: number, bits: number): void {
    Atomics.and(this.words, index * SLOT_WORDS + 1, ~(bits & OWNED_MASK));
  }

  handle(index: number): number {
    return Atomics.load(this.words, index * SLOT_WORDS);
  }

  setHandle(index: number, handle: number): void {
    Atomics.store(this.words, index * SLOT_WORDS, handle);
  }

  fillHigh(index: number): number {
    return Atomics.load(this.words, index * SLOT_WORDS + 3);
  }

  setFillHigh(index: number, hi: number): void {
    Atomics.store(this.words, index * SLOT_WORDS + 3, hi);
  }

  accessTime(index: number): number {
    return Atomics.load(this.words, index * SLOT_WORDS + 2);
  }

  setAccessTime(index: number, t: number): void {
    Atomics.store(this.words, index * SLOT_WORDS + 2, t);
  }

  /** zram_allocated(): the slot holds data (an object, a fill word or a backing block). */
  static allocated(flags: number): boolean {
    return (flags & (SIZE_MASK | ZRAM_SAME | ZRAM_WB)) !== 0;
  }

  static size(flags: number): number {
    return flags & SIZE_MASK;
  }

  static priority(flags: number): number {
    return (flags & PRIO_MASK) >>> PRIO_SHIFT;
  }

  /**
   * Zeroes entries [0, slots) (control plane only: no I/O may run meanwhile). Writes
   * only words that are not zero already, so table pages never touched stay unbacked.
   */
  clear(slots: number): void {
    const w = this.words;
    const end = Math.min(w.length, slots * SLOT_WORDS);
    for (let i = 0; i < end; i++) if (w[i] !== 0) w[i] = 0;
  }
}
