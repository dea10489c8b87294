// Per-CPU object caches ("magazines"): for every CPU (thread attached to the pool,
// up to PCP_MAX_CPUS) and every non-huge size class, a small stack of objects
// reserved from that class's zspages. malloc pops one and free pushes one with no
// lock; a refill or a flush moves a batch between the stack and the zspages under
// one hold of the class lock. Owns the shared layout, the lock-free entry/exit
// protocol against movers, and refill, flush, drain and dead-CPU reclaim.
//
// A reserved object is allocated in its zspage (counted in its in-use count and
// obj_allocated) but not used (not in obj_used), as the kernel would count an
// object sitting in a slab's per-CPU cache; its header is RESERVED_HEADER, so
// compaction neither moves it nor takes it for a live object. A magazine entry
// is the object's location word (frame and offset, as a handle's), so malloc needs
// no walk of the zspage chain; the object's second word names its magazine slot
// (CPU and position), so migration, which copies the object with its frame,
// rewrites that one entry as it rewrites the handles of live objects.
//
// The protocol. Each CPU has a gate word: 0 open, BUSY while its owner is inside a
// lock-free operation, HELD while a mover holds it. An owner's operation runs
// between enter() (compare-and-swap open -> BUSY; if it fails, a mover is at
// work and the owner takes the locked path) and exit() (store open). A mover
// (anything that moves objects or reads every cache: compaction, migration,
// verify, drain; all take the pool lock for writing, so there is one at a time)
// swaps every gate open -> HELD, waiting out an owner that is BUSY, and opens them
// again when done. An owner never takes a lock while BUSY, so the wait is short.
// Two atomic operations per malloc or free, on words of a shared WebAssembly
// memory (wasm-atomics.ts), where each is one locked instruction behind a short
// call instead of a call into the engine's runtime (the locks micro benchmark
// times both).
// Refill and flush run outside enter/exit under the class lock; so does a drain
// of one class, so the owner and a drainer never touch one magazine together.
//
// Why the hit path keeps these atomics although only its CPU writes the magazine.
// The magazine's words are the owner's alone between two movers, but a mover
// (compaction, migration, a drain) reads and rewrites them, and the owner must
// not be halfway through a pop or a push when it does. That exclusion is a
// Dekker-style handshake (the owner says "busy", then looks for a mover; the
// mover says "held", then looks for a busy owner), which needs a store-load
// fence on both sides: with plain stores both sides can read the other's old
// word and go ahead together. JavaScript offers no fence but a sequentially
// consistent atomic operation, so enter() is one compare-and-swap. exit() must
// publish the magazine's plain writes before the mover reads them; the memory
// model orders plain writes only before an atomic write that the reader then
// reads, so exit() is an atomic store. A free also claims the handle word with a
// compare-and-swap: two CPUs freeing one handle each sit inside their own gate,
// which does not exclude the other, and without the claim both would stack the
// object. So a malloc+free pair costs five sequentially consistent operations,
// the floor of this protocol; a gate held across calls would leave an idle
// thread's gate closed, and a mover would wait on it for ever.

import { CPU_DEAD, cpuState } from './cpu-registry.js';

import { ZS_SIZE_CLASSES } from './constants.js';
import { type ClassLists, findZspage, fixFullness } from './fullness.js';
import type { HandleTable } from './handles.js';
import type { MoverGate } from './lock-policy.js';

import { CL_OBJ_USED, CL_WORDS, RESERVED_HEADER } from './zspage.js';
import { objToPfn } from './location.js';
import { objHeaderWord, objIndex, objReserve, objUnreserve, zspageOfObj } from './objects.js';
import { type AtomicMemory, type AtomicOps, atomicOps, createAtomicMemory } from './wasm-atomics.js';
import { type ZspageSpace, newZspageLocked, putbackOrFree } from './zspage-alloc.js';

/** CPUs that get caches; threads with a higher CPU id take the locked path. */
export const PCP_MAX_CPUS = 64;
/** Objects a magazine holds at most. */
export const PCP_CAPACITY = 16;
/** Objects a refill reserves, and a flush of a full magazine gives back. */
export const PCP_BATCH = 8;

