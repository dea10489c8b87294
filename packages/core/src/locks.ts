// Locks built on Int32 words of shared memory with Atomics, and the per-thread
// context that takes them (the "CPU": its id, its held-lock stack, its lock_stat
// row). Three kinds, as zsmalloc and zram use them:
//
//  - mutex (class lock, pool lock, zone lock): compareExchange fast path, bounded
//    spinning, then futex-style parking on the word with Atomics.wait; unlock
//    notifies only when the word says someone waits. The word holds the owner's
//    CPU id: (cpu+1) << 2 | state, state 0 free, 1 locked, 2 locked with waiters.
//    A free word keeps the last owner, which gives lock_stat its bounce counts.
//  - rwlock (pool migrate lock, zspage lock): readers count up in the low bits;
//    a writer sets WRITER when no reader holds it. Blocking writers announce
//    themselves (WRITER_WAITING) so new readers queue behind them. The zspage
//    lock's writers only ever trylock, as the kernel's do. Word i+1 holds the
//    last writer's CPU (for bounces and dead-owner recovery).
//  - bit lock (zram slot lock): one bit of a shared word, spun on with Atomics.or,
//    then short sleeps.
//
// Waiters sleep with a timeout; on each timeout they check whether the owner's CPU
// slot was marked dead and, if so, take the lock over (counted in `recovered`). A
// mutex names its owner in the word; rwlock holders (readers and writers) and bit
// lock holders write a held-lock record in their CPU slot (see cpu-registry.ts), so
// a waiter undoes exactly the dead CPU's share of the word: its reader count, its
// writer bit or its bit. No waiter depends on any thread's event loop for this:
// the CPU is marked dead in shared memory by the watchdog thread (watchdog.ts).
// Whoever takes a lock over from a dead holder first runs the hook registered for
// that array (onDeadHolder), while the lock is still held, so what the dead thread
// left half done is settled before anyone else can see it; only takeovers run it.

//
// Every acquisition takes an optional call-site id (lock-classes.ts; default
// "unknown"): lock_stat counts contentions per (class, site), and lockdep (when
// on) names the sites of both locks of an inversion. The held-lock stack is kept
// whenever lock_stat or lockdep is on; lockdep checks each blocking acquisition
// against it, before waiting and outside the timed wait and hold, so lock_stat
// figures do not include lockdep's cost.

import {
  CPU_GEN,
  CPU_SLOT_WORDS,
  deathCount,
  HELD_BIT,
  HELD_HEADER,
  HELD_HELD,
  HELD_INTENT,
  HELD_READ,
  HELD_RECORDS,
  HELD_WRITE,
  heldDesc,
  ownerTag,
  recoverRecords,
  tagCpu,
  tagDead,
  tagGen,
} from './cpu-registry.js';
import { lockSiteName } from './lock-classes.js';
import {
  CP_FIELDS,
  LOCK_STATES,
  MAX_LOCK_CLASSES,
  STAT_FIELDS,
  contentionPointBase,
  lockClassName,
  lockClassRank,
  recordAcquire,
  recordHold,
} from './lock-stat.js';

const SPIN = 64;
const PARK_TIMEOUT_MS = 50;
const BIT_SLEEP_MS = 0.05;
/** Bit-lock sleeps between two looks for a dead holder (~50 ms). */
const BIT_RECOVER_EVERY = 1000;

export const RW_COUNT = 0x0fffffff;
export const RW_WRITER = 0x10000000;
export const RW_WRITER_WAITING = 0x20000000;
export const RW_WAITERS = 0x40000000;

const MAX_HELD = 32;
/** The exit code of a thread killed by exitAtAcquisition() or exitAtPoint(). */
export const FAULT_EXIT_CODE = 70;
// Points inside critical sections where exitAtPoint() can end a thread (kill tests).
/** Frame migration: the intent record written, the frame copied (phase 1), nothing relinked yet. */
export const FP_MIGRATE_COPIED = 1;
/** Frame migration: after each handle rewritten to the new frame. */
export const FP_MIGRATE_HANDLE = 2;
/** Compaction move: the destination object allocated (its header names the handle), nothing copied. */
export const FP_COMPACT_ALLOCATED = 3;
/** Compaction move: the object copied, the handle still on the source. */
export const FP_COMPACT_COPIED = 4;
/** Compaction move: the handle published on the destination, the source not freed. */
export const FP_COMPACT_PUBLISHED = 5;
/** Compaction move: the source freed (the move complete, the zspages still isolated). */
export const FP_COMPACT_FREED = 6;
/** Turns an intent record into a held one: one add, no call, right after the lock's atomic. */
const INTENT_TO_HELD = (HELD_HELD - HELD_INTENT) << 20;

