// The repair after a thread's death (pool-repair.ts), on the states a thread killed
// midway leaves behind, made here on purpose in one thread: the half-done update,
// plus the intent record a dead CPU would have left. After repairStructures() the
// pool verifies and every live object reads back as written.
import { describe, expect, it, vi } from 'vitest';
import { MAX_CPUS, PAGE_SIZE } from './index.js';
import { CPU_ALIVE, CPU_DEAD, CPU_FREE, CPU_GEN, CPU_SLOT_WORDS, CPU_STATE, ownerTag } from './cpu-registry.js';
import {
  IN_A,
  IN_B,
  IN_C,
  IN_OP,
  IN_PHASE,
  IN_SETTLER,
  INTENT_PART_WORDS,
  INTENT_POOL,
  OP_BUILD,
  OP_MIGRATE,
  intentBase,
} from './intent-log.js';
import { FD_FLAGS, FD_WORDS, FD_ZSPAGE, PG_HUGE, PG_ZSPAGE } from './phys-mem.js';
import { objMalloc } from './objects.js';
import { settleDeadMigration } from './pool-repair.js';
import { ZsPool, type LockMode } from './pool.js';
import { newZspageLocked } from './zspage-alloc.js';
import { P_CPUS, P_ZS_HIGH } from './pool-layout.js';
import { CL_LOCK, CL_WORDS, ZD_WORDS, ZD_CLASS } from './zspage.js';

/** A CPU slot no thread holds: a record there is what a dead thread left. */
const DEAD_CPU = MAX_CPUS - 1;

function filled(h: number, size: number): Uint8Array {
  const b = new Uint8Array(size);
  for (let k = 0; k < size; k++) b[k] = (h * 31 + k * 7) & 255;
  return b;
}

function populate(pool: ZsPool, n: number): Map<number, number> {
  const live = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const size = 16 + (((i * 2654435761) >>> 0) % 3000);
    const h = pool.malloc(size);
    pool.write(h, filled(h, size));
    live.set(h, size);
  }
  return live;
}

function expectIntact(pool: ZsPool, live: Map<number, number>): void {
  const out = new Uint8Array(PAGE_SIZE);
  for (const [h, size] of live) {
    expect(pool.read(h, out)).toBe(size);
    expect(Buffer.from(out.subarray(0, size)).equals(Buffer.from(filled(h, size)))).toBe(true);
  }
}

function record(pool: ZsPool, op: number, a: number, b = 0, c = 0, phase = 0): void {
  const at = intentBase(DEAD_CPU) + INTENT_POOL;
  pool.intent[at + IN_A] = a;
  pool.intent[at + IN_B] = b;
  pool.intent[at + IN_C] = c;
  pool.intent[at + IN_PHASE] = phase;
  pool.intent[at + IN_OP] = op;
}

/** A zspage frame (the first frame of a non-huge zspage) and its zspage. */
function someZspageFrame(pool: ZsPool, huge: boolean): { pfn: number; zs: number } {
  const fd = pool.phys.fd;
  for (let pfn = 0; pfn < pool.phys.presentFrames; pfn++) {
    const f = fd[pfn * FD_WORDS + FD_FLAGS]!;
    if ((f & PG_ZSPAGE) !== 0 && ((f & PG_HUGE) !== 0) === huge) return { pfn, zs: fd[pfn * FD_WORDS + FD_ZSPAGE]! };
  }
  throw new Error('no zspage frame');
}

