// zspage allocation: building a zspage of a class from order-0 frames (linked
// into a chain, every object on its free list, not movable until it is on a
// fullness list), releasing an empty one back to the buddy allocator, and the
// cache of zspage descriptor ids (a free list under its own lock, the kernel's
// zspage kmem_cache). Counts obj_allocated and pages_allocated.

import { PAGE_SIZE } from './constants.js';
import { LC_ZSCACHE, SITE_ZSPAGE_ID_ALLOC, SITE_ZSPAGE_ID_FREE } from './lock-classes.js';
import type { PoolLockPolicy } from './lock-policy.js';
import type { LockContext } from './locks.js';
import { type ClassLists, fixFullness, listRemove } from './fullness.js';
import { type ObjectSpace, initFreeObjects } from './objects.js';
import {
  PG_HUGE,
  PG_NEW,
  PG_ZSPAGE,
  getFlags,
  getNextPfn,
  orphanIfIsolated,
  setFirstObjOffset,
  setFlags,
  setNextPfn,
  setPagePrivate,
  setZspageOf,
} from './page-desc.js';
import { P_PAGES_ALLOCATED, P_ZS_FREE_HEAD, P_ZS_HIGH, P_ZS_LOCK } from './pool-layout.js';
import {
  CL_OBJ_ALLOCATED,
  CL_WORDS,
  ZD_CLASS,
  ZD_FG,
  ZD_FIRST,
  ZD_FREEOBJ,
  ZD_FREE_NEXT,
  ZD_HUGE_SIZE,
  ZD_INUSE,
  ZD_ISOLATED,
  ZD_NEXT,
  ZD_NRPAGES,
  ZD_PREV,
  ZD_STATE,
  ZD_WORDS,
  ZS_STATE_FREE,
  ZS_STATE_LIVE,
} from './zspage.js';
import { IN_A, IN_OP, OP_BUILD } from './intent-log.js';

/** What building and releasing zspages needs. */
export interface ZspageSpace extends ObjectSpace {
  readonly ctl: Int32Array;
  readonly cls: Int32Array;
  readonly locks: LockContext;
  readonly lock: PoolLockPolicy;
  readonly maxFrames: number;
  /** Per-thread scratch for a zspage's frame numbers (allocated and freed as one batch). */
  readonly chainScratch: Int32Array;
  /** The intent records (intent-log.ts) and this CPU's first word in them. */
  readonly intent: Int32Array;
  readonly intentAt: number;
}

function zspageIdAlloc(s: ZspageSpace): number {
  const ctl = s.ctl;
  s.locks.mutexLock(ctl, P_ZS_LOCK, LC_ZSCACHE, SITE_ZSPAGE_ID_ALLOC);
  let id = ctl[P_ZS_FREE_HEAD]!;
  if (id !== 0) ctl[P_ZS_FREE_HEAD] = s.zd[id * ZD_WORDS + ZD_FREE_NEXT]!;
  else if (ctl[P_ZS_HIGH]! <= s.maxFrames) id = ctl[P_ZS_HIGH]!++;
  s.locks.mutexUnlock(ctl, P_ZS_LOCK);
  return id;
}

/** Gives a zspage descriptor back to the descriptor cache. */
export function zspageIdFree(s: ZspageSpace, id: number): void {
  const ctl = s.ctl;
  s.locks.mutexLock(ctl, P_ZS_LOCK, LC_ZSCACHE, SITE_ZSPAGE_ID_FREE);
  s.zd[id * ZD_WORDS + ZD_STATE] = ZS_STATE_FREE;
  s.zd[id * ZD_WORDS + ZD_FREE_NEXT] = ctl[P_ZS_FREE_HEAD]!;
  ctl[P_ZS_FREE_HEAD] = id;
  s.locks.mutexUnlock(ctl, P_ZS_LOCK);
}