// Module-local copies of the rwlock bits and the record kinds for the code below: the
// engine folds a module's own constants into its compiled code, but loads and checks
// an exported or imported one at every use (docs/design.md, "The shared-memory model").
const COUNT = RW_COUNT;
const WRITER = RW_WRITER;
const WRITER_WAITING = RW_WRITER_WAITING;
const WAITERS = RW_WAITERS;
const REC_READ = HELD_READ;
const REC_WRITE = HELD_WRITE;
const REC_BIT = HELD_BIT;
const REC_INTENT = HELD_INTENT;
const REC_HELD = HELD_HELD;
const RECORDS = HELD_RECORDS;

/** The class registry lockdep reads ranks and names from. */
export interface LockdepRegistry {
  reg: Int32Array;
  names: Uint8Array;
}

/** Thrown by lockdep when an acquisition breaks the lock order (lock-classes.ts). */
export class LockOrderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LockOrderError';
  }
}

export class LockContext {
  readonly cpu: number;
  /** ((generation << 9) | (cpu + 1)) << 2: the owner bits this CPU writes into mutex words. */
  readonly tag: number;
  /** lock_stat on for this thread (switch with setStat). */
  statOn: boolean;
  /** lockdep on: every blocking acquisition is checked against the lock order. */
  readonly lockdep: boolean;
  /** The held-lock stack is kept (lock_stat or lockdep on). */
  private track: boolean;
  private readonly lockReg: LockdepRegistry | null;
  private readonly stats: Float64Array;
  private readonly cpuReg: Int32Array;
  private readonly cpuBase: number;
  private readonly myStatBase: number;
  /** First word of this CPU's held-lock records in the registry. */
  private readonly recBase: number;
  /** Array ids of the lock-word arrays this thread knows (by buffer), for held-lock records. */
  private readonly arrayIds = new Map<ArrayBufferLike, number>();
  private readonly deadHooks = new Map<number, (cpu: number, gen: number, index: number) => void>();
  // the two lock-word views named last (a mover alternates between the pool lock's and a
  // zspage's), keyed by the view itself: reading a view's .buffer is a call into the engine
  // for a growable buffer (the slot table's), on every bit lock and unlock
  private lastArr: Int32Array | null = null;
  private lastId = 0;
  private prevArr: Int32Array | null = null;
  private prevId = 0;
  /** Deaths seen by this CPU's last sweep (see trylockSweep). */
  private seenDeaths = 0;
  // held-lock stack (lockdep's held_locks): for hold times and unlock checks
  private readonly heldArr: (Int32Array | null)[] = new Array(MAX_HELD).fill(null);
  private readonly heldIdx = new Int32Array(MAX_HELD);
  private readonly heldStat = new Int32Array(MAX_HELD);
  private readonly heldT0 = new Float64Array(MAX_HELD);
  private readonly heldSite = new Int32Array(MAX_HELD);
  /** lockdep: rank per class, read once from the shared registry (-1: not read yet). */
  private readonly ranks = new Int32Array(MAX_LOCK_CLASSES).fill(-1);
  private depth = 0;
  /** Locks this CPU took over from dead owners. */
  recovered = 0;
  /** Fault injection: acquisitions left until this thread exits holding the lock (0: off). */
  private faultLeft = 0;
  /** Fault injection: the point (FP_*) where this thread exits, 0: off; callers test it before calling faultPoint(). */
  faultAt = 0;
  private faultPointLeft = 0;

