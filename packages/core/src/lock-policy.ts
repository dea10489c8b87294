// The pool's lock policy, chosen once when a thread's pool object is built:
// class mode (kernel 4.x-6.1 and 6.11+: a pool rwlock plus one mutex per size
// class; malloc and free take only the class lock) or pool mode (6.2-6.10: one
// pool mutex stands for the rwlock and every class lock). Owns which lock word
// each operation takes, free's way of locking the object it frees, and the
// per-CPU caches' quiesce that comes with the pool lock for writing. The order
// of the locks is written once, in lock-classes.ts.
//
// Why free needs no pool lock (class mode). An object's location (its handle word,
// its frame's zspage, the zspage's class, the header naming the handle) is written
// only by malloc and free of that object, and by compaction and migration; all of
// them hold the object's class lock while they write it (compaction and migration
// also hold the pool lock for writing). free reads the location without locks,
// which may give a stale answer, takes the class lock the answer names, and then
// checks again under that lock that the handle word still holds the location, the
// frame still belongs to the zspage, the zspage is still of that class and the
// header still names the handle (the unlocked read is not trusted for anything
// but which lock to take). Any change to one of those after the check would
// need the class lock we hold, so the object cannot move or be freed under us. If
// the check fails (or the unlocked read names no class), the object moved, was
// freed, or never was: free drops the lock, resolves the handle under the pool
// read lock (movers out, so that answer is authoritative), returns EINVAL if it
// names no live object, and otherwise tries again with that location. Two racing
// frees of one handle are serialised by the class lock; with per-CPU caches,
// whose frees take no class lock, the handle word is claimed by compare-and-swap
// instead. So a free racing a move never reports a live handle as bad.

import { ZS_SIZE_CLASSES } from './constants.js';
import { LC_CLASS, LC_POOL, SITE_FREE, SITE_MALLOC, SITE_UNKNOWN } from './lock-classes.js';
import type { LockContext } from './locks.js';
import { objToOffset, objToPfn } from './location.js';
import { type HandleSpace, resolveHandle, zspageClass } from './objects.js';
import { PG_ZSPAGE, getFlags, getPagePrivate, getZspageOf } from './page-desc.js';
import { P_LOCK, P_POOL_MUTEX } from './pool-layout.js';
import { CL_LOCK, CL_WORDS, ZD_CLASS, ZD_STATE, ZD_WORDS, ZS_STATE_LIVE, encodeHeader } from './zspage.js';

// Module-local copies of the constants used below: the engine folds a module's
// own constants into its compiled code, but loads and checks an imported one at
// every use (docs/design.md).
const C_LOCK = CL_LOCK;
const C_WORDS = CL_WORDS;
const CLASS_LOCK_CLS = LC_CLASS;
const POOL_LOCK_CLS = LC_POOL;
const ZSPAGE_FRAME = PG_ZSPAGE;
const POOL_LOCK = P_LOCK;
const POOL_MUTEX = P_POOL_MUTEX;
const AT_FREE = SITE_FREE;
const AT_MALLOC = SITE_MALLOC;
const AT_UNKNOWN = SITE_UNKNOWN;
const Z_CLASS = ZD_CLASS;
const Z_STATE = ZD_STATE;
const Z_WORDS = ZD_WORDS;
const CLASSES = ZS_SIZE_CLASSES;
const LIVE = ZS_STATE_LIVE;

export type LockMode = 'class' | 'pool';

/** Whatever must be stopped while objects move (the per-CPU caches' gates, percpu-cache.ts). */
export interface MoverGate {
  quiesce(): void;
  unquiesce(): void;
}

/** What free's locking needs: resolving handles, and whether lock-free frees may race for a handle word. */
export interface FreeSpace extends HandleSpace {
  readonly pcpWords: Int32Array | null;
}

export interface PoolLockPolicy {
  readonly mode: LockMode;
  /** The pool lock for reading (class mode) or the pool mutex (pool mode). */
  poolReadLock(site?: number): void;
  poolReadUnlock(): void;
  /** The pool lock for writing (in pool mode it covers every class); stops the per-CPU caches' lock-free paths. */
  poolWriteLock(site?: number): void;
  poolWriteUnlock(): void;
  /** The class lock (class mode; in pool mode the pool mutex covers it, so nothing). */
  classLock(c: number, site?: number): void;
  classUnlock(c: number): void;
  /** The lock malloc takes: the class lock, or in pool mode the one pool lock. */
  mallocLock(c: number, site?: number): void;
  mallocUnlock(c: number): void;
  /** Does anyone wait for class c's lock (in pool mode, the pool mutex)? */
  classContended(c: number): boolean;
  /** Does anyone wait for the locks a compactor holds on class c? */
  compactionContended(c: number): boolean;
  /**
   * free's lock: takes the lock that covers the object `handle` names and claims
   * the handle word (sets it to -1). Returns the object's location, or -1 (nothing
   * held) when the handle names no live object.
   */
  lockForFree(s: FreeSpace, handle: number): number;
  /** Drops what lockForFree took (c: the object's class). */
  unlockAfterFree(c: number): void;
  /** The pool lock for writing, then every class lock of `classes` (ascending). */
  lockAllClasses(classes: readonly number[], site: number): void;
  unlockAllClasses(classes: readonly number[]): void;
}

