// The pool's consistency check (verify): with every lock of the pool held, walks
// every class's fullness lists, every zspage's chain of frames and its objects
// (free list, headers, handles pointing back, reserved objects named by exactly
// one magazine), the counters, the buddy allocator's free lists and the
// allocPages blocks, and throws on the first broken invariant. A frame that is
// in no structure at all is reported as leaked.

import { NR_FULLNESS_GROUPS, PAGE_SIZE, ZS_HANDLE_SIZE, ZS_SIZE_CLASSES } from './constants.js';
import type { HandleTable } from './handles.js';
import { locationToObj } from './location.js';
import { PerCpuCache, entryOf } from './percpu-cache.js';
import {
  PG_ISOLATED,
  PG_NEW,
  PG_RESERVED,
  PG_TAIL,
  PG_ZSPAGE,
  byteToPfn,
  getFirstObjOffset,
  getFlags,
  getNextPfn,
  getOrder,
  getPagePrivate,
  getZspageOf,
  offsetInFrame,
} from './page-desc.js';
import type { PhysMem } from './phys-mem.js';
import { type StatSpace, bytesOf, objUsedOf } from './pool-stats.js';
import { P_PAGES_ALLOCATED } from './pool-layout.js';
import {
  CL_COUNT,
  CL_GROUPS,
  CL_HEAD,
  CL_OBJ_ALLOCATED,
  CL_WORDS,
  RESERVED_HEADER,
  ZD_CLASS,
  ZD_FG,
  ZD_FIRST,
  ZD_FREEOBJ,
  ZD_HUGE_SIZE,
  ZD_INUSE,
  ZD_NEXT,
  ZD_NRPAGES,
  ZD_PREV,
  ZD_STATE,
  ZD_WORDS,
  ZS_STATE_LIVE,
  decodeFreeLink,
  fullnessGroup,
} from './zspage.js';

/** What the check reads: everything the statistics read, the zspages, memory and the handles. */
export interface VerifySpace extends StatSpace {
  readonly zd: Int32Array;
  readonly phys: PhysMem;
  readonly handles: HandleTable;
  readonly maxFrames: number;
}