  constructor(
    cpu: number,
    cpuReg: Int32Array,
    cpuBase: number,
    stats: Float64Array,
    statOn: boolean,
    lockdep: LockdepRegistry | null = null,
  ) {
    this.cpu = cpu;
    this.lockdep = lockdep !== null;
    this.lockReg = lockdep;
    this.track = statOn || lockdep !== null;
    this.tag = ownerTag(cpu, Atomics.load(cpuReg, cpuBase + cpu * CPU_SLOT_WORDS + CPU_GEN));
    this.cpuReg = cpuReg;
    this.cpuBase = cpuBase;
    this.recBase = cpuBase + cpu * CPU_SLOT_WORDS + HELD_HEADER;
    this.stats = stats;
    this.statOn = statOn;
    this.myStatBase = cpu * MAX_LOCK_CLASSES * LOCK_STATES * STAT_FIELDS;
  }

  /** Turns lock_stat on or off for this thread (the held-lock stack stays while lockdep is on). */
  setStat(on: boolean): void {
    if (this.depth !== 0) throw new Error('lock_stat can only be switched with no lock held');
    this.statOn = on;
    this.track = on || this.lockdep;
  }

  /**
   * lockdep: taking class `cls` at `site` must not follow a held lock of a later
   * rank, nor of the same rank but another class (the innermost locks are taken
   * alone). Checked before waiting, so an inversion throws instead of deadlocking.
   */
  private rankOf(cls: number): number {
    let r = this.ranks[cls]!;
    if (r < 0) {
      r = lockClassRank(this.lockReg!.reg, cls);
      this.ranks[cls] = r;
    }
    return r;
  }

  private checkOrder(cls: number, site: number): void {
    const d = Math.min(this.depth, MAX_HELD);
    if (d === 0) return;
    const rank = this.rankOf(cls);
    if (rank === 0) return;
    for (let k = 0; k < d; k++) {
      const held = this.heldStat[k]! >> 1;
      const hr = this.rankOf(held);
      if (hr > rank || (hr === rank && held !== cls)) {
        const ld = this.lockReg!;
        throw new LockOrderError(
          `lockdep: lock order violation on CPU ${this.cpu}: taking ${lockClassName(ld.names, cls)} (rank ${rank}) at ` +
            `[${lockSiteName(site)}] while holding ${lockClassName(ld.names, held)} (rank ${hr}) taken at ` +
            `[${lockSiteName(this.heldSite[k]!)}]; the order is written in lock-classes.ts`,
        );
      }
    }
  }

  private ownerDead(word: number): boolean {
    return tagDead(this.cpuReg, this.cpuBase, word & ~3);
  }

  /**
   * Fault injection for thread-death tests: this thread exits (process.exit in a
   * worker ends the thread) right after its `n`th lock acquisition from now,
   * holding that lock and whatever else it holds. Only for worker threads.
   */
  exitAtAcquisition(n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new RangeError('exitAtAcquisition: n must be a positive integer');
    this.faultLeft = n;
  }

  private faultTick(): void {
    if (--this.faultLeft === 0) process.exit(FAULT_EXIT_CODE);
  }

  /**
   * Fault injection for thread-death tests: this thread exits the `n`th time from now
   * it passes fault point `point` (FP_*), inside that critical section, holding its
   * locks. Only for worker threads.
   */
  exitAtPoint(point: number, n = 1): void {
    if (!Number.isInteger(n) || n < 1) throw new RangeError('exitAtPoint: n must be a positive integer');
    this.faultPointLeft = n;
    this.faultAt = point;
  }

  /** A fault point reached (the caller checked faultAt names it). */
  faultPoint(): void {
    if (--this.faultPointLeft === 0) process.exit(FAULT_EXIT_CODE);
  }

  /**
   * Registers what to do when this thread takes a lock of array `id` over from a dead
   * holder (a bit lock, an rwlock's write side or a mutex): fn(deadCpu, deadGen,
   * wordIndex) runs while the dead CPU still holds it (no other thread can take it meanwhile;
   * for a mutex, this thread holds it already), then the bit or writer bit is
   * released, or the mutex's new owner goes on. Runs only on a takeover, never on
   * the fast path. fn must not throw, and may wait only for bounded work. A mutex
   * names its owner only in the lock word, so by the time a waiter takes it over the
   * dead CPU's slot may have been claimed by a new thread: fn must act on what the
   * slot holds only while cpuStillDead(cpu, deadGen) says it is still the dead one's.
   */
  onDeadHolder(id: number, fn: (cpu: number, gen: number, index: number) => void): void {
    this.deadHooks.set(id, fn);
  }

