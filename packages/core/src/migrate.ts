// Page migration of zspage frames (movable non-LRU pages) and the frame compactor
// (kcompactd). A zspage frame can be isolated (still part of a zspage? then mark
// it isolated), migrated (copy to a new frame, rewrite the handles of the objects
// that start in it, relink the chain, carry first-object offset and a huge
// object's handle) or put back. Migration never waits for readers: when the
// zspage is mapped or being read, it fails with EBUSY and the frame is retried later.
//
// A zspage freed while one of its frames is isolated leaves that frame as an
// orphan (PG_ISOLATED without PG_ZSPAGE); migrate or putback then frees it.
//
// Locks: pool lock (write) -> class lock -> zspage lock (write, trylock) -> zone lock.

import { PAGE_SIZE } from './constants.js';

import {
  P_KC_FAIL,
  P_KC_RUNS,
  P_KC_SUCCESS,
  P_MIGRATED,
  P_MIG_EBUSY,
  P_MIG_ENOMEM,
  P_MIG_GONE,
} from './pool-layout.js';

import { entryOf } from './percpu-cache.js';

import {
  RESERVED_HEADER,
  ZD_CLASS,
  ZD_FIRST,
  ZD_ISOLATED,
  ZD_WORDS,
  zspageWriteTrylock,
  zspageWriteUnlock,
} from './zspage.js';
import type { HandleTable } from './handles.js';
import type { PoolLockPolicy } from './lock-policy.js';
import { FP_MIGRATE_COPIED, FP_MIGRATE_HANDLE, type LockContext } from './locks.js';
import type { PhysMem } from './phys-mem.js';
import type { SizeClassTable } from './size-class.js';

import { SITE_FRAME_MIGRATION } from './lock-classes.js';
import {
  PG_BUDDY,
  PG_HUGE,
  PG_ISOLATED,
  PG_ZSPAGE,
  getFirstObjOffset,
  getFlags,
  getNextPfn,
  getPagePrivate,
  getZspageOf,
  setFirstObjOffset,
  setFlags,
  setNextPfn,
  setPagePrivate,
  setZspageOf,
} from './page-desc.js';
import { locationToObj } from './location.js';
import { IN_A, IN_B, IN_C, IN_OP, IN_PHASE, OP_MIGRATE } from './intent-log.js';

/** What migration works on: memory, the zspages, the handles, the locks and the counters. */
export interface MigrationSpace {
  readonly phys: PhysMem;
  readonly zd: Int32Array;
  readonly table: SizeClassTable;
  readonly handles: HandleTable;
  readonly locks: LockContext;
  readonly lock: PoolLockPolicy;
  readonly ctl: Int32Array;
  /** The per-CPU caches' words (null without caches): a reserved object's magazine entry moves with it. */
  readonly pcpWords: Int32Array | null;
  /** The intent records (intent-log.ts) and this CPU's first word in them. */
  readonly intent: Int32Array;
  readonly intentAt: number;
}

export const MIGRATE_OK = 0;
export const MIGRATE_EBUSY = 1;
export const MIGRATE_ENOMEM = 2;
export const MIGRATE_GONE = 3;

/** Is the frame movable right now (a zspage frame not already isolated)? Unlocked hint. */
export function isMovable(s: MigrationSpace, pfn: number): boolean {
  const f = getFlags(s.phys.fd, pfn);
  return (f & PG_ZSPAGE) !== 0 && (f & PG_ISOLATED) === 0;
}

/**
 * Takes the pool lock (write) and the class lock of the zspage that owns `pfn`,
 * re-checking ownership once the class lock is held (a free running under the
 * class lock alone may have released the zspage meanwhile). Returns the zspage
 * id with both locks held, or 0 with only the pool lock held when the frame is
 * no longer part of a zspage.
 */
function lockFrameOwner(s: MigrationSpace, pfn: number): number {
  const fd = s.phys.fd;
  s.lock.poolWriteLock(SITE_FRAME_MIGRATION);
  for (;;) {
    if ((getFlags(fd, pfn) & PG_ZSPAGE) === 0) return 0;
    const zs = getZspageOf(fd, pfn);
    const c = s.zd[zs * ZD_WORDS + ZD_CLASS]!;
    s.lock.classLock(c, SITE_FRAME_MIGRATION);
    if ((getFlags(fd, pfn) & PG_ZSPAGE) !== 0 && getZspageOf(fd, pfn) === zs && s.zd[zs * ZD_WORDS + ZD_CLASS] === c)
      return zs;
    s.lock.classUnlock(c);
  }
}

function unlockFrameOwner(s: MigrationSpace, zs: number): void {
  if (zs !== 0) s.lock.classUnlock(s.zd[zs * ZD_WORDS + ZD_CLASS]!);
  s.lock.poolWriteUnlock();
}

