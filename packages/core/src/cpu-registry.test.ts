import { describe, expect, it } from 'vitest';
import {
  CPU_SLOT_WORDS,
  HELD_BIT,
  HELD_HEADER,
  HELD_HELD,
  MAX_CPUS,
  claimCpu,
  cpuRegistryWords,
  heldDesc,
  markThreadDead,
  ownerTag,
  recoverRecords,
  releaseCpu,
  tagDead,
} from './cpu-registry.js';

describe('CPU registry', () => {
  it('reuses dead CPU slots: far more than 256 threads can die one after another', () => {
    const reg = new Int32Array(new SharedArrayBuffer(cpuRegistryWords() * 4));
    const live = claimCpu(reg, 0, 1);
    for (let t = 2; t < 2 + 10 * MAX_CPUS; t++) {
      claimCpu(reg, 0, t);
      expect(markThreadDead(reg, 0, t)).toHaveLength(1);
    }
    expect(tagDead(reg, 0, ownerTag(live, 1))).toBe(false);
  });

  it('never reuses a dead slot that still holds a bit lock or rwlock share, until it is recovered', () => {
    const reg = new Int32Array(new SharedArrayBuffer(cpuRegistryWords() * 4));
    const words = new Int32Array(new SharedArrayBuffer(64));
    const cpus: number[] = [];
    for (let t = 1; t <= MAX_CPUS; t++) cpus.push(claimCpu(reg, 0, t));
    // CPU 5 dies holding bit 4 of word 2 of array 17
    const at = 5 * CPU_SLOT_WORDS + HELD_HEADER;
    reg[at + 1] = 2;
    reg[at + 2] = 4;
    reg[at] = heldDesc(17, HELD_BIT, HELD_HELD);
    words[2] = 4;
    markThreadDead(reg, 0, 6);
    expect(() => claimCpu(reg, 0, 1000)).toThrow(/no free CPU slot/);
    // another array's recovery does not touch it
    expect(recoverRecords(reg, 0, 18, -1, () => undefined)).toBe(0);
    expect(recoverRecords(reg, 0, 17, -1, (_k, i, mask) => Atomics.and(words, i, ~mask))).toBe(1);
    expect(words[2]).toBe(0);
    expect(claimCpu(reg, 0, 1000)).toBe(5);
  });

  it('a mutex owner tag of a reused slot reads dead (the old generation)', () => {
    const reg = new Int32Array(new SharedArrayBuffer(cpuRegistryWords() * 4));
    const cpu = claimCpu(reg, 0, 1);
    const oldTag = ownerTag(cpu, Atomics.load(reg, 3));
    expect(tagDead(reg, 0, oldTag | 1)).toBe(false);
    markThreadDead(reg, 0, 1);
    expect(tagDead(reg, 0, oldTag | 1)).toBe(true);
    for (let t = 2; t <= MAX_CPUS; t++) claimCpu(reg, 0, t); // every free slot taken
    expect(claimCpu(reg, 0, 9999)).toBe(cpu); // so the dead one is reused
    expect(tagDead(reg, 0, oldTag | 1)).toBe(true);
    expect(tagDead(reg, 0, ownerTag(cpu, Atomics.load(reg, 3)) | 1)).toBe(false);
    releaseCpu(reg, 0, cpu);
    expect(tagDead(reg, 0, oldTag | 1)).toBe(true);
  });
});
