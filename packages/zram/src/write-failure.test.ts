import { describe, expect, it } from 'vitest';
import { ZsError } from '@zsmalloc/core';
import { ZramDevice } from './device.js';

function noisy(seed: number): Uint8Array {
  const p = new Uint8Array(4096);
  for (let i = 0; i < p.length; i++) p[i] = (Math.imul(i + seed, 2654435761) >>> 24) & 0x3f;
  return p;
}

describe('a write whose old content cannot be freed (R5)', () => {
  it('frees its new object, counts a failed write and leaves the pool object count unchanged', () => {
    const dev = ZramDevice.create({ disksize: 64 * 4096 });
    dev.writePage(3, noisy(1));
    // damage: the slot's object is freed behind its back (what a thread dying mid-free leaves)
    const slots = dev['slots'] as { handle(i: number): number };
    dev.pool.free(slots.handle(3));
    const objects = dev.pool.stats().objUsed;
    const failed = dev.statValues().io.failedWrites;
    expect(() => dev.writePage(3, noisy(2))).toThrow(ZsError);
    expect(dev.pool.stats().objUsed).toBe(objects);
    expect(dev.statValues().io.failedWrites).toBe(failed + 1);
    // and the check after a death fences the device instead of serving the dangling slot
    expect(dev.checkAfterDeath()).toBe(false);
    expect(dev.fenced).toBe(true);
    expect(() => dev.readPage(3, new Uint8Array(4096))).toThrow(/fenced/);
  });
});
