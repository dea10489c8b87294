// The pool's repair after a thread's death (every pool lock held): first the dead
// threads' intent records (intent-log.ts) are rolled forward or back, a frame
// migration (copy complete: finish the relink and the handle rewrite; else give the
// target frame back) and a zspage being built (its frames go back). Then the whole
// pool is checked, and only if the check fails is the allocator state rebuilt from
// what the objects themselves say, which no interrupted update leaves ambiguous:
//
//  - an object is live when its header names a handle and that handle's word names
//    the object's location (malloc writes the header before it publishes the handle,
//    free claims the handle word before it touches the object, compaction copies
//    before it publishes): anything else is free, and goes on its zspage's free list;
//  - a zspage is one whose descriptor is live and whose chain of frames all name it;
//    a descriptor whose frames are gone (freed midway) is released, and so is a
//    zspage left with no live object;
//  - the fullness lists, the class counters, pages_allocated are recounted from
//    those zspages; handle words naming no live object are retired;
//  - the buddy free lists are rebuilt when they are broken or a frame is owned by
//    no one (everything not in use is free).
//
// What this cannot repair (the check still fails after the rebuild, e.g. an object
// whose size word is garbage) is thrown, and the device fences.

import { PAGE_SIZE, ZS_HANDLE_SIZE, ZS_SIZE_CLASSES, NR_FULLNESS_GROUPS } from './constants.js';
import { type ClassLists, listInsert } from './fullness.js';
import {
  IN_A,
  IN_B,
  IN_C,
  IN_OP,
  IN_PHASE,
  INTENT_POOL,
  INTENT_PART_WORDS,
  OP_BUILD,
  OP_MIGRATE,
  claimDeadIntent,
  unclaimDeadIntent,
  clearDeadIntent,
  deadIntents,
  intentBase,
} from './intent-log.js';
import { cpuStillDead } from './cpu-registry.js';
import { locationToObj } from './location.js';
import {
  PG_BUDDY,
  PG_HUGE,
  PG_ISOLATED,
  PG_NEW,
  PG_ZSPAGE,
  byteToPfn,
  getFirstObjOffset,
  getFlags,
  getNextPfn,
  getPagePrivate,
  getZspageOf,
  offsetInFrame,
  orphanIfIsolated,
  setFirstObjOffset,
  setFlags,
  setNextPfn,
  setPagePrivate,
  setZspageOf,
} from './page-desc.js';
import { PerCpuCache, entryOf } from './percpu-cache.js';
import { P_CPUS, P_PAGES_ALLOCATED, P_ZS_HIGH } from './pool-layout.js';
import type { VerifySpace } from './verify.js';
import {
  CL_COUNT,
  CL_GROUPS,
  CL_HEAD,
  CL_OBJ_ALLOCATED,
  CL_OBJ_USED,
  CL_WORDS,
  RESERVED_HEADER,
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
  ZS_STATE_LIVE,
  encodeFreeLink,
  fullnessGroup,
} from './zspage.js';

/**
 * Repairs the pool after deaths (every pool lock held by the caller). Descriptors to
 * give back to the descriptor cache are added to `freeIds` (the caller does it after
 * dropping the locks: that cache's lock ranks with the zone lock). Returns what was
 * repaired, '' for nothing; throws what could not be.
 */
/** What the repair reads and rewrites: everything the check reads, plus the intent records. */
export interface RepairSpace extends VerifySpace, ClassLists {
  readonly intent: Int32Array;
}

