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

// Module-local copies of the constants the code below uses: the engine folds a
// module's own constants into its compiled code, but loads and checks an exported or
// imported one at every use (docs/design.md, "The shared-memory model"). On a
// frame's migration that was about a seventh of its time.
const OK = MIGRATE_OK;
const EBUSY = MIGRATE_EBUSY;
const ENOMEM = MIGRATE_ENOMEM;
const GONE = MIGRATE_GONE;
const PAGE = PAGE_SIZE;
const Z_WORDS = ZD_WORDS;
const Z_CLASS = ZD_CLASS;
const Z_FIRST = ZD_FIRST;
const Z_ISOLATED = ZD_ISOLATED;
const RESERVED = RESERVED_HEADER;
const ZSPAGE = PG_ZSPAGE;
const ISOLATED = PG_ISOLATED;
const HUGE = PG_HUGE;
const SITE = SITE_FRAME_MIGRATION;
const FAULT_COPIED = FP_MIGRATE_COPIED;
const FAULT_HANDLE = FP_MIGRATE_HANDLE;
const MIGRATED = P_MIGRATED;
const REC_FRAME = IN_A;
const REC_TARGET = IN_B;
const REC_ZSPAGE = IN_C;
const REC_OP = IN_OP;
const REC_PHASE = IN_PHASE;
const MIGRATING = OP_MIGRATE;

/** Is the frame movable right now (a zspage frame not already isolated)? Unlocked hint. */
export function isMovable(s: MigrationSpace, pfn: number): boolean {
  const f = getFlags(s.phys.fd, pfn);
  return (f & ZSPAGE) !== 0 && (f & ISOLATED) === 0;
}

/**
 * Takes the pool lock (write) and the class lock of the zspage that owns `pfn`,
 * re-checking ownership once the class lock is held (a free running under the
 * class lock alone may have released the zspage meanwhile). Returns the zspage
 * id with both locks held, or 0 with only the pool lock held when the frame is
 * no longer part of a zspage.
 */
function lockFrameOwner(s: MigrationSpace, pfn: number): number {
  s.lock.poolWriteLock(SITE);
  const zs = lockOwnerClass(s, pfn);
  // the retries out of line, so the loop is not compiled into every mover's path
  return zs >= 0 ? zs : lockFrameOwnerAgain(s, pfn);
}

/**
 * One try of lockFrameOwner (pool lock held): the zspage owning `pfn` with its class
 * lock taken, 0 when the frame is no zspage's, or -1 (no class lock held) when the
 * owner changed before its class lock was taken.
 */
function lockOwnerClass(s: MigrationSpace, pfn: number): number {
  const fd = s.phys.fd;
  if ((getFlags(fd, pfn) & ZSPAGE) === 0) return 0;
  const zs = getZspageOf(fd, pfn);
  const c = s.zd[zs * Z_WORDS + Z_CLASS]!;
  s.lock.classLock(c, SITE);
  if ((getFlags(fd, pfn) & ZSPAGE) !== 0 && getZspageOf(fd, pfn) === zs && s.zd[zs * Z_WORDS + Z_CLASS] === c)
    return zs;
  s.lock.classUnlock(c);
  return -1;
}

/** lockFrameOwner's retries: the owner changed before its class lock was taken. */
function lockFrameOwnerAgain(s: MigrationSpace, pfn: number): number {
  for (;;) {
    const zs = lockOwnerClass(s, pfn);
    if (zs >= 0) return zs;
  }
}

function unlockFrameOwner(s: MigrationSpace, zs: number): void {
  if (zs !== 0) s.lock.classUnlock(s.zd[zs * Z_WORDS + Z_CLASS]!);
  s.lock.poolWriteUnlock();
}

/** Frees a frame left isolated by a zspage that died meanwhile (pool lock held). */
function takeOrphan(s: MigrationSpace, pfn: number): boolean {
  const fd = s.phys.fd;
  if (getFlags(fd, pfn) !== ISOLATED) return false;
  setFlags(fd, pfn, 0);
  return true;
}

