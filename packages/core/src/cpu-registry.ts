// The CPU registry: every thread that attaches to a pool claims a "CPU" slot in
// shared memory. Lock words and the slot's held-lock records name the owner, so a
// lock left held by a thread that died can be recognised (its slot is marked dead,
// or has since been given to another thread) and recovered by whoever waits on it.
//
// Slot layout, CPU_SLOT_WORDS Int32 words:
//   [0] state (FREE, ALIVE, DEAD)   [1] threadId   [2] locks recovered
//   [3] generation: bumped each time the slot is claimed, part of the mutex owner tag
//   [4..] HELD_RECORDS held-lock records of 3 words: [desc, index, mask]
//        desc = array id | kind << 16 | state << 20 (0 = empty record)
// Mutexes keep their owner in the lock word; rwlocks (readers and writers) and bit
// locks have no room for one, so the holder writes a record: "intent" before it
// tries, "held" in the same straight-line code right after the atomic that took the
// lock (no call or loop between them, so a terminate() cannot land in between), and
// clears it only after the releasing atomic. A dead CPU's held records say exactly
// which lock word of which array (R6: device, pool control block, zspage table) it
// still holds.

export const MAX_CPUS = 256;
export const HELD_RECORDS = 6;
export const HELD_HEADER = 4;
export const CPU_SLOT_WORDS = HELD_HEADER + HELD_RECORDS * 3;
export const CPU_STATE = 0;
export const CPU_THREAD = 1;
export const CPU_RECOVERED = 2;
export const CPU_GEN = 3;
export const CPU_FREE = 0;
export const CPU_ALIVE = 1;
export const CPU_DEAD = 2;

/** Record kinds. */
export const HELD_READ = 1;
export const HELD_WRITE = 2;
export const HELD_BIT = 3;
/** Record states. */
export const HELD_INTENT = 1;
export const HELD_HELD = 2;

/** Array ids of the lock words the pool itself owns; devices get ids from ARRAY_ID_FIRST_DYNAMIC. */
export const ARRAY_CTL = 1;
export const ARRAY_ZSPAGES = 2;
export const ARRAY_CLASSES = 3;
export const ARRAY_ID_FIRST_DYNAMIC = 16;

/** Generation bits in a mutex owner tag: tag = ((gen << 9) | (cpu + 1)) << 2. */
export const GEN_MASK = 0x7ffff;

export function heldDesc(arrayId: number, kind: number, state: number): number {
  return arrayId | (kind << 16) | (state << 20);
}
export function descArray(desc: number): number {
  return desc & 0xffff;
}
export function descKind(desc: number): number {
  return (desc >>> 16) & 0xf;
}
export function descState(desc: number): number {
  return (desc >>> 20) & 0xf;
}

/** After the slots: a counter of CPUs marked dead, which trylockers check before they sweep. */
export const DEATHS_WORD = MAX_CPUS * CPU_SLOT_WORDS;

export function cpuRegistryWords(): number {
  return MAX_CPUS * CPU_SLOT_WORDS + 1;
}

export function deathCount(reg: Int32Array, base: number): number {
  return Atomics.load(reg, base + DEATHS_WORD);
}

/** The owner tag a CPU of generation `gen` writes into mutex words. */
export function ownerTag(cpu: number, gen: number): number {
  return (((gen & GEN_MASK) << 9) | (cpu + 1)) << 2;
}

/** The generation named by a mutex owner tag. */
export function tagGen(tag: number): number {
  return (tag >>> 11) & GEN_MASK;
}

/**
 * Whether `cpu` is still the dead thread of generation `gen`: marked dead and not
 * claimed again since (what it left is that thread's, not a new owner's).
 */
export function cpuStillDead(reg: Int32Array, base: number, cpu: number, gen: number): boolean {
  const at = base + cpu * CPU_SLOT_WORDS;
  return Atomics.load(reg, at + CPU_STATE) === CPU_DEAD && Atomics.load(reg, at + CPU_GEN) === gen;
}

/** The CPU named by a mutex owner tag (or -1). */
export function tagCpu(tag: number): number {
  return ((tag >>> 2) & 0x1ff) - 1;
}

/**
 * Whether the owner named by a mutex tag is gone: its slot is not alive, or was
 * claimed again since (another generation).
 */
export function tagDead(reg: Int32Array, base: number, tag: number): boolean {
  const cpu = tagCpu(tag);
  if (cpu < 0) return false;
  const at = base + cpu * CPU_SLOT_WORDS;
  return Atomics.load(reg, at + CPU_STATE) !== CPU_ALIVE || Atomics.load(reg, at + CPU_GEN) !== tag >>> 11;
}

/** A slot whose records are all empty holds no rwlock or bit lock. */
export function cpuHoldsRecords(reg: Int32Array, base: number, cpu: number): boolean {
  const at = base + cpu * CPU_SLOT_WORDS + HELD_HEADER;
  for (let r = 0; r < HELD_RECORDS; r++) {
    const d = Atomics.load(reg, at + r * 3);
    if (d !== 0 && descState(d) === HELD_HELD) return true;
  }
  return false;
}

