// The handle table: handles are integers that index a table of words in a growable
// shared WebAssembly memory. A live handle's word holds its object's current location
// (frame number and offset in that frame); compaction and migration move objects and
// rewrite only that word. Free words form a list (negative values). Like the
// kernel's handle kmem_cache, each CPU keeps a small local cache of free handles,
// refilled from and flushed to the global list under the handle cache lock.
// The words live in a shared WebAssembly memory (wasm-atomics.ts): a lock-free
// free claims its handle word with one compare-and-swap, which there is a single
// instruction.

import type { LockContext } from './locks.js';
import { SITE_HANDLE_ALLOC, SITE_HANDLE_FREE } from './lock-classes.js';
import { type AtomicMemory, type AtomicOps, WASM_PAGE, atomicOps, createAtomicMemory } from './wasm-atomics.js';

// control words (Int32, in the pool's control block at `base`)
export const H_LOCK = 0;
export const H_FREE_HEAD = 2;
export const H_FREE_COUNT = 3;
export const H_CAPACITY = 4;
export const H_MAX = 5;
export const HANDLE_CTL_WORDS = 6;

const GROW_HANDLES = 16384;
const CACHE_SIZE = 64;
const CACHE_BATCH = 32;

/** Most handles a table holds: its words (and word 0) fit one WebAssembly memory, 4 GiB. */
export const HANDLE_MAX = 2 ** 30 - 1;

/** The table's memory: one page to start, growable to the words of maxHandles handles. */
export function createHandleTable(maxHandles: number): AtomicMemory {
  return createAtomicMemory(WASM_PAGE, (maxHandles + 1) * 4);
}

export class HandleTable {
  readonly memory: AtomicMemory;
  /** Atomic operations on the words (claiming a handle word). */
  readonly ops: AtomicOps;
  words: Int32Array;
  private viewLen: number;
  private readonly ctl: Int32Array;
  private readonly base: number;
  private readonly locks: LockContext;
  private readonly lockCls: number;
  private readonly cache = new Int32Array(CACHE_SIZE);
  private cached = 0;

  constructor(memory: AtomicMemory, ctl: Int32Array, base: number, locks: LockContext, lockCls: number) {
    this.memory = memory;
    this.ops = atomicOps(memory);
    this.ctl = ctl;
    this.base = base;
    this.locks = locks;
    this.lockCls = lockCls;
    const buf = memory.buffer;
    this.words = new Int32Array(buf, 0, buf.byteLength / 4);
    this.viewLen = this.words.length;
  }

  static initControl(ctl: Int32Array, base: number, maxHandles: number): void {
    ctl[base + H_FREE_HEAD] = 0;
    ctl[base + H_FREE_COUNT] = 0;
    ctl[base + H_CAPACITY] = 0;
    ctl[base + H_MAX] = maxHandles;
  }

  /** Is `h` a handle number the table could hold? (Says nothing about liveness.) */
  inRange(h: number): boolean {
    if (!Number.isInteger(h) || h <= 0) return false;
    if (h < this.viewLen) return true;
    this.refresh(h + 1);
    return h < this.viewLen;
  }

  /** Re-creates the view over the memory, which must hold `need` words if the table has them. */
  private refresh(need: number): void {
    let buf = this.memory.buffer;
    // Another thread's grow reaches this thread's buffer object only when this thread
    // next takes the engine's grow interrupt (at a call or a loop); a grow by zero
    // pages brings it up to date now. Only for words the table holds (capacity read
    // atomically): a bad handle number must not make every thread take an interrupt.
    if (buf.byteLength / 4 < need && need <= Atomics.load(this.ctl, this.base + H_CAPACITY) + 1) {
      this.memory.grow(0);
      buf = this.memory.buffer;
    }
    // (its length may be 2^32: divide, a shift would wrap it to 0)
    const len = buf.byteLength / 4;
    this.words = new Int32Array(buf, 0, len);
    this.viewLen = len;
  }

  /** A handle for a new object, or 0 when the table is at its maximum. */
  alloc(): number {
    if (this.cached > 0) return this.cache[--this.cached]!;
    this.refill();
    return this.cached > 0 ? this.cache[--this.cached]! : 0;
  }

