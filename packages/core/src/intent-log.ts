// Per-CPU intent records: what a thread is in the middle of, for the repair after its
// death. A thread writes its record before a multi-word update that the after-death
// check could not otherwise tell from damage (building a zspage, migrating a frame,
// replacing a zram slot's content) and clears it after; if it dies in between, the
// repair reads the record and rolls the update forward or back (pool-repair.ts, and
// zram's slot-repair.ts). Plain stores: a record costs a few words of this CPU's own
// cache line, no atomic read-modify-write, no allocation.
//
// Each record has three parts of 8 words, each with its own op word: the pool's
// (words 0..7) and two for a device (slot-repair.ts in zram).
// A record can also be settled by the thread that takes over one of the dead thread's
// locks, before it goes on (pool-repair.ts settleDeadMigration): such a settler first
// claims the record (claimDeadIntent), so two threads taking over two of the dead
// thread's locks never settle it at once.
// A dead thread's CPU slot is not handed to a new thread while it holds a record
// (claimCpu and reapDeadCpus ask intentPending), so a record is repaired once, by
// the repair that clears it, and never overwritten first. Each repair step checks
// the state it finds, so a repair cut short by its own thread's death is redone.

import { CPU_ALIVE, MAX_CPUS, cpuState } from './cpu-registry.js';

export const INTENT_WORDS = 24;
/** Offsets of the pool's part and of the device's two parts of a record. */
export const INTENT_POOL = 0;
export const INTENT_DEVICE = 8;
export const INTENT_DEVICE_HOLD = 16;
export const INTENT_PART_WORDS = 8;

// pool part: [op, a, b, c, phase, settler]
export const IN_OP = 0;
export const IN_A = 1;
export const IN_B = 2;
export const IN_C = 3;
export const IN_PHASE = 4;
/** The owner tag of the live thread settling a dead record at a lock takeover (claimDeadIntent). */
export const IN_SETTLER = 5;
/** Building zspage a: its frames carry PG_NEW and name it (FD_ZSPAGE) until it is movable. */
export const OP_BUILD = 1;
/** Migrating frame a of zspage c into frame b; phase 1 once the copy is complete. */
export const OP_MIGRATE = 2;

export function createIntentLog(): SharedArrayBuffer {
  return new SharedArrayBuffer(MAX_CPUS * INTENT_WORDS * 4);
}

/** First word of `cpu`'s record. */
export function intentBase(cpu: number): number {
  return cpu * INTENT_WORDS;
}

/** Does `cpu` hold an intent record not yet repaired (its slot must not be reused)? */
export function intentPending(log: Int32Array, cpu: number): boolean {
  const at = intentBase(cpu);
  for (let part = 0; part < INTENT_WORDS; part += INTENT_PART_WORDS)
    if (Atomics.load(log, at + part) !== 0) return true;
  return false;
}

/**
 * Calls fn(at, snapshot) for the first word of every record part `part` that a dead
 * thread left (CPUs not alive). The CPU's state is read again after the snapshot, so
 * a record a new owner is writing is never reported.
 */
export function deadIntents(
  log: Int32Array,
  reg: Int32Array,
  regBase: number,
  part: number,
  fn: (at: number, snapshot: Int32Array) => void,
): number {
  const snap = new Int32Array(INTENT_PART_WORDS);
  let n = 0;
  for (let r = 0; r < MAX_CPUS; r++) {
    const at = intentBase(r) + part;
    if (Atomics.load(log, at) === 0) continue;
    if (cpuState(reg, regBase, r) === CPU_ALIVE) continue;
    for (let k = 0; k < INTENT_PART_WORDS; k++) snap[k] = Atomics.load(log, at + k);
    if (cpuState(reg, regBase, r) === CPU_ALIVE || snap[0] === 0) continue;
    fn(at, snap);
    n++;
  }
  return n;
}

/** Clears a dead record part after its repair (and wakes a thread waiting for its settler). */
export function clearDeadIntent(log: Int32Array, at: number, snapshot: Int32Array): void {
  if (Atomics.compareExchange(log, at, snapshot[0]!, 0) !== snapshot[0]) return;
  for (let k = INTENT_PART_WORDS - 1; k >= 1; k--) Atomics.store(log, at + k, 0);
  Atomics.notify(log, at + IN_SETTLER);
}

/**
 * Claims the dead record part at `at` for settling by the thread with owner tag
 * `tag`: true once claimed (settle it, then clearDeadIntent), false when there is no
 * record (any more: another thread settled it). A live settler is waited for (a
 * bounded wait: it settles without blocking); a dead one's claim is taken over, and
 * the steps redone (each checks the state it finds).
 */
export function claimDeadIntent(log: Int32Array, at: number, tag: number, dead: (tag: number) => boolean): boolean {
  const w = at + IN_SETTLER;
  for (;;) {
    if (Atomics.load(log, at) === 0) return false;
    const s = Atomics.compareExchange(log, w, 0, tag);
    if (s === 0 || s === tag) {
      if (Atomics.load(log, at) !== 0) return true;
      Atomics.compareExchange(log, w, tag, 0); // cleared between the two looks
      return false;
    }
    if (dead(s)) {
      Atomics.compareExchange(log, w, s, tag);
      continue;
    }
    Atomics.wait(log, w, s, 1);
  }
}

/** Gives a claim back unsettled (the record was not the dead thread's, or its roll failed); waiters go on. */
export function unclaimDeadIntent(log: Int32Array, at: number, tag: number): void {
  Atomics.compareExchange(log, at + IN_SETTLER, tag, 0);
  Atomics.notify(log, at + IN_SETTLER);
}