// One magazine (per CPU, per class), Int32 words:
export const MG_COUNT = 0; // objects in the stack
export const MG_USED = 1; // objects this CPU's fast path took (+) or gave back (-), not yet in obj_used
export const MG_ENTRIES = 2; // [PCP_CAPACITY] location words (frame, offset), bottom first
export const MG_WORDS = MG_ENTRIES + PCP_CAPACITY;

// Words of the area: the movers count on its own line, then per CPU its busy word
// (on its own line) and its magazines.
const CPU_HIGH = 0; // 1 + highest CPU id that has used its caches (movers look no further)
const HEAD_WORDS = 16;
const CPU_BUSY = 0; // the gate word
const GATE_OPEN = 0;
const GATE_BUSY = 1;
const GATE_HELD = 2;
const SPINS_BEFORE_SLEEP = 1024;
const napWord = new Int32Array(new SharedArrayBuffer(4));
const CPU_HEAD_WORDS = 16;
const CPU_WORDS = CPU_HEAD_WORDS + ZS_SIZE_CLASSES * MG_WORDS;

export interface PerCpuCacheShared {
  /**
   * Int32 words: movers count, per CPU busy word and magazines; a shared
   * WebAssembly memory, so that the gates' atomics are single instructions
   * (wasm-atomics.ts).
   */
  words: AtomicMemory;
  /** Float64 per CPU per class: bytes this CPU's fast path stored (+) or freed (-), not yet in the class. */
  bytes: SharedArrayBuffer;
}

export function createPerCpuCacheShared(): PerCpuCacheShared {
  return {
    words: createAtomicMemory((HEAD_WORDS + PCP_MAX_CPUS * CPU_WORDS) * 4),
    bytes: new SharedArrayBuffer(PCP_MAX_CPUS * ZS_SIZE_CLASSES * 8),
  };
}

// Module-local copies for the hit path's helpers (backRef, slot): the engine folds
// a module's own unexported constants into its code, but loads and checks an
// exported one at every use (docs/design.md).
const CAPACITY = PCP_CAPACITY;
const WORDS_PER_MAGAZINE = MG_WORDS;

/** What a reserved object's second word holds: the magazine position that names it. */
export function backRef(cpu: number, pos: number): number {
  return cpu * CAPACITY + pos;
}

function cpuBase(cpu: number): number {
  return HEAD_WORDS + cpu * CPU_WORDS;
}
/** Index in the words of CPU cpu's magazine of class c. */
export function slotOf(cpu: number, c: number): number {
  return cpuBase(cpu) + CPU_HEAD_WORDS + c * MG_WORDS;
}
/** The entry a back reference names (index in the words), for class c. */
export function entryOf(ref: number, c: number): number {
  return slotOf((ref / PCP_CAPACITY) | 0, c) + MG_ENTRIES + (ref % PCP_CAPACITY);
}

/** The gates of every CPU, as the pool lock for writing stops them (lock-policy.ts). */
export class CacheGates implements MoverGate {
  private readonly words: Int32Array;
  private readonly reg: Int32Array;
  private readonly regBase: number;

  constructor(words: Int32Array, reg: Int32Array, regBase: number) {
    this.words = words;
    this.reg = reg;
    this.regBase = regBase;
  }
  quiesce(): void {
    PerCpuCache.quiesce(this.words, this.reg, this.regBase);
  }
  unquiesce(): void {
    PerCpuCache.unquiesce(this.words);
  }
}

/** What refill, flush, drain and reclaim work on: the lists, zspages, counters, handles and the caches. */
export interface CacheSpace extends ClassLists, ZspageSpace {
  readonly clsBytes: Float64Array;
  readonly handles: HandleTable;
  /** This thread's caches (null when off, or for a CPU id past PCP_MAX_CPUS). */
  readonly pcp: PerCpuCache | null;
  /** Every CPU's caches (null when the pool has none). */
  readonly pcpWords: Int32Array | null;
  readonly pcpBytes: Float64Array | null;
}