export function repairPoolLocked(pool: RepairSpace, verify: (pool: RepairSpace) => void, freeIds: Set<number>): string {
  const notes: string[] = [];
  pool.phys.refresh();
  deadIntents(pool.intent, pool.ctl, P_CPUS, INTENT_POOL, (at, rec) => {
    if (rec[IN_OP] === OP_MIGRATE)
      notes.push(
        rollMigration(pool, rec[IN_A]!, rec[IN_B]!, rec[IN_C]!, rec[IN_PHASE]!) ??
          `migration of frame ${rec[IN_A]} had finished`,
      );
    else if (rec[IN_OP] === OP_BUILD) notes.push(reclaimBuild(pool, rec[IN_A]!, freeIds));
    clearDeadIntent(pool.intent, at, rec);
  });
  try {
    verify(pool);
    return notes.join('; ');
  } catch (e) {
    notes.push(`rebuilt the allocator state (${e instanceof Error ? e.message : String(e)})`);
  }
  rebuild(pool, freeIds);
  verify(pool);
  return notes.join('; ');
}

/**
 * A dead thread's frame migration, settled by the thread that takes over one of the
 * locks it held (the pool lock for writing, the pool mutex, its class lock or its
 * zspage lock; locks.ts onDeadHolder) before that thread goes on: a free through the
 * frame's old location, or a write to it, must never meet a half-moved frame. The
 * same roll as the repair's (rollMigration), under the zone lock; the dead thread's
 * locks keep everyone else out meanwhile, and the record is claimed first, so two
 * threads taking over two of its locks do not both roll it.
 * `cpu` and `gen` name the dead thread: a mutex names its owner only in the lock
 * word, so its slot may have been claimed by a new thread since, whose record is
 * not ours to touch. The slot is checked after the claim (a slot holding a record is
 * never claimed again, so the answer cannot change while the record stays).
 * Returns whether a migration was rolled. Never throws: what it cannot settle is left
 * in the record, unclaimed, for the check after the death (which fences if it
 * cannot either).
 */
export function settleDeadMigration(
  pool: RepairSpace,
  cpu: number,
  gen: number,
  tag: number,
  dead: (tag: number) => boolean,
): boolean {
  const log = pool.intent;
  const at = intentBase(cpu) + INTENT_POOL;
  if (Atomics.load(log, at + IN_OP) !== OP_MIGRATE) return false;
  if (!claimDeadIntent(log, at, tag, dead)) return false;
  const rec = new Int32Array(INTENT_PART_WORDS);
  for (let k = 0; k < INTENT_PART_WORDS; k++) rec[k] = Atomics.load(log, at + k);
  if (rec[IN_OP] !== OP_MIGRATE || !cpuStillDead(pool.ctl, P_CPUS, cpu, gen)) {
    unclaimDeadIntent(log, at, tag);
    return false;
  }
  let note: string | null;
  pool.phys.zoneLock();
  try {
    pool.phys.refresh();
    note = rollMigration(pool, rec[IN_A]!, rec[IN_B]!, rec[IN_C]!, rec[IN_PHASE]!);
  } catch {
    unclaimDeadIntent(log, at, tag);
    return false;
  } finally {
    pool.phys.zoneUnlock();
  }
  clearDeadIntent(log, at, rec);
  return note !== null;
}

/**
 * A frame migration interrupted by a death: rolled back (copy incomplete) or
 * forward; null when it had finished (nothing to roll).
 */
