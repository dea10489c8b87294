// The slot journal's repair (slot-repair.ts) on the states a thread killed in the
// middle of replacing a slot's content leaves: made here on purpose, with the record
// a dead CPU would have left. After checkAfterDeath() the device is not fenced, the
// page reads as the old or the new content (never anything else), nothing leaks and
// verify() passes.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { MAX_CPUS, type ZsPool, intentBase } from '@zsmalloc/core';
import { ZramDevice } from './device.js';
import { SlotJournal } from './slot-repair.js';

/** The record of the last CPU slot, which no thread claims here. */
const DEAD_AT = intentBase(MAX_CPUS - 1);

function page(seed: number): Uint8Array {
  const p = new Uint8Array(4096);
  for (let i = 0; i < p.length; i++) p[i] = (Math.imul(i + seed, 2654435761) >>> 26) & 0x3f;
  return p;
}

interface Slots {
  handle(i: number): number;
  flags(i: number): number;
  setHandle(i: number, h: number): void;
  setOwned(i: number, f: number): void;
}

function setup() {
  const dev = ZramDevice.create({ disksize: 64 * 4096 });
  const slots = dev['slots'] as unknown as Slots;
  // the journal of a thread that is gone: its CPU slot is not alive
  const dead = new SlotJournal({ intent: dev.pool.intent, intentAt: DEAD_AT } as ZsPool, dev.shared.lockArrayId);
  /** Content of page `from`, taken out of its slot: an object made for a write, in no slot. */
  const steal = (from: number) => {
    const h = slots.handle(from);
    const f = slots.flags(from) & 0x3fffff & ~(1 << 14);
    slots.setHandle(from, 0);
    slots.setOwned(from, 0);
    return { h, f };
  };
  return { dev, slots, dead, steal };
}

function reads(dev: ZramDevice, index: number, want: Uint8Array): boolean {
  const out = new Uint8Array(4096);
  dev.readPage(index, out);
  return Buffer.from(out).equals(Buffer.from(want));
}

describe('repair of a slot replacement a dead thread left half done', () => {
  it('a write killed after the new handle went in, before the flags: rolled forward, the old object freed', () => {
    const { dev, slots, dead, steal } = setup();
    dev.writePage(3, page(1));
    dev.writePage(5, page(2));
    const objects = dev.pool.stats().objUsed;
    const nu = steal(5);
    const oldH = slots.handle(3);
    const oldF = slots.flags(3) & ~(1 << 14);
    dead.replace(3, nu.h, 0, nu.f, oldH, oldF);
    slots.setHandle(3, nu.h); // killed here: handle new, flags old
    expect(dev.checkAfterDeath()).toBe(true);
    expect(dev.lastRepair).toMatch(/slot 3: replacement rolled forward; slot 3: old content released/);
    expect(reads(dev, 3, page(2))).toBe(true);
    expect(dev.pool.stats().objUsed).toBe(objects - 1);
    dev.recountStats();
    dev.verify();
  });

  it('a write killed after installing, before freeing the old object: the old object is freed, the new one kept', () => {
    const { dev, slots, dead, steal } = setup();
    dev.writePage(3, page(1));
    dev.writePage(5, page(2));
    const objects = dev.pool.stats().objUsed;
    const nu = steal(5);
    const oldH = slots.handle(3);
    const oldF = slots.flags(3) & ~(1 << 14);
    dead.replace(3, nu.h, 0, nu.f, oldH, oldF);
    slots.setHandle(3, nu.h);
    slots.setOwned(3, nu.f);
    expect(dev.checkAfterDeath()).toBe(true);
    expect(reads(dev, 3, page(2))).toBe(true);
    expect(dev.pool.stats().objUsed).toBe(objects - 1);
    dev.recountStats();
    dev.verify();
  });

  it('a discard killed after clearing the slot, before freeing its object: the object is freed, the page reads zeros', () => {
    const { dev, slots, dead } = setup();
    dev.writePage(7, page(3));
    const objects = dev.pool.stats().objUsed;
    const oldH = slots.handle(7);
    const oldF = slots.flags(7) & ~(1 << 14);
    dead.replace(7, 0, 0, 0, oldH, oldF);
    slots.setHandle(7, 0); // killed here: flags still say stored
    expect(dev.checkAfterDeath()).toBe(true);
    expect(reads(dev, 7, new Uint8Array(4096))).toBe(true);
    expect(dev.pool.stats().objUsed).toBe(objects - 1);
    dev.recountStats();
    dev.verify();
  });

  it('a write killed after making its object, before the slot took it: the object is freed', () => {
    const { dev, dead, steal } = setup();
    dev.writePage(5, page(4));
    const objects = dev.pool.stats().objUsed;
    const nu = steal(5);
    dead.prepared(nu.h);
    expect(dev.checkAfterDeath()).toBe(true);
    expect(dev.lastRepair).toMatch(/prepared object \d+ freed/);
    expect(dev.pool.stats().objUsed).toBe(objects - 1);
    dev.recountStats();
    dev.verify();
  });

  it('a record whose slot a live thread has rewritten since changes nothing there', () => {
    const { dev, slots, dead, steal } = setup();
    dev.writePage(3, page(1));
    dev.writePage(5, page(2));
    const nu = steal(5);
    dead.replace(3, nu.h, 0, nu.f, 12345, 77);
    dev.writePage(3, page(9)); // the live write since
    expect(dev.checkAfterDeath()).toBe(true);
    expect(reads(dev, 3, page(9))).toBe(true);
    expect(slots.handle(3)).not.toBe(nu.h);
  });
});