/** One CPU's view of the caches: its magazines and the entry/exit protocol. */
export class PerCpuCache {
  readonly words: Int32Array;
  readonly bytes: Float64Array;
  readonly cpu: number;
  /** Index of this CPU's magazine of class 0 in `words`. */
  private readonly base: number;
  private readonly busy: number;
  private readonly bytesBase: number;
  private readonly ops: AtomicOps;

  constructor(shared: PerCpuCacheShared, cpu: number) {
    this.words = new Int32Array(shared.words.buffer);
    this.ops = atomicOps(shared.words);
    this.bytes = new Float64Array(shared.bytes);
    this.cpu = cpu;
    this.base = slotOf(cpu, 0);
    this.busy = cpuBase(cpu) + CPU_BUSY;
    this.bytesBase = cpu * ZS_SIZE_CLASSES;
    for (let high = Atomics.load(this.words, CPU_HIGH); high < cpu + 1; high = Atomics.load(this.words, CPU_HIGH))
      if (Atomics.compareExchange(this.words, CPU_HIGH, high, cpu + 1) === high) break;
  }

  /** Index of this CPU's magazine of class c in `words`. */
  slot(c: number): number {
    return this.base + c * WORDS_PER_MAGAZINE;
  }

  /** Starts a lock-free operation; false if a mover is at work (take the locked path). */
  enter(): boolean {
    return this.ops.cas(this.busy, GATE_OPEN, GATE_BUSY) === GATE_OPEN;
  }

  exit(): void {
    this.ops.store(this.busy, GATE_OPEN);
  }

  addBytes(c: number, n: number): void {
    this.bytes[this.bytesBase + c] = this.bytes[this.bytesBase + c]! + n;
  }

  /** A mover (pool lock held for writing) waits until no live CPU is inside enter/exit. */
  static quiesce(w: Int32Array, reg: Int32Array, regBase: number): void {
    const high = Atomics.load(w, CPU_HIGH);
    for (let cpu = 0; cpu < high; cpu++) {
      const b = cpuBase(cpu) + CPU_BUSY;
      for (let spins = 0; ; spins++) {
        const g = Atomics.compareExchange(w, b, GATE_OPEN, GATE_HELD);
        if (g !== GATE_BUSY) break; // held now (or still held from a mover that died)
        // a CPU that died inside an operation never opens its gate: its caches are
        // reclaimed under the class locks, take the gate from it
        if (
          cpuState(reg, regBase, cpu) === CPU_DEAD &&
          Atomics.compareExchange(w, b, GATE_BUSY, GATE_HELD) === GATE_BUSY
        )
          break;
        if (spins >= SPINS_BEFORE_SLEEP) Atomics.wait(napWord, 0, 0, 0.02); // the owner was preempted
      }
    }
  }

  static unquiesce(w: Int32Array): void {
    const high = Atomics.load(w, CPU_HIGH);
    for (let cpu = 0; cpu < high; cpu++) Atomics.store(w, cpuBase(cpu) + CPU_BUSY, GATE_OPEN);
  }

  /** Sum over CPUs of the objects taken (+) and given back (-) by fast paths, not yet folded into class c. */
  static usedDelta(w: Int32Array, c: number): number {
    let n = 0;
    for (let cpu = 0; cpu < PCP_MAX_CPUS; cpu++) n += Atomics.load(w, slotOf(cpu, c) + MG_USED);
    return n;
  }

  static bytesDelta(b: Float64Array, c: number): number {
    let n = 0;
    for (let cpu = 0; cpu < PCP_MAX_CPUS; cpu++) n += b[cpu * ZS_SIZE_CLASSES + c]!;
    return n;
  }

  /** Objects in every CPU's magazines of class c. */
  static reserved(w: Int32Array, c: number): number {
    let n = 0;
    for (let cpu = 0; cpu < PCP_MAX_CPUS; cpu++) n += Atomics.load(w, slotOf(cpu, c) + MG_COUNT);
    return n;
  }