  /** Names the lock words in `buffer` for held-lock records (the same id in every thread). */
  nameArray(buffer: ArrayBufferLike, id: number): void {
    this.arrayIds.set(buffer, id);
    this.lastArr = null;
    this.prevArr = null;
  }

  /** The array id of a view's buffer (every view of one buffer has the same id). */
  private arrayId(a: Int32Array): number {
    if (a === this.lastArr) return this.lastId;
    const id = a === this.prevArr ? this.prevId : (this.arrayIds.get(a.buffer) ?? 0);
    this.prevArr = this.lastArr;
    this.prevId = this.lastId;
    this.lastArr = a;
    this.lastId = id;
    return id;
  }

  /**
   * Opens an "intent" record before trying a lock; returns its registry word. Plain
   * stores: only this CPU reads its live records, and others read them only once the
   * CPU is dead and only in the held state, which the plain add after the lock's
   * atomic writes (so an atomic store here would order nothing that add does not).
   */
  private recOpen(a: Int32Array, kind: number, i: number, mask: number): number {
    const reg = this.cpuReg;
    for (let r = 0; r < RECORDS; r++) {
      const at = this.recBase + r * 3;
      if (reg[at] === 0) {
        reg[at + 1] = i;
        reg[at + 2] = mask;
        reg[at] = heldDesc(this.arrayId(a), kind, REC_INTENT);
        return at;
      }
    }
    throw new Error(`CPU ${this.cpu} holds more than ${RECORDS} rwlocks and bit locks at once`);
  }

  /** The record of a lock this CPU holds. */
  private recFind(a: Int32Array, kind: number, i: number, mask: number): number {
    const reg = this.cpuReg;
    const want = heldDesc(this.arrayId(a), kind, REC_HELD);
    for (let r = 0; r < RECORDS; r++) {
      const at = this.recBase + r * 3;
      if (reg[at] === want && reg[at + 1] === i && reg[at + 2] === mask) return at;
    }
    return -1;
  }

  /**
   * Undoes the share of word `i` of `a` that dead CPUs hold according to their
   * records (reader counts, a writer bit, a bit lock) and wakes the waiters.
   */
  recoverDead(a: Int32Array, i: number): number {
    const id = this.arrayId(a);
    const hook = this.deadHooks.get(id);
    const n = recoverRecords(this.cpuReg, this.cpuBase, id, i, (kind, idx, mask, cpu, gen) => {
      if (kind === REC_READ) Atomics.sub(a, idx, 1);
      else {
        try {
          // still held by the dead CPU: what it guarded is settled before anyone else can take it
          hook?.(cpu, gen, idx);
        } finally {
          if (kind === REC_WRITE) Atomics.and(a, idx, ~(WRITER | WRITER_WAITING));
          else Atomics.and(a, idx, ~mask);
        }
      }
      Atomics.notify(a, idx);
    });
    this.recovered += n;
    return n;
  }

  /**
   * A trylock that failed: if a thread died since this CPU last looked, undo what
   * dead CPUs hold in `a` (a trylock-only writer never waits, so it would never
   * otherwise notice a dead reader). Returns true when something was released.
   */
  private trylockSweep(a: Int32Array): boolean {
    const d = deathCount(this.cpuReg, this.cpuBase);
    if (d === this.seenDeaths) return false;
    this.seenDeaths = d;
    return this.recoverDeadAll(a) > 0;
  }

  /** Undoes every held record of dead CPUs in array `a` (a sweep after a thread's death). */
  recoverDeadAll(a: Int32Array): number {
    return this.recoverDead(a, -1);
  }

  private pushHeld(a: Int32Array, i: number, statId: number, site: number): void {
    const d = this.depth;
    if (d < MAX_HELD) {
      this.heldArr[d] = a;
      this.heldIdx[d] = i;
      this.heldStat[d] = statId;
      this.heldSite[d] = site;
      this.heldT0[d] = this.statOn ? performance.now() : 0;
    }
    this.depth = d + 1;
  }

