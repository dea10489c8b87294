// zspage compaction (the kernel's __zs_compact): per class, move objects from the
// emptiest zspages into the fullest ones and free the emptied zspages. One
// compaction runs at a time per pool. The destination is kept off the lists until
// it is full, so objects are never moved back and forth (6.4+).
//
// Locks: pool lock (write) -> class lock -> zspage lock of the source (trylock only;
// a mapped or read zspage stops the class's compaction, as in the kernel).

import { PAGE_SHIFT, PAGE_SIZE, ZS_HANDLE_SIZE, ZS_INUSE_RATIO_10, ZS_INUSE_RATIO_99 } from './constants.js';

import { P_COMPACTING, P_PAGES_COMPACTED, P_ZS_COMPACT_RUNS } from './pool-layout.js';

import type { ZsPool } from './pool.js';

import { CL_MOVED, CL_WORDS, RESERVED_HEADER, ZD_FIRST, ZD_FREE_NEXT, ZD_INUSE, ZD_WORDS } from './zspage.js';

import { SITE_COMPACT_ISOLATE, SITE_COMPACT_MIGRATE } from './lock-classes.js';
import { getNextPfn, getPagePrivate } from './page-desc.js';
import { objToIdx, objToPfn } from './location.js';

const yieldWord = new Int32Array(new SharedArrayBuffer(4));

export function compactPool(pool: ZsPool): number {
  // the flag holds the compactor's owner tag, so a compactor that dies is recognised
  if (Atomics.compareExchange(pool.ctl, P_COMPACTING, 0, pool.locks.tag) !== 0) return 0;
  try {
    pool.bump(P_ZS_COMPACT_RUNS);
    let freed = 0;
    for (const c of pool.table.distinct) {
      if (pool.canCompact(c) === 0) continue;
      freed += compactClass(pool, c);
    }
    if (freed > 0) pool.bump(P_PAGES_COMPACTED, freed);
    return freed;
  } finally {
    Atomics.store(pool.ctl, P_COMPACTING, 0);
  }
}

function lockClass(pool: ZsPool, c: number): void {
  pool.poolWriteLock(SITE_COMPACT_ISOLATE);
  pool.classLock(c, SITE_COMPACT_ISOLATE);
  // Frames of this class may have been allocated (and the SAB grown) by other threads.
  pool.phys.ensure(pool.phys.presentFrames - 1);
}
function unlockClass(pool: ZsPool, c: number): void {
  pool.classUnlock(c);
  pool.poolWriteUnlock();
}

function compactClass(pool: ZsPool, c: number): number {
  const objs = pool.table.objsPerZspage[c]!;
  const pages = pool.table.pagesPerZspage[c]!;
  const zd = pool.zd;
  let dst = 0;
  let freed = 0;
  // sources pinned by objects reserved in per-CPU caches (they cannot empty): kept
  // off the lists, linked through ZD_FREE_NEXT, until the class lock is dropped
  let pinned = 0;
  const putBackPinned = (): void => {
    for (let zs = pinned; zs !== 0; ) {
      const next = zd[zs * ZD_WORDS + ZD_FREE_NEXT]!;
      zd[zs * ZD_WORDS + ZD_FREE_NEXT] = 0;
      pool.fixFullness(c, zs);
      zs = next;
    }
    pinned = 0;
  };
  lockClass(pool, c);
  while (pool.canCompact(c) > 0) {
    if (dst === 0) {
      dst = pool.firstInGroups(c, ZS_INUSE_RATIO_99, ZS_INUSE_RATIO_10);
      if (dst === 0) break;
      pool.listRemove(c, dst);
    }
    const src = pool.firstInGroups(c, ZS_INUSE_RATIO_10, ZS_INUSE_RATIO_99);
    if (src === 0) break;
    pool.listRemove(c, src);
    if (!pool.zspageWriteTrylock(src, SITE_COMPACT_MIGRATE)) {
      pool.fixFullness(c, src);
      break;
    }
    migrateObjects(pool, c, src, dst);
    pool.zspageWriteUnlock(src);
    if (zd[src * ZD_WORDS + ZD_INUSE]! > 0 && zd[dst * ZD_WORDS + ZD_INUSE]! < objs) {
      zd[src * ZD_WORDS + ZD_FREE_NEXT] = pinned;
      pinned = src;
    } else if (pool.fixFullness(c, src) === 0) {
      pool.listRemove(c, src);
      pool.freeZspage(c, src);
      freed += pages;
    }
    const contended = pool.compactionContended(c);
    if (zd[dst * ZD_WORDS + ZD_INUSE] === objs || contended) {
      pool.fixFullness(c, dst);
      dst = 0;
    }
    if (contended) {
      // The kernel drops both locks and reschedules so waiters get in. Pinned
      // sources would be picked again: this class is done for this run.
      if (pinned !== 0) break;
      unlockClass(pool, c);
      Atomics.wait(yieldWord, 0, 0, 0.02);
      lockClass(pool, c);
    }
  }
  if (dst !== 0) pool.fixFullness(c, dst);
  putBackPinned();
  unlockClass(pool, c);
  return freed;
}