/** Frees a frame left isolated by a zspage that died meanwhile (pool lock held). */
function takeOrphan(s: MigrationSpace, pfn: number): boolean {
  const fd = s.phys.fd;
  if (getFlags(fd, pfn) !== PG_ISOLATED) return false;
  setFlags(fd, pfn, 0);
  return true;
}

/** isolate: marks a zspage frame isolated for migration. False if it is not (or no longer) one. */
export function isolateFrame(s: MigrationSpace, pfn: number): boolean {
  const fd = s.phys.fd;
  const zs = lockFrameOwner(s, pfn);
  let ok = false;
  if (zs !== 0 && (getFlags(fd, pfn) & PG_ISOLATED) === 0) {
    setFlags(fd, pfn, getFlags(fd, pfn) | PG_ISOLATED);
    s.zd[zs * ZD_WORDS + ZD_ISOLATED]!++;
    ok = true;
  }
  unlockFrameOwner(s, zs);
  return ok;
}

/** putback: a frame whose migration failed goes back to its zspage (or is freed if orphaned). */
export function putbackFrame(s: MigrationSpace, pfn: number): void {
  const fd = s.phys.fd;
  const zs = lockFrameOwner(s, pfn);
  let orphan = false;
  if (zs !== 0) {
    if ((getFlags(fd, pfn) & PG_ISOLATED) !== 0) {
      setFlags(fd, pfn, getFlags(fd, pfn) & ~PG_ISOLATED);
      s.zd[zs * ZD_WORDS + ZD_ISOLATED]!--;
    }
  } else {
    orphan = takeOrphan(s, pfn);
  }
  unlockFrameOwner(s, zs);
  if (orphan) s.phys.freeBlock(pfn, 0);
}

/**
 * migrate: moves isolated frame `pfn` into frame `target` (taken off the free
 * lists by the caller, or -1 to take any free frame). On failure the caller still
 * owns `target` and the frame stays isolated (putback it).
 */
export function migrateFrame(s: MigrationSpace, pfn: number, target: number): number {
  const phys = s.phys;
  const fd = phys.fd;
  const zd = s.zd;
  const zs = lockFrameOwner(s, pfn);
  if (zs === 0) {
    // The zspage was freed while the frame was isolated: nothing to move.
    const orphan = takeOrphan(s, pfn);
    s.lock.poolWriteUnlock();
    if (orphan) phys.freeBlock(pfn, 0);
    Atomics.add(s.ctl, P_MIG_GONE, 1);
    return MIGRATE_GONE;
  }
  const z = zs * ZD_WORDS;
  const c = zd[z + ZD_CLASS]!;
  const locks = s.locks;
  if (!zspageWriteTrylock(locks, zd, zs, SITE_FRAME_MIGRATION)) {
    unlockFrameOwner(s, zs);
    Atomics.add(s.ctl, P_MIG_EBUSY, 1);
    return MIGRATE_EBUSY;
  }
  if (target < 0) {
    target = phys.allocBlock(0, true);
    if (target < 0) {
      zspageWriteUnlock(locks, zd, zs);
      unlockFrameOwner(s, zs);
      Atomics.add(s.ctl, P_MIG_ENOMEM, 1);
      return MIGRATE_ENOMEM;
    }
  }
  // killed from here on, the repair rolls the move back (copy incomplete) or forward
  const it = s.intent;
  const ia = s.intentAt;
  it[ia + IN_A] = pfn;
  it[ia + IN_B] = target;
  it[ia + IN_C] = zs;
  it[ia + IN_PHASE] = 0;
  it[ia + IN_OP] = OP_MIGRATE;
  // copy the whole frame (copyFrame makes sure this thread's views cover both frames)
  phys.copyFrame(target, pfn);
  it[ia + IN_PHASE] = 1;
  if (locks.faultAt === FP_MIGRATE_COPIED) locks.faultPoint();
  const flags = getFlags(fd, pfn);
  const f = flags & ~PG_ISOLATED;
  const priv = getPagePrivate(fd, pfn);
  const off0 = getFirstObjOffset(fd, pfn);
  const next = getNextPfn(fd, pfn);
  setFlags(fd, target, f);
  setZspageOf(fd, target, zs);
  setFirstObjOffset(fd, target, off0);
  setNextPfn(fd, target, next);
  setPagePrivate(fd, target, priv);
  // relink the chain
  let p = zd[z + ZD_FIRST]!;
  if (p === pfn) zd[z + ZD_FIRST] = target;
  else {
    for (let n = getNextPfn(fd, p); n !== pfn; n = getNextPfn(fd, p)) p = n;
    setNextPfn(fd, p, target);
  }
  // rewrite the handles of objects that start in this frame; only a handle that
  // names the object here moves (a compaction ghost, an object a dead compactor
  // left behind whose handle names its other copy, keeps its handle where it is)
  if ((f & PG_HUGE) !== 0) {
    if (priv !== 0 && s.handles.inRange(priv) && s.handles.words[priv] === locationToObj(pfn, 0))
      s.handles.words[priv] = locationToObj(target, 0);
  } else rewriteHandles(s, pfn, target, c, priv, off0);
  if ((flags & PG_ISOLATED) !== 0) zd[z + ZD_ISOLATED]!--;
  setFlags(fd, pfn, 0);
  setZspageOf(fd, pfn, 0);
  it[ia + IN_OP] = 0; // killed before the free below, the frame is reclaimed as leaked
  // only movers count migrations, and they hold the pool lock for writing: no atomic needed
  s.ctl[P_MIGRATED]!++;
  zspageWriteUnlock(locks, zd, zs);
  unlockFrameOwner(s, zs);
  phys.freeBlock(pfn, 0);
  return MIGRATE_OK;
}

