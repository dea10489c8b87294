// The slot journal: a zram device's part of the pool's per-CPU intent records
// (core's intent-log.ts), and the repair after a thread's death that reads it.
//
// A slot's content is replaced in two steps under its lock: the new content goes in
// (handle word, then flags word), then the old content is released (its object freed,
// its backing block given back). A thread killed in between leaves a slot whose handle
// and flags disagree, or old content that nothing names any more. Before the first
// step the thread writes a REPLACE record (slot, new handle/fill/flags, old
// handle/flags) and clears it after the second; the repair rolls the replacement
// forward: a slot still holding the old content, or a mix of old and new, gets the
// new content; old content no slot names is released. A slot that holds neither (a
// live thread replaced it since) is left alone.
//
// A second record (HOLD) names what a thread holds outside any slot: an object made
// for a write but not yet installed, a backing block allocated by writeback but not
// yet used, and the slot writeback marked for post-processing. The repair frees the
// first two unless a slot names them, and clears the mark.
//
// The records are plain stores into this CPU's own words: no allocation, no atomic
// read-modify-write on the write path.

import { INTENT_DEVICE, INTENT_DEVICE_HOLD, type ZsPool, clearDeadIntent } from '@zsmalloc/core';
import type { BackingStore } from './backing.js';
import { PRIO_MASK, SIZE_MASK, SLOT_WORDS, SlotTable, ZRAM_HUGE, ZRAM_PP_SLOT, ZRAM_SAME, ZRAM_WB } from './slots.js';

// REPLACE part
const R_OP = 0;
const R_DEV = 1;
const R_INDEX = 2;
const R_NEW_H = 3;
const R_NEW_HI = 4;
const R_NEW_FLAGS = 5;
const R_OLD_H = 6;
const R_OLD_FLAGS = 7;
const OP_REPLACE = 1;
// HOLD part
const H_OP = 0;
const H_DEV = 1;
const H_BLOCK = 2;
const H_PP = 3; // slot index + 1
const H_PREPARED = 4;
const OP_HOLD = 2;

/** The flag bits that say what a slot holds (not the ones reads and idle tracking change). */
const CONTENT_MASK = SIZE_MASK | ZRAM_SAME | ZRAM_WB | ZRAM_HUGE | PRIO_MASK;

export class SlotJournal {
  private readonly log: Int32Array;
  private readonly r: number;
  private readonly h: number;

  constructor(
    pool: ZsPool,
    private readonly dev: number,
  ) {
    this.log = pool.intent;
    this.r = pool.intentAt + INTENT_DEVICE;
    this.h = pool.intentAt + INTENT_DEVICE_HOLD;
  }

  /** Before slot `index` (lock held) changes from (oldH, oldFlags) to (newH, newHi, newFlags). */
  replace(index: number, newH: number, newHi: number, newFlags: number, oldH: number, oldFlags: number): void {
    const l = this.log;
    const r = this.r;
    l[r + R_DEV] = this.dev;
    l[r + R_INDEX] = index;
    l[r + R_NEW_H] = newH;
    l[r + R_NEW_HI] = newHi;
    l[r + R_NEW_FLAGS] = newFlags;
    l[r + R_OLD_H] = oldH;
    l[r + R_OLD_FLAGS] = oldFlags;
    l[r + R_OP] = OP_REPLACE;
    // from here the REPLACE record covers the prepared object
    this.hold(H_PREPARED, 0);
  }

  /** The replacement (new content in, old content released) is complete. */
  replaced(): void {
    this.log[this.r + R_OP] = 0;
  }

  /** An object made for a write, not in a slot yet (0: none). */
  prepared(handle: number): void {
    this.hold(H_PREPARED, handle);
  }

  /** A backing block writeback holds, not in a slot yet (0: none). */
  holdBlock(block: number): void {
    this.hold(H_BLOCK, block);
  }

  /** The slot writeback marked for post-processing (-1: none). */
  holdPp(index: number): void {
    this.hold(H_PP, index + 1);
  }

  private hold(field: number, v: number): void {
    const l = this.log;
    const h = this.h;
    if (l[h + field] === v) return;
    l[h + field] = v;
    if (v !== 0) {
      if (l[h + H_OP] !== OP_HOLD) {
        l[h + H_DEV] = this.dev;
        l[h + H_OP] = OP_HOLD;
      }
    } else if (l[h + H_BLOCK] === 0 && l[h + H_PP] === 0 && l[h + H_PREPARED] === 0) {
      l[h + H_OP] = 0; // holds nothing: the CPU slot may be reused at once if this thread dies
    }
  }
}