/**
 * Claims a slot for `threadId`; returns the CPU id. A free slot first; else a dead
 * slot that holds no rwlock or bit lock any more (its mutexes, if any, still name
 * the old generation, so their waiters still see a dead owner).
 */
export function claimCpu(
  reg: Int32Array,
  base: number,
  threadId: number,
  /** A dead slot this says is still in use (an intent record not yet repaired) is not claimed. */
  inUse?: (cpu: number) => boolean,
): number {
  for (const from of [CPU_FREE, CPU_DEAD]) {
    for (let cpu = 0; cpu < MAX_CPUS; cpu++) {
      const at = base + cpu * CPU_SLOT_WORDS;
      if (Atomics.load(reg, at) !== from) continue;
      if (from === CPU_DEAD && (cpuHoldsRecords(reg, base, cpu) || inUse?.(cpu) === true)) continue;
      if (Atomics.compareExchange(reg, at, from, CPU_ALIVE) === from) {
        for (let k = HELD_HEADER; k < CPU_SLOT_WORDS; k++) Atomics.store(reg, at + k, 0);
        Atomics.store(reg, at + CPU_GEN, (Atomics.load(reg, at + CPU_GEN) + 1) & GEN_MASK);
        Atomics.store(reg, at + CPU_THREAD, threadId);
        return cpu;
      }
    }
  }
  throw new Error(`no free CPU slot: more than ${MAX_CPUS} live threads attached to one pool`);
}

export function cpuState(reg: Int32Array, base: number, cpu: number): number {
  return Atomics.load(reg, base + cpu * CPU_SLOT_WORDS);
}

/**
 * Marks every CPU slot that belongs to `threadId` dead (called by whoever saw the
 * thread exit: the watchdog thread, or the thread that created it). Locks it still
 * holds become recoverable by their waiters. Returns the CPU ids marked.
 */
export function markThreadDead(reg: Int32Array, base: number, threadId: number): number[] {
  const out: number[] = [];
  for (let cpu = 0; cpu < MAX_CPUS; cpu++) {
    const at = base + cpu * CPU_SLOT_WORDS;
    if (
      Atomics.load(reg, at) === CPU_ALIVE &&
      Atomics.load(reg, at + CPU_THREAD) === threadId &&
      Atomics.compareExchange(reg, at, CPU_ALIVE, CPU_DEAD) === CPU_ALIVE
    ) {
      out.push(cpu);
    }
  }
  if (out.length > 0) Atomics.add(reg, base + DEATHS_WORD, out.length);
  return out;
}

/** CPUs marked dead. */
export function deadCpus(reg: Int32Array, base: number): number[] {
  const out: number[] = [];
  for (let cpu = 0; cpu < MAX_CPUS; cpu++) if (cpuState(reg, base, cpu) === CPU_DEAD) out.push(cpu);
  return out;
}

/**
 * Releases every held record of a dead CPU that names array `arrayId`, through
 * `undo(kind, index, mask, cpu, gen)` (gen: the dead CPU's generation, read while the
 * record still held the lock, so the slot could not have been claimed again). Each
 * record is claimed with a compare-and-swap, so two
 * threads recovering at once undo it once. Returns the number undone.
 */
export function recoverRecords(
  reg: Int32Array,
  base: number,
  arrayId: number,
  index: number,
  undo: (kind: number, index: number, mask: number, cpu: number, gen: number) => void,
): number {
  let n = 0;
  for (let cpu = 0; cpu < MAX_CPUS; cpu++) {
    const slot = base + cpu * CPU_SLOT_WORDS;
    if (Atomics.load(reg, slot) !== CPU_DEAD) continue;
    for (let r = 0; r < HELD_RECORDS; r++) {
      const at = slot + HELD_HEADER + r * 3;
      const d = Atomics.load(reg, at);
      if (d === 0 || descState(d) !== HELD_HELD || descArray(d) !== arrayId) continue;
      const i = Atomics.load(reg, at + 1);
      if (index >= 0 && i !== index) continue;
      const mask = Atomics.load(reg, at + 2);
      const gen = Atomics.load(reg, slot + CPU_GEN);
      if (Atomics.compareExchange(reg, at, d, 0) !== d) continue;
      undo(descKind(d), i, mask, cpu, gen);
      Atomics.add(reg, slot + CPU_RECOVERED, 1);
      n++;
    }
  }
  return n;
}

/** Gives a slot back (a thread detaching cleanly, or a dead one holding nothing). */
export function releaseCpu(reg: Int32Array, base: number, cpu: number): void {
  const at = base + cpu * CPU_SLOT_WORDS;
  for (let k = HELD_HEADER; k < CPU_SLOT_WORDS; k++) Atomics.store(reg, at + k, 0);
  Atomics.store(reg, at + CPU_RECOVERED, 0);
  Atomics.store(reg, at + CPU_THREAD, 0);
  Atomics.store(reg, at, CPU_FREE);
}