  private popHeld(a: Int32Array, i: number): void {
    const d = this.depth;
    for (let k = Math.min(d, MAX_HELD) - 1; k >= 0; k--) {
      if (this.heldArr[k] === a && this.heldIdx[k] === i) {
        if (this.statOn) {
          const hold = (performance.now() - this.heldT0[k]!) * 1000;
          recordHold(this.stats, this.myStatBase + this.heldStat[k]! * STAT_FIELDS, hold);
        }
        for (let j = k; j < Math.min(d, MAX_HELD) - 1; j++) {
          this.heldArr[j] = this.heldArr[j + 1]!;
          this.heldIdx[j] = this.heldIdx[j + 1]!;
          this.heldStat[j] = this.heldStat[j + 1]!;
          this.heldSite[j] = this.heldSite[j + 1]!;
          this.heldT0[j] = this.heldT0[j + 1]!;
        }
        this.heldArr[Math.min(d, MAX_HELD) - 1] = null;
        break;
      }
    }
    this.depth = d - 1;
  }

  // ---------------------------------------------------------------- mutex

  mutexLock(a: Int32Array, i: number, cls: number, site = 0): void {
    if (this.lockdep) this.checkOrder(cls, site);
    const tag = this.tag;
    // Fast path 1: free and last held by this CPU (the uncontended case): one CAS.
    const c = Atomics.compareExchange(a, i, tag, tag | 1);
    if (c === tag) {
      if (this.faultLeft !== 0) this.faultTick();
      if (this.track) this.acquired(a, i, cls, 0, false, -1, site);
      return;
    }
    // Fast path 2: free, last held elsewhere (an acquisition bounce) or never held.
    if ((c & 3) === 0 && Atomics.compareExchange(a, i, c, tag | 1) === c) {
      if (this.faultLeft !== 0) this.faultTick();
      if (this.track) this.acquired(a, i, cls, 0, c !== 0, -1, site);
      return;
    }
    this.mutexLockSlow(a, i, cls, site);
  }

  private mutexLockSlow(a: Int32Array, i: number, cls: number, site: number): void {
    const tag = this.tag;
    const t0 = this.statOn ? performance.now() : 0;
    let prevOwner = 0;
    for (let s = 0; s < SPIN; s++) {
      const c = Atomics.load(a, i);
      if ((c & 3) === 0) {
        if (Atomics.compareExchange(a, i, c, tag | 1) === c) {
          prevOwner = c & ~3;
          return this.contendedDone(a, i, cls, t0, prevOwner, site);
        }
      } else prevOwner = c & ~3;
    }
    for (;;) {
      let c = Atomics.load(a, i);
      if ((c & 3) === 0) {
        // Taken after a wait: keep the waiters state, others may still sleep.
        if (Atomics.compareExchange(a, i, c, tag | 2) === c) return this.contendedDone(a, i, cls, t0, prevOwner, site);
        continue;
      }
      prevOwner = c & ~3;
      if ((c & 3) === 1) {
        const w = (c & ~3) | 2;
        if (Atomics.compareExchange(a, i, c, w) !== c) continue;
        c = w;
      }
      if (Atomics.wait(a, i, c, PARK_TIMEOUT_MS) === 'timed-out' && this.ownerDead(c)) {
        if (Atomics.compareExchange(a, i, c, tag | 2) === c) {
          this.recovered++;
          // held now by this CPU: what the dead owner left half done is settled first
          this.deadHooks.get(this.arrayId(a))?.(tagCpu(c), tagGen(c), i);
          return this.contendedDone(a, i, cls, t0, prevOwner, site);
        }
      }
    }
  }

  private contendedDone(a: Int32Array, i: number, cls: number, t0: number, prevOwner: number, site: number): void {
    if (this.faultLeft !== 0) this.faultTick();
    if (this.track)
      this.acquired(
        a,
        i,
        cls,
        0,
        prevOwner !== 0 && prevOwner !== this.tag,
        this.statOn ? (performance.now() - t0) * 1000 : -1,
        site,
      );
  }