/**
 * Points the handles of the objects that start in frame `pfn` (copied into
 * `target`, chain index `index`, first object at `off0`) at the copy, and a
 * reserved object's magazine entry. The objects are read from the copy; a
 * location names the offset in the frame, which the copy keeps, so only its frame
 * number changes. Objects end where the zspage's last object ends (the tail of
 * the last frame is waste): a multiplication per frame, no division.
 */
function rewriteHandles(s: MigrationSpace, pfn: number, target: number, c: number, index: number, off0: number): void {
  const size = s.table.size[c]!;
  const tail = s.table.objsPerZspage[c]! * size - index * PAGE_SIZE;
  const end = tail < PAGE_SIZE ? tail : PAGE_SIZE;
  const phys = s.phys;
  const words = phys.wordsOf(target);
  const at0 = phys.wordIndex(target, 0);
  const handles = s.handles;
  const locks = s.locks;
  for (let off = off0; off < end; off += size) {
    const a = at0 + (off >> 2);
    const w = words[a]!;
    if ((w & 1) === 0) continue;
    if (w === RESERVED_HEADER) {
      // reserved by a per-CPU cache (its owner is quiesced): move its magazine entry
      s.pcpWords![entryOf(words[a + 1]!, c)] = locationToObj(target, off);
      continue;
    }
    const h = w >>> 1;
    if (!handles.inRange(h))
      throw new Error(`migrate: object at offset ${off} of frame ${pfn} has handle ${h} out of range`);
    if (handles.words[h] !== locationToObj(pfn, off)) continue;
    handles.words[h] = locationToObj(target, off);
    if (locks.faultAt === FP_MIGRATE_HANDLE) locks.faultPoint();
  }
}

/**
 * Migrates one zspage frame to any free frame, isolating it for the duration of
 * one hold of the locks (the frame compactor isolates first and migrates later).
 */
export function migratePage(s: MigrationSpace, pfn: number): number {
  return migrateFrame(s, pfn, -1);
}

function hasFreeBlock(s: MigrationSpace, order: number): boolean {
  // the frames this CPU's migrations freed wait on its page list: back to the buddy lists, to merge
  s.phys.drainLocal();
  const info = s.phys.buddyinfo();
  for (let o = order; o < info.length; o++) if (info[o]! > 0) return true;
  return false;
}

export interface FrameCompactResult {
  migrated: number;
  failed: number;
  success: boolean;
}

/**
 * The frame compactor: a migration scanner walks down from the top of physical
 * memory, a free scanner walks up from the bottom; zspage frames found by the
 * first move into free frames found by the second, until a free block of `order`
 * appears or the scanners meet.
 */
export function compactFrames(s: MigrationSpace, order: number): FrameCompactResult {
  Atomics.add(s.ctl, P_KC_RUNS, 1);
  const phys = s.phys;
  const fd = phys.fd;
  let mig = phys.presentFrames - 1;
  let free = 0;
  let migrated = 0;
  let failed = 0;
  while (mig > free && !hasFreeBlock(s, order)) {
    while (mig > free && !isMovable(s, mig)) mig--;
    if (mig <= free) break;
    // free scanner: take the lowest free frame below the migration scanner
    let target = -1;
    phys.zoneLock();
    for (; free < mig; free++) {
      if ((getFlags(fd, free) & ~PG_BUDDY) === 0 && phys.isolateFreeFrameLocked(free)) {
        target = free++;
        break;
      }
    }
    phys.zoneUnlock();
    if (target < 0) break;
    let r = MIGRATE_GONE;
    if (isolateFrame(s, mig)) {
      r = migrateFrame(s, mig, target);
      if (r !== MIGRATE_OK && r !== MIGRATE_GONE) putbackFrame(s, mig);
    }
    if (r === MIGRATE_OK) migrated++;
    else {
      failed++;
      phys.freeBlock(target, 0);
    }
    mig--;
  }
  const success = hasFreeBlock(s, order);
  Atomics.add(s.ctl, success ? P_KC_SUCCESS : P_KC_FAIL, 1);
  return { migrated, failed, success };
}