function rollMigration(pool: RepairSpace, pfn: number, target: number, zs: number, phase: number): string | null {
  const phys = pool.phys;
  const fd = phys.fd;
  const zd = pool.zd;
  phys.ensure(Math.max(pfn, target));
  const z = zs * ZD_WORDS;
  const srcAttached = (getFlags(fd, pfn) & PG_ZSPAGE) !== 0 && getZspageOf(fd, pfn) === zs;
  if (!srcAttached) return null; // a leaked source is reclaimed by the check
  if (phase === 0) {
    if ((getFlags(fd, target) & ~PG_BUDDY) === PG_NEW && getZspageOf(fd, target) === 0) phys.releaseFrameLocked(target);
    if ((getFlags(fd, pfn) & PG_ISOLATED) !== 0) {
      setFlags(fd, pfn, getFlags(fd, pfn) & ~PG_ISOLATED);
      if (zd[z + ZD_ISOLATED]! > 0) zd[z + ZD_ISOLATED]!--;
    }
    return `migration of frame ${pfn} rolled back`;
  }
  // the copy is complete: both frames hold the same bytes, so readers see the same
  // object whichever frame their handle names while the move is finished
  const f = getFlags(fd, pfn) & ~PG_ISOLATED;
  setFlags(fd, target, f);
  setZspageOf(fd, target, zs);
  setFirstObjOffset(fd, target, getFirstObjOffset(fd, pfn));
  setNextPfn(fd, target, getNextPfn(fd, pfn));
  setPagePrivate(fd, target, getPagePrivate(fd, pfn));
  if (zd[z + ZD_FIRST] === pfn) zd[z + ZD_FIRST] = target;
  else {
    let p = zd[z + ZD_FIRST]!;
    for (let n = 0; p >= 0 && n < 64; n++) {
      const next = getNextPfn(fd, p);
      if (next === pfn) {
        setNextPfn(fd, p, target);
        break;
      }
      p = next;
    }
  }
  const hw = pool.handles;
  if ((f & PG_HUGE) !== 0) {
    const h = getPagePrivate(fd, pfn);
    if (h !== 0 && hw.inRange(h) && hw.words[h] === locationToObj(pfn, 0)) hw.words[h] = locationToObj(target, 0);
  } else {
    const c = zd[z + ZD_CLASS]!;
    const size = pool.table.size[c]!;
    const objs = pool.table.objsPerZspage[c]!;
    phys.ensure(target);
    const words = phys.wordsOf(target);
    const off0 = getFirstObjOffset(fd, pfn);
    const first = (getPagePrivate(fd, pfn) * PAGE_SIZE + off0) / size;
    for (let off = off0, idx = first; off < PAGE_SIZE && idx < objs; off += size, idx++) {
      const a = phys.wordIndex(target, off);
      const w = words[a]!;
      if ((w & 1) === 0) continue;
      if (w === RESERVED_HEADER) {
        const e = entryOf(words[a + 1]!, c);
        if (pool.pcpWords !== null && pool.pcpWords[e] === locationToObj(pfn, off))
          pool.pcpWords[e] = locationToObj(target, off);
        continue;
      }
      const h = w >>> 1;
      if (hw.inRange(h) && hw.words[h] === locationToObj(pfn, off)) hw.words[h] = locationToObj(target, off);
    }
  }
  let isolated = 0;
  for (let p = zd[z + ZD_FIRST]!, n = 0; p >= 0 && n < 64; p = getNextPfn(fd, p), n++)
    if ((getFlags(fd, p) & PG_ISOLATED) !== 0) isolated++;
  zd[z + ZD_ISOLATED] = isolated;
  setFlags(fd, pfn, 0);
  setZspageOf(fd, pfn, 0);
  phys.releaseFrameLocked(pfn);
  return `migration of frame ${pfn} to ${target} rolled forward`;
}

/** A zspage whose builder died before it was movable: its frames and descriptor go back. */
function reclaimBuild(pool: RepairSpace, id: number, freeIds: Set<number>): string {
  const phys = pool.phys;
  const fd = phys.fd;
  const present = phys.presentFrames;
  let n = 0;
  for (let pfn = 0; pfn < present; pfn++) {
    const f = getFlags(fd, pfn);
    if ((f & PG_NEW) !== 0 && (f & PG_ZSPAGE) === 0 && getZspageOf(fd, pfn) === id) {
      phys.releaseFrameLocked(pfn);
      n++;
    }
  }
  // built as far as live, but never movable: the descriptor goes back too
  if (n > 0 && pool.zd[id * ZD_WORDS + ZD_STATE] === ZS_STATE_LIVE) freeIds.add(id);
  return n > 0 ? `zspage ${id} being built: ${n} frames reclaimed` : `zspage ${id} had been built`;
}