/** The check itself; the caller holds every lock of the pool (ZsPool.verify). */
export function verifyLocked(pool: VerifySpace): void {
  const phys = pool.phys;
  const fd = phys.fd;
  const zd = pool.zd;
  const present = phys.presentFrames;
  phys.refresh();
  const owner = new Int32Array(present);
  phys.verifyFreeListsLocked(owner);
  const t = pool.table;
  let liveObjects = 0;
  let zspageFrames = 0;
  for (let c = 0; c < ZS_SIZE_CLASSES; c++) {
    const cb = c * CL_WORDS;
    if (t.merged[c] !== c) {
      for (let g = 0; g < NR_FULLNESS_GROUPS; g++)
        if (pool.cls[cb + CL_HEAD + g] !== 0) throw new Error(`alias class ${c} has zspages`);
      continue;
    }
    const objs = t.objsPerZspage[c]!;
    const k = t.pagesPerZspage[c]!;
    const size = t.size[c]!;
    let used = 0;
    let allocated = 0;
    let bytes = 0;
    // objects reserved by per-CPU caches, by location word; each must be in exactly one magazine
    const reserved = new Set<number>();
    for (let g = 0; g < NR_FULLNESS_GROUPS; g++) {
      let n = 0;
      let prev = 0;
      for (let zs = pool.cls[cb + CL_HEAD + g]!; zs !== 0; zs = zd[zs * ZD_WORDS + ZD_NEXT]!) {
        const z = zs * ZD_WORDS;
        const where = `class ${c} zspage ${zs}`;
        if (zd[z + ZD_STATE] !== ZS_STATE_LIVE) throw new Error(`${where}: on a list but not live`);
        if (zd[z + ZD_CLASS] !== c) throw new Error(`${where}: descriptor says class ${zd[z + ZD_CLASS]}`);
        if (zd[z + ZD_FG] !== g) throw new Error(`${where}: on list ${g} but group field ${zd[z + ZD_FG]}`);
        if (zd[z + ZD_PREV] !== prev) throw new Error(`${where}: broken back link`);
        const inuse = zd[z + ZD_INUSE]!;
        if (fullnessGroup(inuse, objs) !== g)
          throw new Error(`${where}: inuse ${inuse}/${objs} does not belong in group ${g}`);
        if (inuse === 0) throw new Error(`${where}: empty zspage not freed`);
        if (zd[z + ZD_NRPAGES] !== k) throw new Error(`${where}: ${zd[z + ZD_NRPAGES]} pages, class wants ${k}`);
        // frames of the chain
        const chain: number[] = [];
        for (let pfn = zd[z + ZD_FIRST]!; pfn >= 0; pfn = getNextPfn(fd, pfn)) {
          if (pfn >= present) throw new Error(`${where}: frame ${pfn} beyond present memory`);
          if ((getFlags(fd, pfn) & PG_ZSPAGE) === 0) throw new Error(`${where}: frame ${pfn} lacks PG_ZSPAGE`);
          if (getZspageOf(fd, pfn) !== zs)
            throw new Error(`${where}: frame ${pfn} names zspage ${getZspageOf(fd, pfn)}`);
          if (owner[pfn] !== 0) throw new Error(`${where}: frame ${pfn} also owned by ${owner[pfn]}`);
          owner[pfn] = zs;
          const i = chain.length;
          if (!t.huge[c]) {
            if (getPagePrivate(fd, pfn) !== i)
              throw new Error(`${where}: frame ${pfn} chain index ${getPagePrivate(fd, pfn)} != ${i}`);
            const first = Math.ceil((i * PAGE_SIZE) / size) * size - i * PAGE_SIZE;
            if (getFirstObjOffset(fd, pfn) !== first)
              throw new Error(`${where}: frame ${pfn} first_obj_offset ${getFirstObjOffset(fd, pfn)} != ${first}`);
          }
          chain.push(pfn);
          if (chain.length > k) throw new Error(`${where}: chain longer than ${k}`);
        }
        if (chain.length !== k) throw new Error(`${where}: chain of ${chain.length} frames, want ${k}`);
        zspageFrames += k;
        // objects
        const isFree = new Uint8Array(objs);
        let freeCount = 0;
        if (t.huge[c]) {
          if (inuse !== 1) throw new Error(`${where}: huge zspage with inuse ${inuse}`);
          const h = getPagePrivate(fd, chain[0]!);
          const loc = locationToObj(chain[0]!, 0);
          if (!pool.handles.inRange(h) || pool.handles.words[h] !== loc)
            throw new Error(`${where}: huge object's handle ${h} does not point back`);
          bytes += zd[z + ZD_HUGE_SIZE]!;
        } else {
          for (let idx = zd[z + ZD_FREEOBJ]!; idx !== -1; ) {
            if (idx < 0 || idx >= objs) throw new Error(`${where}: free list index ${idx} out of range`);
            if (isFree[idx]) throw new Error(`${where}: free list cycle at ${idx}`);
            isFree[idx] = 1;
            freeCount++;
            const off = idx * size;
            const at = chain[byteToPfn(off)]!;
            const w = phys.wordsOf(at)[phys.wordIndex(at, offsetInFrame(off))]!;
            if ((w & 1) !== 0) throw new Error(`${where}: free object ${idx} has the allocated tag`);
            idx = decodeFreeLink(w);
          }
          if (freeCount !== objs - inuse)
            throw new Error(`${where}: ${freeCount} free objects but inuse ${inuse}/${objs}`);
          for (let idx = 0; idx < objs; idx++) {
            if (isFree[idx]) continue;
            const off = idx * size;
            const pfn = chain[byteToPfn(off)]!;
            const words = phys.wordsOf(pfn);
            const a = phys.wordIndex(pfn, offsetInFrame(off));
            const w = words[a]!;
            if ((w & 1) !== 1) throw new Error(`${where}: object ${idx} neither free nor allocated`);
            if (w === RESERVED_HEADER) {
              if (pool.pcpWords === null) throw new Error(`${where}: object ${idx} reserved in a pool without caches`);
              const loc = locationToObj(pfn, offsetInFrame(off));
              if (pool.pcpWords[entryOf(words[a + 1]!, c)] !== loc)
                throw new Error(`${where}: reserved object ${idx}'s magazine position does not name it`);
              reserved.add(loc);
              continue;
            }
            const h = w >>> 1;
            if (!pool.handles.inRange(h) || pool.handles.words[h] !== locationToObj(pfn, offsetInFrame(off))) {
              throw new Error(`${where}: object ${idx}'s handle ${h} does not point back to it`);
            }
            const osize = words[a + 1]!;
            if (osize <= 0 || osize + ZS_HANDLE_SIZE > size)
              throw new Error(`${where}: object ${idx} size ${osize} does not fit class ${size}`);
            bytes += osize;
          }
        }
        used += inuse;
        allocated += objs;
        n++;
        prev = zs;
        if (n > pool.maxFrames) throw new Error(`class ${c}: fullness list ${g} cycle`);
      }
      if (n !== pool.cls[cb + CL_COUNT + g])
        throw new Error(`class ${c}: group ${g} count ${pool.cls[cb + CL_COUNT + g]} but ${n} listed`);
      if ((n !== 0) !== ((pool.cls[cb + CL_GROUPS]! & (1 << g)) !== 0))
        throw new Error(`class ${c}: group ${g} bit disagrees with its ${n} zspages`);
    }
    if (pool.pcpWords !== null) {
      let listed = 0;
      PerCpuCache.forEachEntry(pool.pcpWords, c, (e, cpu) => {
        listed++;
        if (!reserved.delete(e)) throw new Error(`class ${c}: CPU ${cpu}'s magazine names ${e}, not a reserved object`);
      });
      if (reserved.size !== 0) throw new Error(`class ${c}: ${reserved.size} reserved objects in no magazine`);
      used -= listed;
    }
    if (used !== objUsedOf(pool, c)) throw new Error(`class ${c}: obj_used ${objUsedOf(pool, c)} but ${used} counted`);
    if (allocated !== pool.cls[cb + CL_OBJ_ALLOCATED])
      throw new Error(`class ${c}: obj_allocated ${pool.cls[cb + CL_OBJ_ALLOCATED]} but ${allocated} counted`);
    if (bytes !== bytesOf(pool, c))
      throw new Error(`class ${c}: bytes stored ${bytesOf(pool, c)} but ${bytes} counted`);
    liveObjects += used;
  }
  if (zspageFrames !== Atomics.load(pool.ctl, P_PAGES_ALLOCATED)) {
    throw new Error(`pages_allocated ${Atomics.load(pool.ctl, P_PAGES_ALLOCATED)} but zspages hold ${zspageFrames}`);
  }
  // allocPages blocks
  for (let pfn = 0; pfn < present; pfn++) {
    const f = getFlags(fd, pfn);
    if (f === PG_RESERVED) {
      const order = getOrder(fd, pfn);
      for (let k = 0; k < 1 << order; k++) {
        if (owner[pfn + k] !== 0)
          throw new Error(`allocPages block ${pfn} overlaps frame ${pfn + k} owned by ${owner[pfn + k]}`);
        if (k > 0 && getFlags(fd, pfn + k) !== PG_TAIL)
          throw new Error(`allocPages block ${pfn}: frame ${pfn + k} is not a tail`);
        owner[pfn + k] = -2;
      }
    }
  }
  for (let pfn = 0; pfn < present; pfn++) {
    // a frame isolated for migration whose zspage was freed meanwhile: the migrator frees it
    if (owner[pfn] === 0 && getFlags(fd, pfn) === PG_ISOLATED) owner[pfn] = -3;
    // a frame of a zspage another thread is building right now (no lock covers that)
    if (owner[pfn] === 0 && (getFlags(fd, pfn) & PG_NEW) !== 0) owner[pfn] = -4;
    if (owner[pfn] === 0) throw new Error(`frame ${pfn} is neither free, nor in a zspage, nor allocated (leaked)`);
  }
  // every live handle was matched by exactly one object
  let liveHandles = 0;
  const cap = pool.handles.capacity();
  pool.handles.inRange(cap);
  for (let h = 1; h <= cap; h++) if (pool.handles.words[h]! >= 0) liveHandles++;
  if (liveHandles !== liveObjects) throw new Error(`${liveHandles} live handles but ${liveObjects} allocated objects`);
}