  /** Records an acquisition (lock_stat, and the contention point when `wait` >= 0) and pushes it on the held stack. */
  private acquired(
    a: Int32Array,
    i: number,
    cls: number,
    state: number,
    bounce: boolean,
    wait: number,
    site: number,
  ): void {
    const statId = cls * LOCK_STATES + state;
    if (this.statOn) {
      recordAcquire(this.stats, this.myStatBase + statId * STAT_FIELDS, bounce, wait);
      if (wait >= 0) {
        const p = contentionPointBase(this.cpu, cls) + site * CP_FIELDS;
        this.stats[p]! += 1;
        this.stats[p + 1]! += wait;
      }
    }
    this.pushHeld(a, i, statId, site);
  }

  mutexTrylock(a: Int32Array, i: number, cls: number, site = 0): boolean {
    const c = Atomics.load(a, i);
    if ((c & 3) === 0 && Atomics.compareExchange(a, i, c, this.tag | 1) === c) {
      if (this.faultLeft !== 0) this.faultTick();
      if (this.track) this.acquired(a, i, cls, 0, c >> 2 !== 0 && (c & ~3) !== this.tag, -1, site);
      return true;
    }
    return false;
  }

  mutexUnlock(a: Int32Array, i: number): void {
    const tag = this.tag;
    if (this.track) this.popHeld(a, i);
    // Uncontended: locked by me with no waiters -> free, keeping me as last owner.
    if (Atomics.compareExchange(a, i, tag | 1, tag) === (tag | 1)) return;
    const c = Atomics.load(a, i);
    if ((c & ~3) !== tag || (c & 3) === 0) {
      throw new Error(`mutex unlock by CPU ${this.cpu} of a lock it does not hold (word ${c})`);
    }
    if ((Atomics.exchange(a, i, tag) & 3) === 2) Atomics.notify(a, i, 1);
  }

  /** The kernel's spin_is_contended(): someone is waiting for this mutex. */
  mutexContended(a: Int32Array, i: number): boolean {
    return (Atomics.load(a, i) & 3) === 2;
  }

  /** The mutex is held by a thread that is gone: a waiter on it would take it over. */
  mutexOwnerGone(a: Int32Array, i: number): boolean {
    const c = Atomics.load(a, i);
    return (c & 3) !== 0 && this.ownerDead(c);
  }

  mutexHeldByMe(a: Int32Array, i: number): boolean {
    const c = Atomics.load(a, i);
    return (c & 3) !== 0 && (c & ~3) === this.tag;
  }

  // ---------------------------------------------------------------- rwlock

  readLock(a: Int32Array, i: number, cls: number, site = 0): void {
    if (this.lockdep) this.checkOrder(cls, site);
    const rec = this.recOpen(a, REC_READ, i, 0);
    const c = Atomics.load(a, i);
    if ((c & (WRITER | WRITER_WAITING)) === 0 && Atomics.compareExchange(a, i, c, c + 1) === c) {
      this.cpuReg[rec]! += INTENT_TO_HELD;
      if (this.faultLeft !== 0) this.faultTick();
      if (this.track) this.acquired(a, i, cls, 1, false, -1, site);
      return;
    }
    this.readLockSlow(a, i, cls, site, rec);
  }

  private readLockSlow(a: Int32Array, i: number, cls: number, site: number, rec: number): void {
    const t0 = this.statOn ? performance.now() : 0;
    const held = heldDesc(this.arrayId(a), REC_READ, REC_HELD);
    const reg = this.cpuReg;
    let spins = 0;
    for (;;) {
      let c = Atomics.load(a, i);
      if ((c & (WRITER | WRITER_WAITING)) === 0) {
        if (Atomics.compareExchange(a, i, c, c + 1) === c) {
          reg[rec] = held;
          break;
        }
        continue;
      }
      if (spins++ < SPIN) continue;
      if ((c & WAITERS) === 0) {
        if (Atomics.compareExchange(a, i, c, c | WAITERS) !== c) continue;
        c |= WAITERS;
      }
      if (Atomics.wait(a, i, c, PARK_TIMEOUT_MS) === 'timed-out') this.recoverDead(a, i);
    }
    if (this.faultLeft !== 0) this.faultTick();
    if (this.track) {
      const last = Atomics.load(a, i + 1);
      this.acquired(
        a,
        i,
        cls,
        1,
        last !== 0 && last !== this.tag,
        this.statOn ? (performance.now() - t0) * 1000 : -1,
        site,
      );
    }
  }