/** Rebuilds the allocator state from the objects (see the top of this file). */
function rebuild(pool: RepairSpace, freeIds: Set<number>): void {
  const phys = pool.phys;
  const fd = phys.fd;
  const zd = pool.zd;
  const cls = pool.cls;
  const t = pool.table;
  const hw = pool.handles;
  const present = phys.presentFrames;
  if (present > 0) phys.ensure(present - 1);
  const cap = hw.capacity();
  hw.inRange(cap);
  const matched = new Uint8Array(cap + 1);
  const inChain = new Uint8Array(present);
  for (let c = 0; c < ZS_SIZE_CLASSES; c++) {
    const cb = c * CL_WORDS;
    for (let g = 0; g < NR_FULLNESS_GROUPS; g++) {
      cls[cb + CL_HEAD + g] = 0;
      cls[cb + CL_COUNT + g] = 0;
    }
    cls[cb + CL_GROUPS] = 0;
    cls[cb + CL_OBJ_ALLOCATED] = 0;
    cls[cb + CL_OBJ_USED] = 0;
    pool.clsBytes[c] = 0;
  }
  const chain: number[] = [];
  let pages = 0;
  const high = pool.ctl[P_ZS_HIGH]!;
  for (let zs = 1; zs < high; zs++) {
    const z = zs * ZD_WORDS;
    if (zd[z + ZD_STATE] !== ZS_STATE_LIVE) continue;
    const first = zd[z + ZD_FIRST]!;
    if (first >= 0 && first < present) {
      const ff = getFlags(fd, first);
      if ((ff & PG_NEW) !== 0 && (ff & PG_ZSPAGE) === 0 && getZspageOf(fd, first) === zs) continue; // being built
    }
    const c = zd[z + ZD_CLASS]!;
    const valid = c >= 0 && c < ZS_SIZE_CLASSES && t.merged[c] === c;
    const k = valid ? t.pagesPerZspage[c]! : 0;
    chain.length = 0;
    for (let pfn = first; valid && pfn >= 0 && chain.length <= k; pfn = getNextPfn(fd, pfn)) {
      const f = pfn < present ? getFlags(fd, pfn) : 0;
      if ((f & PG_ZSPAGE) === 0 || getZspageOf(fd, pfn) !== zs || inChain[pfn] !== 0) break;
      chain.push(pfn);
    }
    if (!valid || chain.length !== k || getNextPfn(fd, chain[k - 1]!) !== -1) {
      freeIds.add(zs); // its frames were freed (or taken) under it; strays are reclaimed below
      continue;
    }
    const objs = t.objsPerZspage[c]!;
    const size = t.size[c]!;
    let inuse = 0;
    let used = 0;
    let bytes = 0;
    if (t.huge[c] !== 0) {
      const h = getPagePrivate(fd, first);
      const len = zd[z + ZD_HUGE_SIZE]!;
      if (
        h > 0 &&
        h <= cap &&
        hw.words[h] === locationToObj(first, 0) &&
        matched[h] === 0 &&
        len > 0 &&
        len <= PAGE_SIZE
      ) {
        matched[h] = 1;
        inuse = used = 1;
        bytes = len;
        zd[z + ZD_FREEOBJ] = -1;
      } else {
        setPagePrivate(fd, first, 0);
        zd[z + ZD_HUGE_SIZE] = 0;
        zd[z + ZD_FREEOBJ] = 0;
      }
    } else {
      let next = -1;
      for (let idx = objs - 1; idx >= 0; idx--) {
        const off = idx * size;
        const pfn = chain[byteToPfn(off)]!;
        const words = phys.wordsOf(pfn);
        const a = phys.wordIndex(pfn, offsetInFrame(off));
        const w = words[a]!;
        if (w === RESERVED_HEADER && pool.pcpWords !== null) {
          inuse++; // reserved by a per-CPU cache: allocated, not used
          continue;
        }
        if ((w & 1) !== 0) {
          const h = w >>> 1;
          const osize = words[a + 1]!;
          if (h > 0 && h <= cap && hw.words[h] === locationToObj(pfn, offsetInFrame(off)) && matched[h] === 0) {
            matched[h] = 1;
            inuse++;
            used++;
            bytes += osize > 0 && osize + ZS_HANDLE_SIZE <= size ? osize : 0;
            continue;
          }
        }
        words[a] = encodeFreeLink(next);
        words[a + 1] = 0;
        next = idx;
      }
      zd[z + ZD_FREEOBJ] = next;
    }
    for (const pfn of chain) inChain[pfn] = 1;
    zd[z + ZD_FREE_NEXT] = 0;
    zd[z + ZD_INUSE] = inuse;
    zd[z + ZD_NRPAGES] = k;
    let isolated = 0;
    for (const pfn of chain) if ((getFlags(fd, pfn) & PG_ISOLATED) !== 0) isolated++;
    zd[z + ZD_ISOLATED] = isolated;
    if (inuse === 0) {
      // no live object: the zspage goes (an isolated frame is left to its migrator, as freeZspage does)
      for (const pfn of chain) {
        inChain[pfn] = 0;
        if (!orphanIfIsolated(fd, pfn)) phys.releaseFrameLocked(pfn);
      }
      zd[z + ZD_FIRST] = -1;
      zd[z + ZD_FG] = -1;
      freeIds.add(zs);
      continue;
    }
    zd[z + ZD_FG] = -1;
    zd[z + ZD_PREV] = 0;
    zd[z + ZD_NEXT] = 0;
    listInsert(pool, c, zs, fullnessGroup(inuse, objs));
    const cb = c * CL_WORDS;
    cls[cb + CL_OBJ_ALLOCATED]! += objs;
    cls[cb + CL_OBJ_USED]! += used;
    pool.clsBytes[c] = pool.clsBytes[c]! + bytes;
    pages += k;
  }
  if (pool.pcpWords !== null && pool.pcpBytes !== null) {
    // the counters exclude what the CPU caches have not folded in yet
    for (let c = 0; c < ZS_SIZE_CLASSES; c++) {
      cls[c * CL_WORDS + CL_OBJ_USED]! -= PerCpuCache.usedDelta(pool.pcpWords, c);
      pool.clsBytes[c] = pool.clsBytes[c]! - PerCpuCache.bytesDelta(pool.pcpBytes, c);
    }
  }
  // zspage frames no zspage owns any more (a zspage freed midway)
  for (let pfn = 0; pfn < present; pfn++) {
    if ((getFlags(fd, pfn) & PG_ZSPAGE) === 0 || inChain[pfn] !== 0) continue;
    if (!orphanIfIsolated(fd, pfn)) phys.releaseFrameLocked(pfn);
  }
  // handle words that name no live object: retired (the number is not reused)
  for (let h = 1; h <= cap; h++) if (hw.words[h]! >= 0 && matched[h] === 0) hw.words[h] = -1;
  Atomics.store(pool.ctl, P_PAGES_ALLOCATED, pages);
  rebuildBuddyIfBroken(pool, inChain);
}

/** The buddy free lists: checked, and rebuilt if broken or if a frame is owned by no one. */
function rebuildBuddyIfBroken(pool: RepairSpace, inChain: Uint8Array): void {
  const phys = pool.phys;
  const fd = phys.fd;
  const present = phys.presentFrames;
  const owner = new Int32Array(present);
  for (let pfn = 0; pfn < present; pfn++) if (inChain[pfn] !== 0) owner[pfn] = 1;
  let broken = false;
  try {
    phys.verifyFreeListsLocked(owner);
    for (let pfn = 0; pfn < present && !broken; pfn++)
      broken = owner[pfn] === 0 && (getFlags(fd, pfn) & ~PG_BUDDY) === 0;
  } catch {
    broken = true;
  }
  if (broken) phys.rebuildFreeListsLocked((pfn) => inChain[pfn] !== 0);
}
