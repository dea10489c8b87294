// zspage compaction (the kernel's __zs_compact): per class, move objects from the
// emptiest zspages into the fullest ones and free the emptied zspages. One
// compaction runs at a time per pool. The destination is kept off the lists until
// it is full, so objects are never moved back and forth (6.4+).
//
// Locks: pool lock (write) -> class lock -> zspage lock of the source (trylock only;
// a mapped or read zspage stops the class's compaction, as in the kernel).

import { ZS_HANDLE_SIZE } from './constants.js';
import { type ClassLists, fixFullness, isolateDstZspage, isolateSrcZspage } from './fullness.js';
import { SITE_COMPACT_ISOLATE, SITE_COMPACT_MIGRATE } from './lock-classes.js';
import { locationToObj } from './location.js';
import { FP_COMPACT_ALLOCATED, FP_COMPACT_COPIED, FP_COMPACT_FREED, FP_COMPACT_PUBLISHED } from './locks.js';
import { type ObjectStore, copyAcross, objDataAddr, objFree, objMalloc, publishHandle } from './objects.js';
import { byteToPfn, frameByte, getNextPfn, offsetInFrame } from './page-desc.js';
import { P_COMPACTING, P_PAGES_COMPACTED, P_ZS_COMPACT_RUNS } from './pool-layout.js';
import { type StatSpace, canCompact } from './pool-stats.js';
import { type ZspageSpace, putbackOrFree } from './zspage-alloc.js';
import {
  CL_GHOSTS,
  CL_MOVED,
  CL_WORDS,
  RESERVED_HEADER,
  ZD_FIRST,
  ZD_FREE_NEXT,
  ZD_INUSE,
  ZD_WORDS,
  zspageWriteTrylock,
  zspageWriteUnlock,
} from './zspage.js';

/** What compaction works on: the lists, the objects, zspage release and the counters. */
export interface CompactionSpace extends ClassLists, ObjectStore, ZspageSpace, StatSpace {}

const yieldWord = new Int32Array(new SharedArrayBuffer(4));

export function compactPool(s: CompactionSpace): number {
  // the flag holds the compactor's owner tag, so a compactor that dies is recognised
  if (Atomics.compareExchange(s.ctl, P_COMPACTING, 0, s.locks.tag) !== 0) return 0;
  try {
    Atomics.add(s.ctl, P_ZS_COMPACT_RUNS, 1);
    let freed = 0;
    for (const c of s.table.distinct) {
      if (canCompact(s, c) === 0) continue;
      freed += compactClass(s, c);
    }
    if (freed > 0) Atomics.add(s.ctl, P_PAGES_COMPACTED, freed);
    return freed;
  } finally {
    Atomics.store(s.ctl, P_COMPACTING, 0);
  }
}

function lockClass(s: CompactionSpace, c: number): void {
  s.lock.poolWriteLock(SITE_COMPACT_ISOLATE);
  s.lock.classLock(c, SITE_COMPACT_ISOLATE);
  // Frames of this class may have been allocated (and the SAB grown) by other threads.
  s.phys.ensure(s.phys.presentFrames - 1);
}
function unlockClass(s: CompactionSpace, c: number): void {
  s.lock.classUnlock(c);
  s.lock.poolWriteUnlock();
}