  readUnlock(a: Int32Array, i: number): void {
    if (this.track) this.popHeld(a, i);
    const rec = this.recFind(a, REC_READ, i, 0);
    const old = Atomics.sub(a, i, 1);
    if (rec >= 0) this.cpuReg[rec] = 0;
    if ((old & COUNT) === 0) throw new Error(`read unlock of an rwlock with no readers (word ${old})`);
    if ((old & COUNT) === 1 && (old & WAITERS) !== 0) this.wakeIfIdle(a, i);
  }

  private wakeIfIdle(a: Int32Array, i: number): void {
    const c = Atomics.load(a, i);
    if ((c & (COUNT | WRITER)) === 0 && (c & WAITERS) !== 0 && Atomics.compareExchange(a, i, c, c & ~WAITERS) === c) {
      Atomics.notify(a, i);
    }
  }

  writeLock(a: Int32Array, i: number, cls: number, site = 0): void {
    if (this.lockdep) this.checkOrder(cls, site);
    const rec = this.recOpen(a, REC_WRITE, i, 0);
    if (Atomics.compareExchange(a, i, 0, WRITER) === 0) {
      this.cpuReg[rec]! += INTENT_TO_HELD;
      const last = this.markWriter(a, i);
      if (this.faultLeft !== 0) this.faultTick();
      if (this.track) this.acquired(a, i, cls, 0, last !== 0 && last !== this.tag, -1, site);
      return;
    }
    this.writeLockSlow(a, i, cls, site, rec);
  }

  private writeLockSlow(a: Int32Array, i: number, cls: number, site: number, rec: number): void {
    const t0 = this.statOn ? performance.now() : 0;
    const held = heldDesc(this.arrayId(a), REC_WRITE, REC_HELD);
    const reg = this.cpuReg;
    let spins = 0;
    for (;;) {
      let c = Atomics.load(a, i);
      if ((c & (COUNT | WRITER)) === 0) {
        if (Atomics.compareExchange(a, i, c, WRITER | (c & WAITERS)) === c) {
          reg[rec] = held;
          break;
        }
        continue;
      }
      if (spins++ < SPIN) continue;
      const want = c | WRITER_WAITING | WAITERS;
      if (want !== c) {
        if (Atomics.compareExchange(a, i, c, want) !== c) continue;
        c = want;
      }
      if (Atomics.wait(a, i, c, PARK_TIMEOUT_MS) === 'timed-out') this.recoverDead(a, i);
    }
    const last = this.markWriter(a, i);
    if (this.faultLeft !== 0) this.faultTick();
    if (this.track)
      this.acquired(
        a,
        i,
        cls,
        0,
        last !== 0 && last !== this.tag,
        this.statOn ? (performance.now() - t0) * 1000 : -1,
        site,
      );
  }

  /**
   * Names this CPU as the rwlock's last writer (word i+1), write lock held, and
   * returns the one before (for lock_stat's bounce count; a dead writer is found by
   * its held-lock record, not by this word). Only writers write that word, under the
   * lock, so the lock's acquisition already orders a plain read of it; the store is
   * skipped when this CPU was the last writer already, the common case of a lock
   * taken again by the same CPU.
   */
  private markWriter(a: Int32Array, i: number): number {
    const last = a[i + 1]!;
    if (last !== this.tag) Atomics.store(a, i + 1, this.tag);
    return last;
  }

  /** A writer that only trylocks (zspage lock in compaction and migration). */
  writeTrylock(a: Int32Array, i: number, cls: number, site = 0): boolean {
    const rec = this.recOpen(a, REC_WRITE, i, 0);
    // A lock nobody holds or waits for (the common case) is taken by one compare-and-swap,
    // with no look at the word first: every atomic is a call into the engine.
    const c = Atomics.compareExchange(a, i, 0, WRITER);
    if (c !== 0) {
      const free = this.writeTrylockFree(a, i, c);
      if (free < 0 || Atomics.compareExchange(a, i, free, WRITER | (free & WAITERS)) !== free) {
        this.cpuReg[rec] = 0;
        return false;
      }
    }
    this.cpuReg[rec]! += INTENT_TO_HELD;
    const last = this.markWriter(a, i);
    if (this.faultLeft !== 0) this.faultTick();
    if (this.track) this.acquired(a, i, cls, 0, last !== 0 && last !== this.tag, -1, site);
    return true;
  }