/** Allocates and initialises a zspage of class c (no class lock needed); 0 on ENOMEM. */
function allocZspage(s: ZspageSpace, c: number): number {
  const id = zspageIdAlloc(s);
  if (id === 0) return 0;
  // killed from here until it is movable, the repair frees its frames (pool-repair.ts)
  s.intent[s.intentAt + IN_A] = id;
  s.intent[s.intentAt + IN_OP] = OP_BUILD;
  const k = s.table.pagesPerZspage[c]!;
  const size = s.table.size[c]!;
  const huge = s.table.huge[c] === 1;
  const fd = s.phys.fd;
  const pfns = s.chainScratch;
  if (!s.phys.allocFrames(pfns, k, id)) {
    s.intent[s.intentAt + IN_OP] = 0;
    zspageIdFree(s, id);
    return 0;
  }
  const first = pfns[0]!;
  for (let i = 0; i < k; i++) {
    const pfn = pfns[i]!;
    // Not movable until it is on a fullness list (the kernel's SetZsPageMovable).
    setFlags(fd, pfn, PG_NEW | (huge ? PG_HUGE : 0));
    setZspageOf(fd, pfn, id);
    setNextPfn(fd, pfn, -1);
    setPagePrivate(fd, pfn, huge ? 0 : i);
    // offset in this frame of the first object that starts in it
    const firstIdx = Math.ceil((i * PAGE_SIZE) / size);
    setFirstObjOffset(fd, pfn, firstIdx * size - i * PAGE_SIZE);
    if (i > 0) setNextPfn(fd, pfns[i - 1]!, pfn);
  }
  const zd = s.zd;
  const z = id * ZD_WORDS;
  zd[z + ZD_CLASS] = c;
  zd[z + ZD_INUSE] = 0;
  zd[z + ZD_FREEOBJ] = 0;
  zd[z + ZD_FIRST] = first;
  zd[z + ZD_FG] = -1;
  zd[z + ZD_PREV] = 0;
  zd[z + ZD_NEXT] = 0;
  zd[z + ZD_ISOLATED] = 0;
  zd[z + ZD_NRPAGES] = k;
  zd[z + ZD_HUGE_SIZE] = 0;
  zd[z + ZD_STATE] = ZS_STATE_LIVE;
  if (!huge) initFreeObjects(s, id, c);
  return id;
}

/** Makes a new zspage's frames movable; class lock held, as it goes on a list. */
function setMovable(s: ZspageSpace, zs: number): void {
  const fd = s.phys.fd;
  for (let pfn = s.zd[zs * ZD_WORDS + ZD_FIRST]!; pfn >= 0; pfn = getNextPfn(fd, pfn)) {
    setFlags(fd, pfn, (getFlags(fd, pfn) & ~PG_NEW) | PG_ZSPAGE);
  }
}

/**
 * A new zspage for class c (no lock held on entry), counted and movable, returned
 * with the malloc lock held; the caller takes an object from it and then puts it
 * on its list (fixFullness). 0 on ENOMEM (lock not held then).
 */
export function newZspageLocked(s: ZspageSpace, c: number): number {
  const zs = allocZspage(s, c);
  if (zs === 0) return 0;
  s.lock.mallocLock(c);
  setMovable(s, zs);
  s.intent[s.intentAt + IN_OP] = 0; // built: a normal zspage from here on
  s.cls[c * CL_WORDS + CL_OBJ_ALLOCATED]! += s.table.objsPerZspage[c]!;
  Atomics.add(s.ctl, P_PAGES_ALLOCATED, s.table.pagesPerZspage[c]!);
  return zs;
}

/**
 * Releases an empty zspage (class lock held, zspage off the lists): frames back
 * to the buddy allocator. A frame isolated for migration is left to the migrator,
 * which finds it no longer part of a zspage and frees it.
 */
export function freeZspage(s: ZspageSpace, c: number, zs: number): void {
  const zd = s.zd;
  const fd = s.phys.fd;
  const z = zs * ZD_WORDS;
  const k = zd[z + ZD_NRPAGES]!;
  const pfns = s.chainScratch;
  let n = 0;
  let pfn = zd[z + ZD_FIRST]!;
  while (pfn >= 0) {
    const next = getNextPfn(fd, pfn);
    if (!orphanIfIsolated(fd, pfn)) pfns[n++] = pfn;
    pfn = next;
  }
  s.phys.freeFrames(pfns, n);
  s.cls[c * CL_WORDS + CL_OBJ_ALLOCATED]! -= s.table.objsPerZspage[c]!;
  Atomics.sub(s.ctl, P_PAGES_ALLOCATED, k);
  zd[z + ZD_FIRST] = -1;
  zd[z + ZD_INUSE] = 0;
  zd[z + ZD_ISOLATED] = 0;
  zspageIdFree(s, zs);
}

/**
 * After zspage zs lost objects (class lock held): puts it on the list its in-use
 * count says, or frees it when it is empty. True when it was freed.
 */
export function putbackOrFree(s: ZspageSpace & ClassLists, c: number, zs: number): boolean {
  if (fixFullness(s, c, zs) !== 0) return false;
  freeEmptyZspage(s, c, zs);
  return true;
}

/** Takes an empty zspage (group 0) off its list and frees it (class lock held). */
export function freeEmptyZspage(s: ZspageSpace & ClassLists, c: number, zs: number): void {
  listRemove(s, c, zs);
  freeZspage(s, c, zs);
}