function compactClass(s: CompactionSpace, c: number): number {
  const objs = s.table.objsPerZspage[c]!;
  const pages = s.table.pagesPerZspage[c]!;
  const zd = s.zd;
  let dst = 0;
  let freed = 0;
  // sources pinned by objects reserved in per-CPU caches (they cannot empty): kept
  // off the lists, linked through ZD_FREE_NEXT, until the class lock is dropped
  let pinned = 0;
  const putBackPinned = (): void => {
    for (let zs = pinned; zs !== 0; ) {
      const next = zd[zs * ZD_WORDS + ZD_FREE_NEXT]!;
      zd[zs * ZD_WORDS + ZD_FREE_NEXT] = 0;
      fixFullness(s, c, zs);
      zs = next;
    }
    pinned = 0;
  };
  lockClass(s, c);
  while (canCompact(s, c) > 0) {
    if (dst === 0) {
      dst = isolateDstZspage(s, c);
      if (dst === 0) break;
    }
    const src = isolateSrcZspage(s, c);
    if (src === 0) break;
    if (!zspageWriteTrylock(s.locks, zd, src, SITE_COMPACT_MIGRATE)) {
      fixFullness(s, c, src);
      break;
    }
    migrateObjects(s, c, src, dst);
    zspageWriteUnlock(s.locks, zd, src);
    if (zd[src * ZD_WORDS + ZD_INUSE]! > 0 && zd[dst * ZD_WORDS + ZD_INUSE]! < objs) {
      zd[src * ZD_WORDS + ZD_FREE_NEXT] = pinned;
      pinned = src;
    } else if (putbackOrFree(s, c, src)) {
      freed += pages;
    }
    const contended = s.lock.compactionContended(c);
    if (zd[dst * ZD_WORDS + ZD_INUSE] === objs || contended) {
      fixFullness(s, c, dst);
      dst = 0;
    }
    if (contended) {
      // The kernel drops both locks and reschedules so waiters get in. Pinned
      // sources would be picked again: this class is done for this run.
      if (pinned !== 0) break;
      unlockClass(s, c);
      Atomics.wait(yieldWord, 0, 0, 0.02);
      lockClass(s, c);
    }
  }
  if (dst !== 0) fixFullness(s, c, dst);
  putBackPinned();
  unlockClass(s, c);
  return freed;
}

/** Moves allocated objects of src into dst until dst is full or src empty. */
function migrateObjects(s: CompactionSpace, c: number, src: number, dst: number): void {
  const size = s.table.size[c]!;
  const objs = s.table.objsPerZspage[c]!;
  const zd = s.zd;
  const phys = s.phys;
  const fd = phys.fd;
  let moved = 0;
  let pfn = zd[src * ZD_WORDS + ZD_FIRST]!;
  let frameIdx = 0;
  for (let idx = 0; idx < objs; idx++) {
    if (zd[src * ZD_WORDS + ZD_INUSE] === 0 || zd[dst * ZD_WORDS + ZD_INUSE] === objs) break;
    const off = idx * size;
    while (byteToPfn(off) > frameIdx) {
      pfn = getNextPfn(fd, pfn);
      frameIdx++;
    }
    phys.ensure(pfn);
    const words = phys.wordsOf(pfn);
    const a = phys.wordIndex(pfn, offsetInFrame(off));
    const w = words[a]!;
    if ((w & 1) === 0 || w === RESERVED_HEADER) continue; // free, or reserved by a per-CPU cache
    const h = w >>> 1;
    const len = words[a + 1]!;
    const from = locationToObj(pfn, offsetInFrame(off));
    if (!s.handles.inRange(h) || s.handles.words[h] !== from) {
      // a ghost: a copy a compactor killed midway left, whose handle names its other
      // copy (or nothing). Under these locks a live object's handle always names it
      // (free claims the handle under the class lock, movers hold it too), so this
      // one is garbage: freed, never moved (a move would point the handle at it).
      objFree(s, src, c, from);
      s.cls[c * CL_WORDS + CL_GHOSTS]!++;
      continue;
    }
    // copy, then publish: killed before the handle moves, the old copy stays valid
    // and the new one is a ghost (freed above, or by the repair after the death)
    const loc = objMalloc(s, dst, c, h, len, false);
    if (s.locks.faultAt === FP_COMPACT_ALLOCATED) s.locks.faultPoint();
    copyAcross(s.phys, frameByte(pfn, offsetInFrame(off)) + ZS_HANDLE_SIZE, objDataAddr(s, c, loc), len);
    if (s.locks.faultAt === FP_COMPACT_COPIED) s.locks.faultPoint();
    publishHandle(s.handles, h, loc);
    if (s.locks.faultAt === FP_COMPACT_PUBLISHED) s.locks.faultPoint();
    objFree(s, src, c, from);
    if (s.locks.faultAt === FP_COMPACT_FREED) s.locks.faultPoint();
    moved++;
  }
  s.cls[c * CL_WORDS + CL_MOVED]! += moved;
}