/** What the repair needs of the device. */
export interface SlotRepairTarget {
  readonly pool: ZsPool;
  readonly slots: SlotTable;
  readonly backing: BackingStore;
  readonly pages: number;
  /** The device's id in the records (its slot table's lock-array id). */
  readonly dev: number;
}

/** Does any slot hold `h` as a pool object (wb false) or as a backing block (wb true)? */
function slotNames(t: SlotRepairTarget, h: number, wb: boolean): boolean {
  const w = t.slots.words;
  for (let i = 0; i < t.pages; i++) {
    const base = i * SLOT_WORDS;
    if (Atomics.load(w, base) !== h) continue;
    const f = Atomics.load(w, base + 1);
    if (wb ? (f & ZRAM_WB) !== 0 : (f & (ZRAM_WB | ZRAM_SAME)) === 0 && (f & SIZE_MASK) !== 0) return true;
  }
  return false;
}

function liveObject(pool: ZsPool, h: number): boolean {
  if (h <= 0) return false;
  try {
    pool.objSize(h);
    return true;
  } catch {
    return false;
  }
}

/** Releases content (flags f, handle word h) that no slot names any more; returns whether it did. */
function releaseOrphan(t: SlotRepairTarget, f: number, h: number): boolean {
  if (f & ZRAM_WB) {
    if (h <= 0 || !t.backing.blockUsed(h) || slotNames(t, h, true)) return false;
    t.backing.freeBlock(h);
    return true;
  }
  if (f & ZRAM_SAME || (f & SIZE_MASK) === 0) return false;
  if (!liveObject(t.pool, h) || slotNames(t, h, false)) return false;
  t.pool.free(h);
  return true;
}

/**
 * Rolls forward the slot replacements dead threads left half done on this device and
 * releases what they held (see the top of this file). Takes slot locks: run it on a
 * thread that may block, after the pool's repair. Returns what was repaired.
 */
export function repairSlots(t: SlotRepairTarget): string {
  const notes: string[] = [];
  const slots = t.slots;
  slots.refresh();
  t.pool.forEachDeadIntent(INTENT_DEVICE, (at, rec) => {
    if (rec[R_OP] !== OP_REPLACE || rec[R_DEV] !== t.dev) return;
    const index = rec[R_INDEX]!;
    const newH = rec[R_NEW_H]!;
    const newFlags = rec[R_NEW_FLAGS]!;
    const oldH = rec[R_OLD_H]!;
    const oldFlags = rec[R_OLD_FLAGS]!;
    if (index >= 0 && index < t.pages) {
      slots.lock(index);
      try {
        const h = slots.handle(index);
        const c = slots.flags(index) & CONTENT_MASK;
        const isNew = h === newH && c === (newFlags & CONTENT_MASK);
        const mixed =
          (h === oldH || h === newH) && (c === (oldFlags & CONTENT_MASK) || c === (newFlags & CONTENT_MASK));
        if (!isNew && mixed) {
          slots.setHandle(index, newH);
          slots.setFillHigh(index, newFlags & ZRAM_SAME ? rec[R_NEW_HI]! : 0);
          if (!SlotTable.allocated(newFlags)) slots.setAccessTime(index, 0);
          slots.setOwned(index, newFlags);
          notes.push(`slot ${index}: replacement rolled forward`);
        }
      } finally {
        slots.unlock(index);
      }
    }
    if (releaseOrphan(t, oldFlags, oldH)) notes.push(`slot ${index}: old content released`);
    clearDeadIntent(t.pool.intent, at, rec);
  });
  t.pool.forEachDeadIntent(INTENT_DEVICE_HOLD, (at, rec) => {
    if (rec[H_OP] !== OP_HOLD || rec[H_DEV] !== t.dev) return;
    const blk = rec[H_BLOCK]!;
    if (blk > 0 && releaseOrphan(t, ZRAM_WB, blk)) notes.push(`backing block ${blk} released`);
    const pp = rec[H_PP]! - 1;
    if (pp >= 0 && pp < t.pages && (slots.flags(pp) & ZRAM_PP_SLOT) !== 0) {
      slots.lock(pp);
      slots.clearFlag(pp, ZRAM_PP_SLOT);
      slots.unlock(pp);
      notes.push(`slot ${pp}: post-processing mark cleared`);
    }
    const ph = rec[H_PREPARED]!;
    if (ph > 0 && releaseOrphan(t, 1, ph)) notes.push(`prepared object ${ph} freed`);
    clearDeadIntent(t.pool.intent, at, rec);
  });
  return notes.join('; ');
}
