// The CPU registry: every thread that attaches to a pool claims a "CPU" slot in
// shared memory. Lock words record the owner's slot, so a lock left held by a
// thread that died can be recognised (its slot is marked dead) and recovered.

export const MAX_CPUS = 256;
/**
 * Int32 words per CPU slot: [state, threadId, recoveredLocks, heldBitClass+1,
 * heldBitIndex, heldBitMask, reserved, reserved]. The held-bit record names the bit
 * lock the CPU holds (bit locks have no room for an owner id in their word), so a
 * dead CPU's bit lock can be released by whoever owns that word array.
 */
export const CPU_SLOT_WORDS = 8;
export const CPU_HELD_BIT_CLASS = 3;
export const CPU_HELD_BIT_INDEX = 4;
export const CPU_HELD_BIT_MASK = 5;
export const CPU_FREE = 0;
export const CPU_ALIVE = 1;
export const CPU_DEAD = 2;

export function cpuRegistryWords(): number {
  return MAX_CPUS * CPU_SLOT_WORDS;
}

/** Claims a free slot for `threadId`; returns the CPU id. */
export function claimCpu(reg: Int32Array, base: number, threadId: number): number {
  for (let cpu = 0; cpu < MAX_CPUS; cpu++) {
    const at = base + cpu * CPU_SLOT_WORDS;
    if (Atomics.compareExchange(reg, at, CPU_FREE, CPU_ALIVE) === CPU_FREE) {
      Atomics.store(reg, at + 1, threadId);
      return cpu;
    }
  }
  throw new Error(`no free CPU slot: more than ${MAX_CPUS} threads attached to one pool`);
}

export function cpuState(reg: Int32Array, base: number, cpu: number): number {
  return Atomics.load(reg, base + cpu * CPU_SLOT_WORDS);
}

/**
 * Marks every CPU slot that belongs to `threadId` dead (called by whoever saw the
 * thread exit). Locks it still holds become recoverable by their waiters.
 * Returns the CPU ids marked.
 */
export function markThreadDead(reg: Int32Array, base: number, threadId: number): number[] {
  const out: number[] = [];
  for (let cpu = 0; cpu < MAX_CPUS; cpu++) {
    const at = base + cpu * CPU_SLOT_WORDS;
    if (Atomics.load(reg, at) === CPU_ALIVE && Atomics.load(reg, at + 1) === threadId) {
      Atomics.store(reg, at, CPU_DEAD);
      out.push(cpu);
    }
  }
  return out;
}

/** The bit lock a CPU holds, if any: [class, index, mask], or null. */
export function heldBitLock(reg: Int32Array, base: number, cpu: number): [number, number, number] | null {
  const at = base + cpu * CPU_SLOT_WORDS;
  const cls = Atomics.load(reg, at + CPU_HELD_BIT_CLASS);
  if (cls === 0) return null;
  return [cls - 1, Atomics.load(reg, at + CPU_HELD_BIT_INDEX), Atomics.load(reg, at + CPU_HELD_BIT_MASK)];
}

/** CPUs marked dead. */
export function deadCpus(reg: Int32Array, base: number): number[] {
  const out: number[] = [];
  for (let cpu = 0; cpu < MAX_CPUS; cpu++) if (cpuState(reg, base, cpu) === CPU_DEAD) out.push(cpu);
  return out;
}

/** Gives a slot back (a thread detaching cleanly). */
export function releaseCpu(reg: Int32Array, base: number, cpu: number): void {
  const at = base + cpu * CPU_SLOT_WORDS;
  for (let k = 2; k < CPU_SLOT_WORDS; k++) Atomics.store(reg, at + k, 0);
  Atomics.store(reg, at + 1, 0);
  Atomics.store(reg, at, CPU_FREE);
}