  /** Calls fn(entry) for every entry of every CPU's magazine of class c (movers only). */
  static forEachEntry(w: Int32Array, c: number, fn: (entry: number, cpu: number) => void): void {
    for (let cpu = 0; cpu < PCP_MAX_CPUS; cpu++) {
      const m = slotOf(cpu, c);
      const n = w[m + MG_COUNT]!;
      for (let k = 0; k < n; k++) fn(w[m + MG_ENTRIES + k]!, cpu);
    }
  }
}

/** Folds one magazine's unfolded counts into class c (class lock held). */
function foldLocked(s: CacheSpace, words: Int32Array, bytes: Float64Array, cpu: number, c: number): void {
  const m = slotOf(cpu, c);
  const used = words[m + MG_USED]!;
  const b = bytes[cpu * ZS_SIZE_CLASSES + c]!;
  if (used !== 0) {
    s.cls[c * CL_WORDS + CL_OBJ_USED]! += used;
    words[m + MG_USED] = 0;
  }
  if (b !== 0) {
    s.clsBytes[c] = s.clsBytes[c]! + b;
    bytes[cpu * ZS_SIZE_CLASSES + c] = 0;
  }
}

/** Gives the top `n` objects of a magazine back to their zspages (class lock held). */
function returnLocked(s: CacheSpace, words: Int32Array, cpu: number, c: number, n: number): void {
  const m = slotOf(cpu, c);
  let count = words[m + MG_COUNT]!;
  for (; n > 0 && count > 0; n--) {
    const e = words[m + MG_ENTRIES + count - 1]!;
    count--;
    words[m + MG_COUNT] = count;
    const zs = zspageOfObj(s.phys.fd, e);
    objUnreserve(s, zs, c, objIndex(s, c, e));
    putbackOrFree(s, c, zs);
  }
}

/**
 * Reserves up to PCP_BATCH objects of class c for this CPU's magazine, fullest
 * zspage first (malloc's order), building a zspage if none has room, and stacks
 * them so that the first reserved is popped first: mallocs served from the cache
 * get the very objects the locked path would have given them, in the same order.
 * False if nothing could be reserved (out of memory; the locked path reports it).
 */
export function refillMagazine(s: CacheSpace, c: number): boolean {
  const pcp = s.pcp!;
  const words = pcp.words;
  const m = pcp.slot(c);
  s.lock.mallocLock(c);
  foldLocked(s, words, pcp.bytes, pcp.cpu, c);
  let count = words[m + MG_COUNT]!;
  let start = count;
  while (count < PCP_BATCH) {
    let zs = findZspage(s, c);
    if (zs === 0) {
      s.lock.mallocUnlock(c);
      zs = newZspageLocked(s, c);
      if (zs === 0) {
        // out of memory: keep what was reserved (in pop order) if anything
        s.lock.mallocLock(c);
        count = words[m + MG_COUNT]!;
        stackBatch(s, c, words, m, Math.min(start, count), count);
        s.lock.mallocUnlock(c);
        return count > 0;
      }
      count = words[m + MG_COUNT]!; // a drain may have run while the lock was dropped
      if (count < start) start = count;
    }
    const loc = objReserve(s, zs, c);
    fixFullness(s, c, zs);
    words[m + MG_ENTRIES + count] = loc;
    // named at once: migration may move it while the lock is dropped to build a zspage
    const a = objHeaderWord(s, c, loc);
    s.phys.wordsOf(objToPfn(loc))[a + 1] = backRef(pcp.cpu, count);
    count++;
    words[m + MG_COUNT] = count;
  }
  stackBatch(s, c, words, m, start, count);
  s.lock.mallocUnlock(c);
  return true;
}

/** Reverses a new batch (first reserved on top) and points each object at its position. */
function stackBatch(s: CacheSpace, c: number, words: Int32Array, m: number, from: number, to: number): void {
  for (let i = m + MG_ENTRIES + from, j = m + MG_ENTRIES + to - 1; i < j; i++, j--) {
    const t = words[i]!;
    words[i] = words[j]!;
    words[j] = t;
  }
  const cpu = s.pcp!.cpu;
  for (let k = from; k < to; k++) {
    const e = words[m + MG_ENTRIES + k]!;
    const a = objHeaderWord(s, c, e); // makes the frame visible first
    s.phys.wordsOf(objToPfn(e))[a + 1] = backRef(cpu, k);
  }
}