  /** Returns a handle whose object is gone. */
  release(h: number): void {
    this.words[h] = -1; // free, not on the global list yet
    if (this.cached === CACHE_SIZE) this.flush(CACHE_BATCH);
    this.cache[this.cached++] = h;
  }

  /** Gives every locally cached handle back to the global list (thread detaching). */
  drain(): void {
    if (this.cached > 0) this.flush(this.cached);
  }

  private refill(): void {
    const ctl = this.ctl;
    const b = this.base;
    this.locks.mutexLock(ctl, b + H_LOCK, this.lockCls, SITE_HANDLE_ALLOC);
    try {
      if (ctl[b + H_FREE_COUNT]! === 0) this.growLocked();
      if (this.viewLen < ctl[b + H_CAPACITY]! + 1) this.refresh(ctl[b + H_CAPACITY]! + 1);
      const w = this.words;
      while (this.cached < CACHE_BATCH && ctl[b + H_FREE_COUNT]! > 0) {
        const h = ctl[b + H_FREE_HEAD]!;
        ctl[b + H_FREE_HEAD] = -w[h]! - 1;
        ctl[b + H_FREE_COUNT]!--;
        w[h] = -1;
        this.cache[this.cached++] = h;
      }
    } finally {
      this.locks.mutexUnlock(ctl, b + H_LOCK);
    }
  }

  private flush(n: number): void {
    const ctl = this.ctl;
    const b = this.base;
    this.locks.mutexLock(ctl, b + H_LOCK, this.lockCls, SITE_HANDLE_FREE);
    try {
      const w = this.words;
      for (let k = 0; k < n; k++) {
        const h = this.cache[--this.cached]!;
        w[h] = -ctl[b + H_FREE_HEAD]! - 1;
        ctl[b + H_FREE_HEAD] = h;
        ctl[b + H_FREE_COUNT]!++;
      }
    } finally {
      this.locks.mutexUnlock(ctl, b + H_LOCK);
    }
  }

  private growLocked(): void {
    const ctl = this.ctl;
    const b = this.base;
    const cap = ctl[b + H_CAPACITY]!;
    const max = ctl[b + H_MAX]!;
    if (cap >= max) return;
    const next = Math.min(max, cap + GROW_HANDLES);
    // the memory's size now (a grow by zero returns it, whatever this thread's buffer says)
    const pages = Math.ceil(((next + 1) * 4) / WASM_PAGE) - this.memory.grow(0);
    if (pages > 0) this.memory.grow(pages);
    this.refresh(next + 1);
    const w = this.words;
    // Link new handles cap+1..next, lowest first.
    for (let h = next; h > cap; h--) {
      w[h] = -ctl[b + H_FREE_HEAD]! - 1;
      ctl[b + H_FREE_HEAD] = h;
      ctl[b + H_FREE_COUNT]!++;
    }
    Atomics.store(ctl, b + H_CAPACITY, next);
  }

  /**
   * After a thread died holding the handle cache lock: the global free list is walked
   * and its count set to what it holds (a pop or push cut short leaves the count off
   * by one, or the list cut at a handle that is no longer free). Returns what was
   * repaired ('' for nothing).
   */
  repairFreeList(): string {
    const ctl = this.ctl;
    const b = this.base;
    this.locks.mutexLock(ctl, b + H_LOCK, this.lockCls, SITE_HANDLE_FREE);
    try {
      this.refresh(ctl[b + H_CAPACITY]! + 1);
      const w = this.words;
      const cap = ctl[b + H_CAPACITY]!;
      let n = 0;
      let prev = -1;
      for (let h = ctl[b + H_FREE_HEAD]!; h > 0 && n <= cap; h = -w[h]! - 1) {
        if (h > cap || w[h]! >= 0) {
          // the list runs into a handle that is not free: cut it there
          if (prev < 0) ctl[b + H_FREE_HEAD] = 0;
          else w[prev] = -1;
          break;
        }
        prev = h;
        n++;
      }
      const was = ctl[b + H_FREE_COUNT]!;
      if (was === n) return '';
      ctl[b + H_FREE_COUNT] = n;
      return `handle free list count ${was} set to ${n}`;
    } finally {
      this.locks.mutexUnlock(ctl, b + H_LOCK);
    }
  }

  capacity(): number {
    return Atomics.load(this.ctl, this.base + H_CAPACITY);
  }
}
