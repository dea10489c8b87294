import { describe, expect, it } from 'vitest';
import { LC_HANDLE, LOCK_ORDER, SITE_TEST, SLOT_LOCK, lockRank } from './lock-classes.js';
import { LockOrderError } from './locks.js';
import { ZsPool } from './pool.js';

describe('lockdep: the lock order of lock-classes.ts checked at run time', () => {
  it('ranks come from the one list: slot lock outermost, then pool, class, zspage, innermost', () => {
    expect(LOCK_ORDER[0]).toEqual([SLOT_LOCK]);
    expect(lockRank(SLOT_LOCK)).toBeLessThan(lockRank('&pool->lock'));
    expect(lockRank('&pool->lock')).toBeLessThan(lockRank('&class->lock'));
    expect(lockRank('&class->lock')).toBeLessThan(lockRank('&zspage->lock'));
    expect(lockRank('&zspage->lock')).toBeLessThan(lockRank('&zone->lock'));
    expect(lockRank('not a lock')).toBe(0);
  });

  it('a deliberate inversion throws, naming both locks and both call sites, and leaves the lock free', () => {
    const pool = ZsPool.create({ maxBytes: 4 << 20, lockdep: true });
    pool.phys.zoneLock(SITE_TEST);
    let err: unknown;
    try {
      pool.classLock(3, 1 /* malloc */);
    } catch (e) {
      err = e;
    }
    pool.phys.zoneUnlock();
    expect(err).toBeInstanceOf(LockOrderError);
    const msg = (err as Error).message;
    expect(msg).toContain('&class->lock');
    expect(msg).toContain('[malloc]');
    expect(msg).toContain('&zone->lock');
    expect(msg).toContain('[test]');
    // the check runs before acquiring: the class lock was never taken
    expect(pool.locks.heldDepth).toBe(0);
    pool.classLock(3);
    pool.classUnlock(3);
  });

  it('the zram slot lock is outermost: taking it under the pool lock throws, the other way round does not', () => {
    const pool = ZsPool.create({ maxBytes: 4 << 20, lockdep: true });
    const slotCls = pool.lockClassId(SLOT_LOCK);
    const words = new Int32Array(new SharedArrayBuffer(8));
    pool.bitLock(words, 1, 1, slotCls, SITE_TEST);
    pool.poolReadLock(SITE_TEST);
    pool.poolReadUnlock();
    pool.bitUnlock(words, 1, 1);
    pool.poolWriteLock(SITE_TEST);
    expect(() => pool.bitLock(words, 1, 1, slotCls, SITE_TEST)).toThrow(/zram->table\[index\]\.lock.*&pool->lock/);
    pool.poolWriteUnlock();
    expect(words[1]).toBe(0);
  });

  it('innermost locks are taken alone; nesting one class (class locks in order) is allowed', () => {
    const pool = ZsPool.create({ maxBytes: 4 << 20, lockdep: true });
    pool.lockAll();
    pool.unlockAll();
    pool.phys.zoneLock();
    // the handle cache lock under the zone lock: same rank, another class
    const word = new Int32Array(new SharedArrayBuffer(4));
    expect(() => pool.locks.mutexLock(word, 0, LC_HANDLE, SITE_TEST)).toThrow(LockOrderError);
    pool.phys.zoneUnlock();
    expect(word[0]).toBe(0);
  });

  it('without lockdep the same inversion is not checked (lockdep is opt-in)', () => {
    const pool = ZsPool.create({ maxBytes: 4 << 20 });
    pool.phys.zoneLock();
    pool.classLock(3);
    pool.classUnlock(3);
    pool.phys.zoneUnlock();
    expect(pool.locks.lockdep).toBe(false);
  });

  it('a workout of malloc, access, free and compaction passes lockdep in both lock modes', () => {
    for (const lockMode of ['class', 'pool'] as const) {
      const pool = ZsPool.create({ maxBytes: 16 << 20, lockMode, lockdep: true });
      const hs: number[] = [];
      const buf = new Uint8Array(3000).fill(7);
      for (let i = 0; i < 3000; i++) {
        const h = pool.malloc(1 + ((i * 97) % 3000));
        pool.write(h, buf.subarray(0, 1 + ((i * 97) % 3000)));
        hs.push(h);
      }
      for (let i = 0; i < hs.length; i += 2) pool.free(hs[i]!);
      pool.compact();
      for (let i = 1; i < hs.length; i += 2) pool.read(hs[i]!, new Uint8Array(4096));
      pool.verify();
      expect(pool.locks.heldDepth).toBe(0);
    }
  });
});