/**
 * free's check under class lock c: the handle still names location loc, whose
 * frame is still in zspage zs, still of class c, with the handle in its header.
 * Then claims the handle word (compare-and-swap to -1), so only one free wins.
 */
function stillAt(s: FreeSpace, handle: number, loc: number, zs: number, c: number): boolean {
  const pfn = objToPfn(loc);
  const fd = s.phys.fd;
  if ((getFlags(fd, pfn) & ZSPAGE_FRAME) === 0 || getZspageOf(fd, pfn) !== zs) return false;
  s.phys.ensure(pfn); // another thread may have grown memory for this frame
  if (s.zd[zs * Z_WORDS + Z_CLASS] !== c || s.zd[zs * Z_WORDS + Z_STATE] !== LIVE) return false;
  if (s.table.huge[c] !== 0) {
    if (getPagePrivate(fd, pfn) !== handle) return false;
  } else {
    if (s.phys.wordsOf(pfn)[s.phys.wordIndex(pfn, objToOffset(loc))] !== encodeHeader(handle)) return false;
  }
  return claimHandle(s, handle, loc);
}

/**
 * Claims the handle word for this free (sets it to -1): false if it no longer
 * holds loc. With per-CPU caches a lock-free free, which takes no lock, may race
 * for the same handle, so the claim is then a compare-and-swap.
 */
function claimHandle(s: FreeSpace, handle: number, loc: number): boolean {
  if (s.pcpWords !== null) return s.handles.ops.cas(handle, loc, -1) === loc;
  if (s.handles.words[handle] !== loc) return false;
  s.handles.words[handle] = -1;
  return true;
}

/** Class mode: pool rwlock, one mutex per class. */
class ClassLocking implements PoolLockPolicy {
  readonly mode: LockMode = 'class';
  private readonly locks: LockContext;
  private readonly ctl: Int32Array;
  private readonly cls: Int32Array;
  private readonly gate: MoverGate | null;

  constructor(locks: LockContext, ctl: Int32Array, cls: Int32Array, gate: MoverGate | null) {
    this.locks = locks;
    this.ctl = ctl;
    this.cls = cls;
    this.gate = gate;
  }

  poolReadLock(site = AT_UNKNOWN): void {
    this.locks.readLock(this.ctl, POOL_LOCK, POOL_LOCK_CLS, site);
  }
  poolReadUnlock(): void {
    this.locks.readUnlock(this.ctl, POOL_LOCK);
  }
  poolWriteLock(site = AT_UNKNOWN): void {
    this.locks.writeLock(this.ctl, POOL_LOCK, POOL_LOCK_CLS, site);
    // no CPU may be inside a lock-free cache operation while objects move
    if (this.gate !== null) this.gate.quiesce();
  }
  poolWriteUnlock(): void {
    if (this.gate !== null) this.gate.unquiesce();
    this.locks.writeUnlock(this.ctl, POOL_LOCK);
  }
  classLock(c: number, site = AT_UNKNOWN): void {
    this.locks.mutexLock(this.cls, c * C_WORDS + C_LOCK, CLASS_LOCK_CLS, site);
  }
  classUnlock(c: number): void {
    this.locks.mutexUnlock(this.cls, c * C_WORDS + C_LOCK);
  }
  mallocLock(c: number, site = AT_MALLOC): void {
    this.locks.mutexLock(this.cls, c * C_WORDS + C_LOCK, CLASS_LOCK_CLS, site);
  }
  mallocUnlock(c: number): void {
    this.locks.mutexUnlock(this.cls, c * C_WORDS + C_LOCK);
  }
  classContended(c: number): boolean {
    return this.locks.mutexContended(this.cls, c * C_WORDS + C_LOCK);
  }
  compactionContended(c: number): boolean {
    return this.locks.rwContended(this.ctl, POOL_LOCK) || this.classContended(c);
  }
  lockForFree(s: FreeSpace, handle: number): number {
    // No pool lock: see the block at the top of this file. The unlocked look only
    // names the class lock to take; stillAt checks everything under that lock.
    if (!s.handles.inRange(handle)) return -1;
    let loc = s.handles.words[handle]!;
    for (;;) {
      if (loc >= 0) {
        const pfn = objToPfn(loc);
        if (pfn < s.maxFrames) {
          const zs = getZspageOf(s.phys.fd, pfn);
          const c = zspageClass(s.zd, zs);
          if (c >= 0 && c < CLASSES) {
            this.locks.mutexLock(this.cls, c * C_WORDS + C_LOCK, CLASS_LOCK_CLS, AT_FREE);
            if (stillAt(s, handle, loc, zs, c)) return loc;
            this.locks.mutexUnlock(this.cls, c * C_WORDS + C_LOCK);
          }
        }
      }
      // stale (the object moved, or a descriptor is being reused) or no object at
      // all: the authoritative answer, with movers out
      loc = this.resolveLocked(s, handle);
      if (loc < 0) return -1;
    }
  }
  /** Resolves under the pool read lock (kept out of line). */
  private resolveLocked(s: FreeSpace, handle: number): number {
    this.poolReadLock(AT_FREE);
    const loc = resolveHandle(s, handle);
    this.poolReadUnlock();
    return loc;
  }
  unlockAfterFree(c: number): void {
    this.locks.mutexUnlock(this.cls, c * C_WORDS + C_LOCK);
  }
  lockAllClasses(classes: readonly number[], site: number): void {
    this.poolWriteLock(site);
    for (const c of classes) this.classLock(c, site);
  }
  unlockAllClasses(classes: readonly number[]): void {
    for (const c of classes) this.classUnlock(c);
    this.poolWriteUnlock();
  }
}