describe.each(['class', 'pool'] as LockMode[])('repair after a thread died mid-update (lockMode %s)', (lockMode) => {
  it('a malloc killed between taking the object and listing its new zspage: the zspage is listed, the counts recounted', () => {
    const pool = ZsPool.create({ maxBytes: 8 << 20, lockMode });
    const live = populate(pool, 300);
    const size = 3000;
    const c = pool.classIndexFor(size);
    const zs = newZspageLocked(pool, c); // counted, movable, malloc lock held
    const h = pool.handles.alloc();
    const loc = objMalloc(pool, zs, c, h, size, true);
    expect(loc).toBeGreaterThan(0);
    pool.lock.mallocUnlock(c); // the lock a dead thread held is taken over; fixFullness never ran
    pool.write(h, filled(h, size));
    live.set(h, size);
    expect(() => pool.verify()).toThrow();
    expect(pool.repairStructures()).toMatch(/rebuilt the allocator state/);
    pool.verify();
    expectIntact(pool, live);
    expect(pool.stats().objUsed).toBe(live.size);
  });

  it('a free killed after claiming the handle, before freeing the object: the object is freed', () => {
    const pool = ZsPool.create({ maxBytes: 8 << 20, lockMode });
    const live = populate(pool, 300);
    const [victim] = live.keys();
    pool.handles.words[victim!] = -1; // claimed by the free, the object untouched
    live.delete(victim!);
    expect(() => pool.verify()).toThrow(/does not point back/);
    pool.repairStructures();
    pool.verify();
    expectIntact(pool, live);
    expect(pool.stats().objUsed).toBe(live.size);
  });

  it('a zspage build killed before the zspage was movable: its frames go back to the buddy allocator', () => {
    const pool = ZsPool.create({ maxBytes: 8 << 20, lockMode });
    const live = populate(pool, 50);
    const free0 = pool.phys.freePages();
    const id = pool.ctl[P_ZS_HIGH]!; // a descriptor id no zspage uses yet
    const frames = new Int32Array(4);
    expect(pool.phys.allocFrames(frames, 4, id)).toBe(true);
    record(pool, OP_BUILD, id);
    expect(pool.phys.freePages()).toBe(free0 - 4);
    expect(pool.repairStructures()).toMatch(/4 frames reclaimed/);
    expect(pool.phys.freePages()).toBe(free0);
    pool.verify();
    expectIntact(pool, live);
    expect(pool.repairStructures()).toBe(''); // the record was consumed
  });

  for (const huge of [false, true]) {
    it(`a frame migration killed after its copy (${huge ? 'huge' : 'normal'} zspage): rolled forward, handles follow`, () => {
      const pool = ZsPool.create({ maxBytes: 8 << 20, lockMode });
      const live = populate(pool, 400);
      for (let i = 0; i < 5; i++) {
        const h = pool.malloc(PAGE_SIZE);
        pool.write(h, filled(h, PAGE_SIZE));
        live.set(h, PAGE_SIZE);
      }
      const { pfn, zs } = someZspageFrame(pool, huge);
      const target = pool.phys.allocBlock(0, true);
      pool.phys.ensure(Math.max(pfn, target));
      pool.phys.copyFrame(target, pfn);
      record(pool, OP_MIGRATE, pfn, target, zs, 1);
      expect(pool.repairStructures()).toMatch(/rolled forward/);
      pool.verify();
      expectIntact(pool, live);
      expect(pool.phys.fd[pfn * FD_WORDS + FD_FLAGS]! & PG_ZSPAGE).toBe(0);
      expect(pool.phys.fd[target * FD_WORDS + FD_ZSPAGE]).toBe(zs);
    });
  }

  it('a frame migration killed before its copy was complete: rolled back, the target frame freed', () => {
    const pool = ZsPool.create({ maxBytes: 8 << 20, lockMode });
    const live = populate(pool, 400);
    const free0 = pool.phys.freePages();
    const { pfn, zs } = someZspageFrame(pool, false);
    const target = pool.phys.allocBlock(0, true);
    record(pool, OP_MIGRATE, pfn, target, zs, 0);
    expect(pool.repairStructures()).toMatch(/rolled back/);
    expect(pool.phys.freePages()).toBe(free0);
    expect(pool.zd[zs * ZD_WORDS + ZD_CLASS]).toBeGreaterThanOrEqual(0);
    pool.verify();
    expectIntact(pool, live);
  });

  it('a frame freed by a thread that died before giving it back (leaked): reclaimed by rebuilding the free lists', () => {
    const pool = ZsPool.create({ maxBytes: 8 << 20, lockMode });
    const live = populate(pool, 200);
    const free0 = pool.phys.freePages();
    const pfn = pool.phys.allocBlock(0, true);
    pool.phys.fd[pfn * FD_WORDS + FD_FLAGS] = 0; // detached by a migration, never freed
    expect(() => pool.verify()).toThrow(/leaked/);
    pool.repairStructures();
    pool.verify();
    expect(pool.phys.freePages()).toBe(free0);
    expectIntact(pool, live);
  });

  it('a consistent pool is left exactly as it is', () => {
    const pool = ZsPool.create({ maxBytes: 8 << 20, lockMode });
    const live = populate(pool, 300);
    const before = pool.classesText();
    expect(pool.repairStructures()).toBe('');
    expect(pool.classesText()).toBe(before);
    expectIntact(pool, live);
  });
});