  /**
   * writeTrylock found word `c`, not 0: the word to swap the writer into when the lock
   * is free (waiters announced), after a sweep of dead holders if it was held; -1 when
   * it stays held.
   */
  private writeTrylockFree(a: Int32Array, i: number, c: number): number {
    if ((c & (COUNT | WRITER)) === 0) return c;
    if (!this.trylockSweep(a)) return -1;
    const now = Atomics.load(a, i);
    return (now & (COUNT | WRITER)) === 0 ? now : -1;
  }

  writeUnlock(a: Int32Array, i: number): void {
    if (this.track) this.popHeld(a, i);
    const rec = this.recFind(a, REC_WRITE, i, 0);
    const old = Atomics.exchange(a, i, 0);
    if (rec >= 0) this.cpuReg[rec] = 0;
    if ((old & WRITER) === 0) throw new Error(`write unlock of an rwlock not write-held (word ${old})`);
    if ((old & WAITERS) !== 0) Atomics.notify(a, i);
  }

  rwContended(a: Int32Array, i: number): boolean {
    return (Atomics.load(a, i) & WAITERS) !== 0;
  }

  // ---------------------------------------------------------------- bit lock

  bitLock(a: Int32Array, i: number, mask: number, cls: number, site = 0): void {
    if (this.lockdep) this.checkOrder(cls, site);
    const rec = this.recOpen(a, REC_BIT, i, mask);
    if ((Atomics.or(a, i, mask) & mask) === 0) {
      this.cpuReg[rec]! += INTENT_TO_HELD;
      if (this.faultLeft !== 0) this.faultTick();
      if (this.track) this.acquired(a, i, cls, 0, false, -1, site);
      return;
    }
    const t0 = this.statOn ? performance.now() : 0;
    const held = heldDesc(this.arrayId(a), REC_BIT, REC_HELD);
    const reg = this.cpuReg;
    let spins = 0;
    for (;;) {
      const c = Atomics.load(a, i);
      if ((c & mask) === 0 && (Atomics.or(a, i, mask) & mask) === 0) {
        reg[rec] = held;
        break;
      }
      if (spins++ >= SPIN) {
        Atomics.wait(a, i, c | mask, BIT_SLEEP_MS);
        if (spins % BIT_RECOVER_EVERY === 0) this.recoverDead(a, i);
      }
    }
    if (this.faultLeft !== 0) this.faultTick();
    if (this.track) this.acquired(a, i, cls, 0, false, this.statOn ? (performance.now() - t0) * 1000 : -1, site);
  }

  bitTrylock(a: Int32Array, i: number, mask: number, cls: number, site = 0): boolean {
    const rec = this.recOpen(a, REC_BIT, i, mask);
    if ((Atomics.or(a, i, mask) & mask) !== 0 && (!this.trylockSweep(a) || (Atomics.or(a, i, mask) & mask) !== 0)) {
      this.cpuReg[rec] = 0;
      return false;
    }
    this.cpuReg[rec]! += INTENT_TO_HELD;
    if (this.faultLeft !== 0) this.faultTick();
    if (this.track) this.acquired(a, i, cls, 0, false, -1, site);
    return true;
  }

  bitUnlock(a: Int32Array, i: number, mask: number): void {
    if (this.track) this.popHeld(a, i);
    const rec = this.recFind(a, REC_BIT, i, mask);
    const old = Atomics.and(a, i, ~mask);
    if (rec >= 0) this.cpuReg[rec] = 0;
    if ((old & mask) === 0) throw new Error(`bit unlock of a bit lock not held (word ${old}, mask ${mask})`);
  }

  /** Number of locks this CPU holds right now (for assertions in tests). */
  get heldDepth(): number {
    return this.depth;
  }
}

export { CPU_SLOT_WORDS };