/** Pool mode: one pool mutex for everything the rwlock and the class locks cover in class mode. */
class PoolLocking implements PoolLockPolicy {
  readonly mode: LockMode = 'pool';
  private readonly locks: LockContext;
  private readonly ctl: Int32Array;
  private readonly gate: MoverGate | null;

  constructor(locks: LockContext, ctl: Int32Array, gate: MoverGate | null) {
    this.locks = locks;
    this.ctl = ctl;
    this.gate = gate;
  }

  poolReadLock(site = AT_UNKNOWN): void {
    this.locks.mutexLock(this.ctl, POOL_MUTEX, POOL_LOCK_CLS, site);
  }
  poolReadUnlock(): void {
    this.locks.mutexUnlock(this.ctl, POOL_MUTEX);
  }
  poolWriteLock(site = AT_UNKNOWN): void {
    this.locks.mutexLock(this.ctl, POOL_MUTEX, POOL_LOCK_CLS, site);
    if (this.gate !== null) this.gate.quiesce();
  }
  poolWriteUnlock(): void {
    if (this.gate !== null) this.gate.unquiesce();
    this.locks.mutexUnlock(this.ctl, POOL_MUTEX);
  }
  classLock(_c: number, _site?: number): void {}
  classUnlock(_c: number): void {}
  mallocLock(_c: number, site = AT_MALLOC): void {
    this.locks.mutexLock(this.ctl, POOL_MUTEX, POOL_LOCK_CLS, site);
  }
  mallocUnlock(_c: number): void {
    this.locks.mutexUnlock(this.ctl, POOL_MUTEX);
  }
  classContended(_c: number): boolean {
    return this.locks.mutexContended(this.ctl, POOL_MUTEX);
  }
  compactionContended(c: number): boolean {
    return this.classContended(c);
  }
  lockForFree(s: FreeSpace, handle: number): number {
    this.locks.mutexLock(this.ctl, POOL_MUTEX, POOL_LOCK_CLS, AT_FREE);
    const loc = resolveHandle(s, handle);
    if (loc < 0 || !claimHandle(s, handle, loc)) {
      this.locks.mutexUnlock(this.ctl, POOL_MUTEX);
      return -1;
    }
    return loc;
  }
  unlockAfterFree(_c: number): void {
    this.locks.mutexUnlock(this.ctl, POOL_MUTEX);
  }
  lockAllClasses(_classes: readonly number[], site: number): void {
    this.poolWriteLock(site);
  }
  unlockAllClasses(_classes: readonly number[]): void {
    this.poolWriteUnlock();
  }
}

/** The policy for `mode`, over this thread's lock context and views of the pool's lock words. */
export function createLockPolicy(
  mode: LockMode,
  locks: LockContext,
  ctl: Int32Array,
  cls: Int32Array,
  gate: MoverGate | null,
): PoolLockPolicy {
  return mode === 'class' ? new ClassLocking(locks, ctl, cls, gate) : new PoolLocking(locks, ctl, gate);
}