describe('a lock taken over from a dead owner whose CPU slot a new thread has claimed since', () => {
  it("leaves the new thread's migration record alone (only the dead generation's record is settled)", () => {
    const pool = ZsPool.create({ maxBytes: 8 << 20, lockMode: 'class' });
    const live = populate(pool, 200);
    const { pfn, zs } = someZspageFrame(pool, false);
    const c = pool.zd[zs * ZD_WORDS + ZD_CLASS]!;
    const slot = P_CPUS + DEAD_CPU * CPU_SLOT_WORDS;
    // the slot's generation 4 died holding class c's mutex; generation 5 claimed the
    // slot since (no record was left) and is now migrating a frame of its own
    Atomics.store(pool.ctl, slot + CPU_GEN, 5);
    Atomics.store(pool.ctl, slot + CPU_STATE, CPU_ALIVE);
    record(pool, OP_MIGRATE, pfn, 0, zs, 0);
    Atomics.store(pool.cls, c * CL_WORDS + CL_LOCK, ownerTag(DEAD_CPU, 4) | 1); // held
    const size = [...live.values()].find((s) => pool.classIndexFor(s) === c)!;
    const h = pool.malloc(size); // waits, sees the dead owner, takes the mutex over
    pool.free(h);
    const at = intentBase(DEAD_CPU) + INTENT_POOL;
    expect(pool.intent[at + IN_OP]).toBe(OP_MIGRATE);
    expect(pool.intent[at + IN_SETTLER]).toBe(0);
    expect(pool.migrationStats().settledAtTakeover).toBe(0);
    // the live thread finishes (here: it never started moving) and goes away
    pool.intent.fill(0, at, at + INTENT_PART_WORDS);
    Atomics.store(pool.ctl, slot + CPU_STATE, CPU_FREE);
    pool.verify();
    expectIntact(pool, live);
  });
});

describe('a settle at a lock takeover whose roll fails', () => {
  it('gives its claim back, so the next thread to take over another of the dead locks is not left waiting', () => {
    const pool = ZsPool.create({ maxBytes: 8 << 20, lockMode: 'class' });
    const slot = P_CPUS + DEAD_CPU * CPU_SLOT_WORDS;
    Atomics.store(pool.ctl, slot + CPU_GEN, 4);
    Atomics.store(pool.ctl, slot + CPU_STATE, CPU_DEAD);
    record(pool, OP_MIGRATE, 1, 2, 1, 1);
    const fail = vi.spyOn(pool.phys, 'refresh').mockImplementation(() => {
      throw new Error('injected: the roll fails');
    });
    const at = intentBase(DEAD_CPU) + INTENT_POOL;
    const live = (): boolean => false; // both settlers below are live threads
    expect(settleDeadMigration(pool, DEAD_CPU, 4, ownerTag(7, 1), live)).toBe(false);
    expect(pool.intent[at + IN_SETTLER]).toBe(0);
    expect(pool.intent[at + IN_OP]).toBe(OP_MIGRATE); // left for the check after the death
    expect(settleDeadMigration(pool, DEAD_CPU, 4, ownerTag(8, 1), live)).toBe(false);
    expect(pool.intent[at + IN_SETTLER]).toBe(0);
    expect(fail).toHaveBeenCalledTimes(2);
    fail.mockRestore();
  });
});