/** Moves allocated objects of src into dst until dst is full or src empty. */
function migrateObjects(pool: ZsPool, c: number, src: number, dst: number): void {
  const size = pool.table.size[c]!;
  const objs = pool.table.objsPerZspage[c]!;
  const zd = pool.zd;
  const words = pool.phys.words;
  const fd = pool.phys.fd;
  let moved = 0;
  let pfn = zd[src * ZD_WORDS + ZD_FIRST]!;
  let frameIdx = 0;
  for (let idx = 0; idx < objs; idx++) {
    if (zd[src * ZD_WORDS + ZD_INUSE] === 0 || zd[dst * ZD_WORDS + ZD_INUSE] === objs) break;
    const off = idx * size;
    while (off >>> PAGE_SHIFT > frameIdx) {
      pfn = getNextPfn(fd, pfn);
      frameIdx++;
    }
    const addr = pfn * PAGE_SIZE + (off & (PAGE_SIZE - 1));
    const w = words[addr >>> 2]!;
    if ((w & 1) === 0 || w === RESERVED_HEADER) continue; // free, or reserved by a per-CPU cache
    const h = w >>> 1;
    const len = words[(addr >>> 2) + 1]!;
    // copy, then publish: killed before the handle moves, the old copy stays valid
    const loc = pool.objMalloc(dst, c, h, len, false);
    const dpfn = objToPfn(loc);
    const didx = objToIdx(loc);
    const doff = didx * size - getPagePrivate(fd, dpfn) * PAGE_SIZE;
    copyAcross(pool, addr + ZS_HANDLE_SIZE, dpfn * PAGE_SIZE + doff + ZS_HANDLE_SIZE, len);
    pool.publishHandle(h, loc);
    pool.objFree(src, c, pfn, idx);
    moved++;
  }
  pool.cls[c * CL_WORDS + CL_MOVED]! += moved;
}

/**
 * Copies len bytes between two addresses of physical memory, each of which may
 * cross into the next frame of its zspage chain. copyWithin: no allocation.
 */
export function copyAcross(pool: ZsPool, from: number, to: number, len: number): void {
  while (len > 0) {
    const n = Math.min(len, PAGE_SIZE - (from & (PAGE_SIZE - 1)), PAGE_SIZE - (to & (PAGE_SIZE - 1)));
    pool.phys.bytes.copyWithin(to, from, from + n);
    len -= n;
    if (len === 0) return;
    from += n;
    to += n;
    if ((from & (PAGE_SIZE - 1)) === 0) from = pool.nextFrameBase(from - 1);
    if ((to & (PAGE_SIZE - 1)) === 0) to = pool.nextFrameBase(to - 1);
  }
}
