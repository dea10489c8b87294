// zspage descriptors and size-class state in shared memory, and the fullness
// groups. A zspage is a chain of order-0 frames holding objects of one class;
// its descriptor holds its rw lock, class, in-use count, free-object list head,
// first frame and its links on the class's fullness list. The zspage lock
// (readers: object access and mapping; writer: compaction and migration, by
// trylock only) is taken through the four functions here.

import { NR_FULLNESS_GROUPS, ZS_INUSE_RATIO_0, ZS_INUSE_RATIO_100 } from './constants.js';
import { LC_ZSPAGE, SITE_UNKNOWN } from './lock-classes.js';
import type { LockContext } from './locks.js';

// ---- zspage descriptor: Int32 fields
export const ZD_WORDS = 16;
export const ZD_LOCK = 0; // rwlock word (word+1: last writer)
export const ZD_CLASS = 2;
export const ZD_INUSE = 3;
export const ZD_FREEOBJ = 4; // first free object index, -1 when full
export const ZD_FIRST = 5; // first frame (pfn)
export const ZD_FG = 6; // fullness group, -1 while off the lists (isolated by compaction)
export const ZD_PREV = 7;
export const ZD_NEXT = 8;
export const ZD_ISOLATED = 9; // frames isolated for migration
export const ZD_STATE = 10; // 0 free descriptor, 1 live
export const ZD_NRPAGES = 11;
export const ZD_HUGE_SIZE = 12; // huge zspage: the size of its one object
export const ZD_FREE_NEXT = 13; // descriptor free list link

export const ZS_STATE_FREE = 0;
export const ZS_STATE_LIVE = 1;

// ---- size class state: Int32 fields per class
export const CL_WORDS = 32;
export const CL_LOCK = 0;
export const CL_HEAD = 2; // [12] list heads
export const CL_COUNT = CL_HEAD + NR_FULLNESS_GROUPS; // [12] zspages per group
export const CL_OBJ_ALLOCATED = CL_COUNT + NR_FULLNESS_GROUPS;
export const CL_OBJ_USED = CL_OBJ_ALLOCATED + 1;
export const CL_MOVED = CL_OBJ_USED + 1; // objects moved by compaction
export const CL_GROUPS = CL_MOVED + 1; // bit g set: fullness list g is not empty
export const CL_GHOSTS = CL_GROUPS + 1; // ghosts compaction freed (copies a killed compactor left)
// Float64 per class: bytes stored
export const CLF_WORDS = 1;

/**
 * The kernel's ratio-based group: 0, 10%..90% buckets, 99%, 100%. The kernel
 * takes the integer percentage 100*inuse/objs and then its tens; the floor of a
 * floor divided by 10 is the floor of 10*inuse/objs, so one integer division
 * gives the same group (the pool itself looks groups up in a FullnessTable).
 */
export function fullnessGroup(inuse: number, objs: number): number {
  if (inuse === 0) return ZS_INUSE_RATIO_0;
  if (inuse === objs) return ZS_INUSE_RATIO_100;
  return ((10 * inuse - ((10 * inuse) % objs)) / objs + 1) | 0;
}

/**
 * Every class's fullness group for every in-use count, precomputed: the group of
 * `inuse` objects in a zspage of class c is groups[base[c] + inuse]. No division
 * on the malloc/free path.
 */
export interface FullnessTable {
  readonly base: Int32Array;
  readonly groups: Uint8Array;
}

export function buildFullnessTable(objsPerZspage: Int32Array): FullnessTable {
  const base = new Int32Array(objsPerZspage.length);
  let n = 0;
  for (let c = 0; c < objsPerZspage.length; c++) {
    base[c] = n;
    n += objsPerZspage[c]! + 1;
  }
  const groups = new Uint8Array(n);
  for (let c = 0; c < objsPerZspage.length; c++) {
    const objs = objsPerZspage[c]!;
    for (let inuse = 0; inuse <= objs; inuse++) groups[base[c]! + inuse] = fullnessGroup(inuse, objs);
  }
  return { base, groups };
}

/** Free-chunk link word: (next + 1) << 1, tag bit 0 clear; next = -1 ends the list. */
export function encodeFreeLink(next: number): number {
  return (next + 1) << 1;
}
export function decodeFreeLink(word: number): number {
  return (word >>> 1) - 1;
}
/** Allocated-object header word: handle << 1 | 1 (the OBJ_ALLOCATED_TAG). */
export function encodeHeader(handle: number): number {
  return (handle << 1) | 1;
}
/**
 * Header of an object reserved by a per-CPU cache: allocated (tag set) but naming
 * no handle (0 is never a handle). Compaction and migration skip such objects.
 */
export const RESERVED_HEADER = encodeHeader(0);

// ---- the zspage lock (an rwlock in the descriptor)

// Module-local copies for the functions below: the engine folds these into its code,
// but loads and checks an exported or imported constant at every use (docs/design.md).
const WORDS = ZD_WORDS;
const LOCK = ZD_LOCK;
const LOCK_CLASS = LC_ZSPAGE;
const UNKNOWN_SITE = SITE_UNKNOWN;

export function zspageReadLock(locks: LockContext, zd: Int32Array, zs: number, site = UNKNOWN_SITE): void {
  locks.readLock(zd, zs * WORDS + LOCK, LOCK_CLASS, site);
}
export function zspageReadUnlock(locks: LockContext, zd: Int32Array, zs: number): void {
  locks.readUnlock(zd, zs * WORDS + LOCK);
}
export function zspageWriteTrylock(locks: LockContext, zd: Int32Array, zs: number, site = UNKNOWN_SITE): boolean {
  return locks.writeTrylock(zd, zs * WORDS + LOCK, LOCK_CLASS, site);
}
export function zspageWriteUnlock(locks: LockContext, zd: Int32Array, zs: number): void {
  locks.writeUnlock(zd, zs * WORDS + LOCK);
}