/** Gives the top half of this CPU's full magazine of class c back to the zspages. */
export function flushMagazine(s: CacheSpace, c: number): void {
  const pcp = s.pcp!;
  s.lock.mallocLock(c);
  foldLocked(s, pcp.words, pcp.bytes, pcp.cpu, c);
  returnLocked(s, pcp.words, pcp.cpu, c, PCP_CAPACITY - PCP_BATCH);
  s.lock.mallocUnlock(c);
}

/**
 * Empties one magazine (class lock held; its owner is not inside enter/exit: a
 * mover holds the pool lock, or the owner is this thread, or dead). A dead owner
 * may have stopped inside an operation: an entry whose object already names a
 * handle that points back at it was handed out, and stays allocated and used.
 */
function drainLocked(s: CacheSpace, words: Int32Array, bytes: Float64Array, cpu: number, c: number): number {
  const m = slotOf(cpu, c);
  const n = words[m + MG_COUNT]!;
  foldLocked(s, words, bytes, cpu, c);
  if (n === 0) return 0;
  // entries whose object was handed out by an interrupted malloc: drop them from the stack first
  let keep = 0;
  for (let k = 0; k < n; k++) {
    const e = words[m + MG_ENTRIES + k]!;
    if (reservedObject(s, c, e)) words[m + MG_ENTRIES + keep++] = e;
    else s.cls[c * CL_WORDS + CL_OBJ_USED]!++;
  }
  words[m + MG_COUNT] = keep;
  returnLocked(s, words, cpu, c, keep);
  return keep;
}

/** Is the object an entry names still reserved (its header RESERVED_HEADER)? */
function reservedObject(s: CacheSpace, c: number, e: number): boolean {
  const a = objHeaderWord(s, c, e);
  const w = s.phys.wordsOf(objToPfn(e))[a]!;
  if (w === RESERVED_HEADER) return true;
  const h = w >>> 1;
  if ((w & 1) === 0 || !s.handles.inRange(h)) return true; // not a live object: give it back
  return s.handles.words[h] !== e;
}

/** Drains every CPU's magazines (a mover: pool lock for writing, then each class lock). */
export function drainAllCaches(s: CacheSpace): number {
  const words = s.pcpWords!;
  const bytes = s.pcpBytes!;
  let n = 0;
  s.lock.poolWriteLock();
  try {
    for (const c of s.table.distinct) {
      if (s.table.huge[c] !== 0) continue;
      s.lock.classLock(c);
      for (let cpu = 0; cpu < PCP_MAX_CPUS; cpu++) n += drainLocked(s, words, bytes, cpu, c);
      s.lock.classUnlock(c);
    }
  } finally {
    s.lock.poolWriteUnlock();
  }
  return n;
}

/**
 * Drains one CPU's magazines, class by class under the class lock: a thread
 * detaching (its own) or a dead thread's (it can no longer run). Returns objects returned.
 */
export function reclaimCpuCaches(s: CacheSpace, cpu: number): number {
  if (cpu >= PCP_MAX_CPUS || s.pcpWords === null || s.pcpBytes === null) return 0;
  const words = s.pcpWords;
  const bytes = s.pcpBytes;
  let n = 0;
  for (const c of s.table.distinct) {
    if (s.table.huge[c] !== 0) continue;
    const m = slotOf(cpu, c);
    if (
      Atomics.load(words, m + MG_COUNT) === 0 &&
      Atomics.load(words, m + MG_USED) === 0 &&
      bytes[cpu * ZS_SIZE_CLASSES + c] === 0
    )
      continue;
    s.lock.mallocLock(c);
    n += drainLocked(s, words, bytes, cpu, c);
    s.lock.mallocUnlock(c);
  }
  // the slot may be claimed again by a new thread: it starts with empty magazines and no busy mark
  if (Atomics.load(words, cpuBase(cpu) + CPU_BUSY) === GATE_BUSY)
    Atomics.store(words, cpuBase(cpu) + CPU_BUSY, GATE_OPEN);
  return n;
}
