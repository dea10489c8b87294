// The slot journal: a zram device's part of the pool's per-CPU intent records
// (core's intent-log.ts), and the repair after a thread's death that reads it.
//
// A slot's content is replaced in two steps under its lock: the new content goes in
// (handle word, then flags word), then the old content is released (its object freed,
// its backing block given back). A thread killed in between leaves a slot whose handle
// and flags disagree, or old content that nothing names any more. Before the first
// step the thread writes a REPLACE record (slot, new handle/fill/flags, old
// handle/flags) and clears it after the second.
//
// The record is settled while the dead thread's slot lock is still set: the thread
// that takes the lock over from the dead holder (a waiter, or the sweep after the
// death; core's onDeadBitHolder) rolls the slot forward first (a slot still holding
// the old content, or a mix of old and new, gets the new content) and notes what it
// found in the record's op word. Only then is the lock released, so no live thread
// ever sees the slot half done, and the old content is never freed by a live thread:
// had a live write replaced the slot first, it would free the old object and could get
// its handle straight back for its next write, and a repair that freed "the old
// object nobody names" would then free that write's object before it is installed.
// The repair later releases the old content, which after settling is provably the
// dead thread's alone: an old object that is still live (a handle the dead thread
// freed went to its own handle cache and is never reused), an old backing block only
// when the slot was rolled forward (a block the dead thread already gave back may
// have been taken again; an unnamed one is left to recountStats).
//
// A second record (HOLD) names what a thread holds outside any slot: an object made
// for a write but not yet installed, a backing block allocated by writeback but not
// yet used, and the slot writeback marked for post-processing. The repair frees the
// first two unless a slot names them, and clears the mark. REPLACE takes over the
// object or block it installs, so a HOLD never names something a slot was given.
//
// The records are plain stores into this CPU's own words: no allocation, no atomic
// read-modify-write on the write path.

import { INTENT_DEVICE, INTENT_DEVICE_HOLD, type ZsPool, clearDeadIntent, intentBase } from '@zsmalloc/core';
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
// a REPLACE record settled under the dead thread's slot lock (settleDeadReplace):
const OP_ROLLED = 3; // the slot held old (or mixed) content: rolled forward, the old content untouched
const OP_FOUND_NEW = 4; // the new content was in: the old content may have been released already
const OP_FOUND_OTHER = 5; // neither (not this hold's record): nothing to release
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
    // from here the REPLACE record covers the prepared object, or the block writeback installs
    this.hold(H_PREPARED, 0);
    if (newFlags & ZRAM_WB && l[this.h + H_BLOCK] === newH) this.hold(H_BLOCK, 0);
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
 * Settles the REPLACE record that starts at word `at` of the intent log, for slot
 * `index` of `slots` (device `dev`), whose lock the dead thread that wrote it still
 * holds: the caller has that lock now. A slot holding the old content or a mix is
 * rolled forward; the op word says what was found. Plain stores, never blocks.
 */
export function settleDeadReplace(log: Int32Array, at: number, slots: SlotTable, dev: number, index: number): void {
  if (Atomics.load(log, at + R_OP) !== OP_REPLACE || log[at + R_DEV] !== dev || log[at + R_INDEX] !== index) return;
  const newH = log[at + R_NEW_H]!;
  const newFlags = log[at + R_NEW_FLAGS]!;
  const oldH = log[at + R_OLD_H]!;
  const oldFlags = log[at + R_OLD_FLAGS]!;
  slots.cover(index);
  const h = slots.handle(index);
  const c = slots.flags(index) & CONTENT_MASK;
  let op = OP_FOUND_OTHER;
  if (h === newH && c === (newFlags & CONTENT_MASK)) op = OP_FOUND_NEW;
  else if ((h === oldH || h === newH) && (c === (oldFlags & CONTENT_MASK) || c === (newFlags & CONTENT_MASK))) {
    slots.setHandle(index, newH);
    slots.setFillHigh(index, newFlags & ZRAM_SAME ? log[at + R_NEW_HI]! : 0);
    if (!SlotTable.allocated(newFlags)) slots.setAccessTime(index, 0);
    slots.setOwned(index, newFlags);
    op = OP_ROLLED;
  }
  Atomics.store(log, at + R_OP, op);
}

/**
 * What the thread that takes a slot lock of this device over from a dead holder runs
 * before releasing it (core's onDeadBitHolder): the dead thread's REPLACE record for
 * that slot, if any, is settled.
 */
export function slotTakeoverHook(pool: ZsPool, slots: SlotTable, dev: number): (cpu: number, word: number) => void {
  return (cpu, word) => {
    settleDeadReplace(pool.intent, intentBase(cpu) + INTENT_DEVICE, slots, dev, (word - 1) / SLOT_WORDS);
  };
}

/**
 * Releases the old content of the slot replacements dead threads left half done on
 * this device, and what they held (see the top of this file). Takes slot locks (a
 * record not settled yet is settled under the lock: its dead holder's lock is taken
 * over, or was never held): run it on a thread that may block, after the pool's
 * repair. Returns what was repaired.
 */
export function repairSlots(t: SlotRepairTarget): string {
  const notes: string[] = [];
  const slots = t.slots;
  const log = t.pool.intent;
  slots.refresh();
  t.pool.forEachDeadIntent(INTENT_DEVICE, (at, rec) => {
    if (rec[R_DEV] !== t.dev || rec[R_OP] === 0) return;
    const index = rec[R_INDEX]!;
    if (index >= 0 && index < t.pages) {
      slots.lock(index);
      try {
        settleDeadReplace(log, at, slots, t.dev, index);
      } finally {
        slots.unlock(index);
      }
    }
    const op = Atomics.load(log, at + R_OP);
    const oldH = rec[R_OLD_H]!;
    const oldFlags = rec[R_OLD_FLAGS]!;
    if (op === OP_ROLLED) notes.push(`slot ${index}: replacement rolled forward`);
    const release = op === OP_ROLLED || (op === OP_FOUND_NEW && (oldFlags & ZRAM_WB) === 0);
    if (release && releaseOrphan(t, oldFlags, oldH)) notes.push(`slot ${index}: old content released`);
    rec[R_OP] = op;
    clearDeadIntent(log, at, rec);
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
