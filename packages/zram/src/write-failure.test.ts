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

  it('refuses to replace a slot whose handle now names another object of another size', () => {
    const dev = ZramDevice.create({ disksize: 64 * 4096 });
    dev.writePage(5, noisy(3));
    const slots = dev['slots'] as { handle(i: number): number };
    const h = dev.pool.objSize(slots.handle(5));
    // damage: the object is freed behind the slot's back and its handle given to an object of another size
    dev.pool.free(slots.handle(5));
    const other = dev.pool.malloc(h + 100);
    expect(other).toBe(slots.handle(5)); // the handle was reused
    const objects = dev.pool.stats().objUsed;
    const failed = dev.statValues().io.failedWrites;
    expect(() => dev.writePage(5, noisy(4))).toThrow(/not its object/);
    expect(dev.pool.stats().objUsed).toBe(objects);
    expect(dev.statValues().io.failedWrites).toBe(failed + 1);
  });

  it('replaces a slot whose object it still owns (the check without the pool locks confirms it)', () => {
    const dev = ZramDevice.create({ disksize: 64 * 4096 });
    const out = new Uint8Array(4096);
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 32; i++) dev.writePage(i, noisy(round * 100 + i));
      dev.compact();
      for (let i = 0; i < 32; i++) {
        dev.readPage(i, out);
        expect(out).toEqual(noisy(round * 100 + i));
      }
    }
    expect(dev.statValues().io.failedWrites).toBe(0);
    dev.verify();
  });
});