/** isolate: marks a zspage frame isolated for migration. False if it is not (or no longer) one. */
export function isolateFrame(s: MigrationSpace, pfn: number): boolean {
  const fd = s.phys.fd;
  const zs = lockFrameOwner(s, pfn);
  let ok = false;
  if (zs !== 0 && (getFlags(fd, pfn) & ISOLATED) === 0) {
    setFlags(fd, pfn, getFlags(fd, pfn) | ISOLATED);
    s.zd[zs * Z_WORDS + Z_ISOLATED]!++;
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
    if ((getFlags(fd, pfn) & ISOLATED) !== 0) {
      setFlags(fd, pfn, getFlags(fd, pfn) & ~ISOLATED);
      s.zd[zs * Z_WORDS + Z_ISOLATED]!--;
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
  // Runs once per frame: the failures are out of line, so what runs stays short.
  const zs = lockFrameOwner(s, pfn);
  if (zs === 0) return migrateGone(s, pfn);
  const locks = s.locks;
  const zd = s.zd;
  if (!zspageWriteTrylock(locks, zd, zs, SITE)) return migrateFailed(s, zs, false);
  const phys = s.phys;
  if (target < 0) {
    target = phys.allocFrame();
    if (target < 0) return migrateFailed(s, zs, true);
  }
  moveFrame(s, pfn, target, zs);
  zspageWriteUnlock(locks, zd, zs);
  unlockFrameOwner(s, zs);
  phys.freeFrame(pfn);
  return OK;
}

/** The zspage was freed while the frame was isolated: nothing to move (pool lock held, dropped here). */
function migrateGone(s: MigrationSpace, pfn: number): number {
  const orphan = takeOrphan(s, pfn);
  s.lock.poolWriteUnlock();
  if (orphan) s.phys.freeBlock(pfn, 0);
  Atomics.add(s.ctl, P_MIG_GONE, 1);
  return GONE;
}

/** The zspage is busy (EBUSY), or no frame is free (ENOMEM, zspage lock held): drops the locks. */
function migrateFailed(s: MigrationSpace, zs: number, noMemory: boolean): number {
  if (noMemory) zspageWriteUnlock(s.locks, s.zd, zs);
  unlockFrameOwner(s, zs);
  Atomics.add(s.ctl, noMemory ? P_MIG_ENOMEM : P_MIG_EBUSY, 1);
  return noMemory ? ENOMEM : EBUSY;
}

/**
 * Moves frame `pfn` of zspage `zs` into frame `target`, every lock held: the copy,
 * the descriptor, the chain link, the handles of the objects that start in it.
 * The intent record brackets it, so the repair after a death mid-way rolls the
 * move back (copy incomplete) or forward.
 */
function moveFrame(s: MigrationSpace, pfn: number, target: number, zs: number): void {
  const phys = s.phys;
  const fd = phys.fd;
  const zd = s.zd;
  // read once: only this thread sets its fault point, never mid-move
  const fault = s.locks.faultAt;
  const it = s.intent;
  const ia = s.intentAt;
  it[ia + REC_FRAME] = pfn;
  it[ia + REC_TARGET] = target;
  it[ia + REC_ZSPAGE] = zs;
  it[ia + REC_PHASE] = 0;
  it[ia + REC_OP] = MIGRATING;
  // copy the whole frame (copyFrame makes sure this thread's views cover both frames)
  phys.copyFrame(target, pfn);
  it[ia + REC_PHASE] = 1;
  if (fault === FAULT_COPIED) s.locks.faultPoint();
  const flags = getFlags(fd, pfn);
  const priv = getPagePrivate(fd, pfn);
  const off0 = getFirstObjOffset(fd, pfn);
  setFlags(fd, target, flags & ~ISOLATED);
  setZspageOf(fd, target, zs);
  setFirstObjOffset(fd, target, off0);
  setNextPfn(fd, target, getNextPfn(fd, pfn));
  setPagePrivate(fd, target, priv);
  // relink the chain
  const z = zs * Z_WORDS;
  let p = zd[z + Z_FIRST]!;
  if (p === pfn) zd[z + Z_FIRST] = target;
  else {
    for (let n = getNextPfn(fd, p); n !== pfn; n = getNextPfn(fd, p)) p = n;
    setNextPfn(fd, p, target);
  }
  rewriteHandles(s, pfn, target, zd[z + Z_CLASS]!, flags, priv, off0, fault === FAULT_HANDLE);
  if ((flags & ISOLATED) !== 0) zd[z + Z_ISOLATED]!--;
  setFlags(fd, pfn, 0);
  setZspageOf(fd, pfn, 0);
  it[ia + REC_OP] = 0; // killed before the free, the frame is reclaimed as leaked
  // only movers count migrations, and they hold the pool lock for writing: no atomic needed
  s.ctl[MIGRATED]!++;
}

/**
 * Points the handles of the objects that start in frame `pfn` (copied into
 * `target`; its flags, page_private and first object's offset given) at the copy,
 * and a reserved object's magazine entry. Only a handle that names the object here
 * moves: a compaction ghost (an object a dead compactor left behind, whose handle
 * names its other copy) keeps its handle where it is. The objects are read from
 * the copy; a location names the offset in the frame, which the copy keeps, so
 * only its frame number changes. Objects end where the zspage's last object ends
 * (the tail of the last frame is waste): a multiplication per frame, no division.
 */
function rewriteHandles(
  s: MigrationSpace,
  pfn: number,
  target: number,
  c: number,
  flags: number,
  priv: number,
  off0: number,
  faultEach: boolean,
): void {
  const handles = s.handles;
  if ((flags & HUGE) !== 0) {
    // one object, its handle in page_private
    if (priv !== 0 && handles.inRange(priv) && handles.words[priv] === locationToObj(pfn, 0))
      handles.words[priv] = locationToObj(target, 0);
    return;
  }
  const size = s.table.size[c]!;
  // page_private of any other zspage frame: its index in the chain
  const tail = s.table.objsPerZspage[c]! * size - priv * PAGE;
  const end = Math.min(tail, PAGE);
  const phys = s.phys;
  const words = phys.wordsOf(target);
  const at0 = phys.wordIndex(target, 0);
  for (let off = off0; off < end; off += size) {
    const a = at0 + (off >> 2);
    const w = words[a]!;
    if ((w & 1) === 0) continue;
    if (w === RESERVED) {
      // reserved by a per-CPU cache (its owner is quiesced): move its magazine entry
      s.pcpWords![entryOf(words[a + 1]!, c)] = locationToObj(target, off);
      continue;
    }
    const h = w >>> 1;
    if (!handles.inRange(h))
      throw new Error(`migrate: object at offset ${off} of frame ${pfn} has handle ${h} out of range`);
    if (handles.words[h] !== locationToObj(pfn, off)) continue;
    handles.words[h] = locationToObj(target, off);
    if (faultEach) s.locks.faultPoint();
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
    let r = GONE;
    if (isolateFrame(s, mig)) {
      r = migrateFrame(s, mig, target);
      if (r !== OK && r !== GONE) putbackFrame(s, mig);
    }
    if (r === OK) migrated++;
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