/**
 * A real thread that attaches to the device, takes slot `index`'s lock, writes the
 * REPLACE record a write would (new content `nu`, old content `old`) and dies right
 * there, holding the lock, before changing the slot. Resolves once its CPU is marked dead.
 */
function dieMidReplace(
  dev: ZramDevice,
  index: number,
  nu: { h: number; f: number },
  old: { h: number; f: number },
): Promise<void> {
  const code = `
    const { workerData: d } = require('node:worker_threads');
    (async () => {
      const { ZramDevice } = await import(d.zram);
      const { SlotJournal } = await import(d.repair);
      const dev = ZramDevice.attach(d.shared);
      dev.slots.lock(d.index);
      new SlotJournal(dev.pool, dev.shared.lockArrayId).replace(d.index, d.newH, 0, d.newF, d.oldH, d.oldF);
      process.exit(0);
    })();`;
  const w = new Worker(code, {
    eval: true,
    workerData: {
      zram: new URL('../dist/index.js', import.meta.url).href,
      repair: new URL('../dist/slot-repair.js', import.meta.url).href,
      shared: dev.shared,
      index,
      newH: nu.h,
      newF: nu.f,
      oldH: old.h,
      oldF: old.f,
    },
  });
  const tid = w.threadId;
  return new Promise((resolve, reject) => {
    w.once('error', reject);
    w.once('exit', () => {
      dev.pool.markThreadDead(tid);
      resolve();
    });
  });
}

describe('a slot lock taken over from a thread that died mid-replacement', () => {
  it('the slot is settled before a live write can free its old object, so the repair never frees that handle once reused', async () => {
    const { dev, slots, steal } = setup();
    dev.writePage(3, page(1));
    dev.writePage(5, page(2));
    const nu = steal(5); // the dead write's object, in no slot
    const old = { h: slots.handle(3), f: slots.flags(3) & ~(1 << 14) };
    await dieMidReplace(dev, 3, nu, old);
    dev.releaseAfterDeath(); // what the service runs from the exit event: the slot lock is taken over
    // a live write to the same page; it frees whatever the slot held, and its next
    // object gets that handle straight back from this thread's handle cache
    dev.writePage(3, page(9));
    const made = dev.pool.mallocWrite(page(4).subarray(0, 100)); // a write's object, not installed yet
    expect(dev.checkAfterDeath()).toBe(true);
    // the live write's object is still there (it would be installed next), page 3 is the live write
    expect(dev.pool.objSize(made)).toBe(100);
    expect(reads(dev, 3, page(9))).toBe(true);
    dev.pool.free(made);
    // nothing leaked: the dead write's object and the old one are both gone
    expect(dev.pool.stats().objUsed).toBe(1);
    dev.recountStats();
    dev.verify();
  });
});
