// Post-processing of stored pages (the kernel's idle, writeback and recompress
// stores): marking pages idle by age, writing matching pages to the backing
// file and freeing their memory, and recompressing matching pages with the
// secondary algorithms. Each walks the slot table, takes a slot's lock only to
// look at and update that slot, and does the slow part (decompression, file
// I/O) with the lock dropped where the kernel does, marking the slot PP_SLOT so
// a concurrent access or write cancels it.

import { SITE_IDLE, SITE_RECOMPRESS, SITE_WRITEBACK, ZsError } from '@zsmalloc/core';
import { algorithmId } from './codec.js';
import { checkIndex, devicePages } from './device-state.js';
import { ZramError } from './errors.js';
import { isNonNegInt } from './range.js';
import { MAX_COMPS } from './settings.js';
import { codecFor, decompressLoaded, loadLocked, now, releaseContent, type SlotStore } from './slot-store.js';
import {
  PRIO_SHIFT,
  SIZE_MASK,
  SlotTable,
  ZRAM_HUGE,
  ZRAM_IDLE,
  ZRAM_INCOMPRESSIBLE,
  ZRAM_PP_SLOT,
  ZRAM_SAME,
  ZRAM_WB,
} from './slots.js';
import { C, S, add64, inc64 } from './stats.js';

export type WritebackMode = 'idle' | 'huge' | 'huge_idle' | 'incompressible' | 'page_index' | 'page_indexes';
export interface WritebackRequest {
  mode: WritebackMode;
  /** page_index: the page to write back. */
  index?: number;
  /** page_indexes: first and last page (inclusive). */
  first?: number;
  last?: number;
}

export type RecompressType = 'idle' | 'huge' | 'huge_idle';
export interface RecompressRequest {
  /** Which slots: idle ones, huge ones, or both; all slots when absent. */
  type?: RecompressType;
  /** Only objects of at least this many bytes, and keep only results below it (must be < hugeClassSize). */
  threshold?: number;
  /** Stop after this many attempted slots (0 or absent = no limit). */
  maxPages?: number;
  /** Use only this secondary algorithm (it must be set with setRecompAlgorithm). */
  algorithm?: string;
  /** Use only the secondary algorithm of this priority (1..3). */
  priority?: number;
}

// ---------------------------------------------------------------- idle

/** idle store: mark every stored page idle ('all'), or those not accessed for at least `ageSeconds`. Returns pages marked. */
export function markIdle(s: SlotStore, arg: 'all' | number): number {
  const all = arg === 'all';
  if (!all && !isNonNegInt(arg))
    throw new ZsError('EINVAL', `idle: expected "all" or an age in seconds, got ${String(arg)}`);
  const age = all ? 0 : (arg as number);
  const t = now(s);
  const pages = devicePages(s);
  const slots = s.slots;
  let marked = 0;
  slots.refresh();
  for (let i = 0; i < pages; i++) {
    if (!SlotTable.allocated(slots.flags(i))) continue;
    slots.lock(i, SITE_IDLE);
    const f = slots.flags(i);
    if (SlotTable.allocated(f) && (f & (ZRAM_WB | ZRAM_SAME)) === 0) {
      if (all || t - slots.accessTime(i) >= age) {
        slots.setFlag(i, ZRAM_IDLE);
        marked++;
      } else {
        slots.clearFlag(i, ZRAM_IDLE);
      }
    }
    slots.unlock(i);
  }
  return marked;
}

// ---------------------------------------------------------------- writeback

function parseWriteback(request: WritebackRequest | WritebackMode | string): WritebackRequest {
  if (typeof request === 'object' && request !== null) return request;
  if (typeof request !== 'string') throw new ZsError('EINVAL', 'writeback: expected a mode');
  let m = /^page_index=(\d+)$/.exec(request);
  if (m) return { mode: 'page_index', index: Number(m[1]) };
  m = /^page_indexes=(\d+)-(\d+)$/.exec(request);
  if (m) return { mode: 'page_indexes', first: Number(m[1]), last: Number(m[2]) };
  return { mode: request as WritebackMode };
}

function writebackCandidate(f: number, filter: number): boolean {
  return SlotTable.allocated(f) && (f & (ZRAM_WB | ZRAM_SAME | ZRAM_PP_SLOT)) === 0 && (f & filter) === filter;
}

function consumeWritebackLimit(st: Int32Array): void {
  if (Atomics.load(st, S.WB_LIMIT_ENABLE) === 0) return;
  for (;;) {
    const cur = Atomics.load(st, S.WB_LIMIT);
    if (cur === 0 || Atomics.compareExchange(st, S.WB_LIMIT, cur, cur - 1) === cur) return;
  }
}

/**
 * writeback store: writes matching pages to the backing file and frees their memory.
 * Returns pages written. Throws ZramError('ENODEV') without a backing file,
 * ZramError('EIO') when writeback_limit runs out, ZsError('ENOSPC') when the file is full.
 */
export function writeback(s: SlotStore, request: WritebackRequest | WritebackMode | string): number {
  const req = parseWriteback(request);
  let filter = 0;
  let lo = 0;
  let hi = devicePages(s) - 1;
  switch (req.mode) {
    case 'idle':
      filter = ZRAM_IDLE;
      break;
    case 'huge':
      filter = ZRAM_HUGE;
      break;
    case 'huge_idle':
      filter = ZRAM_HUGE | ZRAM_IDLE;
      break;
    case 'incompressible':
      filter = ZRAM_INCOMPRESSIBLE;
      break;
    case 'page_index':
      checkIndex(s, req.index as number);
      lo = hi = req.index as number;
      break;
    case 'page_indexes':
      checkIndex(s, req.first as number);
      checkIndex(s, req.last as number);
      if ((req.last as number) < (req.first as number)) throw new ZsError('EINVAL', 'page_indexes: last < first');
      lo = req.first as number;
      hi = req.last as number;
      break;
    default:
      throw new ZsError('EINVAL', `unknown writeback mode ${JSON.stringify((req as { mode: unknown }).mode)}`);
  }
  if (!s.backing.configured()) throw new ZramError('ENODEV', 'writeback: no backing file');

  const slots = s.slots;
  const st = s.st;
  const page = s.page;
  let written = 0;
  let blk = 0;
  let failure: Error | undefined;
  slots.refresh();
  for (let i = lo; i <= hi; i++) {
    if (!writebackCandidate(slots.flags(i), filter)) continue;
    slots.lock(i, SITE_WRITEBACK);
    let loaded = 0;
    try {
      if (!writebackCandidate(slots.flags(i), filter)) continue;
      if (Atomics.load(st, S.WB_LIMIT_ENABLE) !== 0 && Atomics.load(st, S.WB_LIMIT) === 0) {
        failure = new ZramError('EIO', 'writeback_limit exhausted', written);
        break;
      }
      if (blk === 0) {
        blk = s.backing.allocBlock();
        s.journal.holdBlock(blk);
        if (blk === 0) {
          failure = new ZsError('ENOSPC', 'writeback: backing file is full');
          break;
        }
      }
      s.journal.holdPp(i);
      slots.setFlag(i, ZRAM_PP_SLOT);
      try {
        loaded = loadLocked(s, i, page);
      } catch (e) {
        slots.clearFlag(i, ZRAM_PP_SLOT);
        inc64(s.c64, C.FAILED_READS);
        failure = new ZramError('EIO', `writeback: reading page ${i} failed: ${(e as Error).message}`, written);
        break;
      }
    } finally {
      slots.unlock(i);
    }
    try {
      if (loaded !== 0) decompressLoaded(s, loaded, page);
      s.backing.writeBlock(blk, page);
    } catch (e) {
      slots.lock(i, SITE_WRITEBACK);
      slots.clearFlag(i, ZRAM_PP_SLOT);
      slots.unlock(i);
      failure = new ZramError('EIO', `writeback of page ${i} failed: ${(e as Error).message}`, written);
      break;
    }
    slots.lock(i, SITE_WRITEBACK);
    try {
      // Accessed, rewritten or freed meanwhile: PP_SLOT is gone; keep the block for the next page.
      if ((slots.flags(i) & ZRAM_PP_SLOT) === 0) continue;
      const of = slots.flags(i);
      const oh = slots.handle(i);
      s.journal.replace(i, blk, 0, ZRAM_WB, oh, of);
      slots.setHandle(i, blk);
      slots.setOwned(i, ZRAM_WB);
      inc64(s.c64, C.PAGES_STORED);
      releaseContent(s, of, oh); // after the block is in: killed between, the repair finishes it
      s.journal.replaced();
    } finally {
      slots.unlock(i);
    }
    blk = 0;
    s.journal.holdBlock(0);
    written++;
    inc64(s.c64, C.BD_WRITES);
    consumeWritebackLimit(st);
  }
  // the record lets go of the block before it is given back (another writeback may take it at once)
  s.journal.holdBlock(0);
  if (blk !== 0) s.backing.freeBlock(blk);
  s.journal.holdPp(-1);
  if (failure) throw failure;
  return written;
}

// ---------------------------------------------------------------- recompression

function recompressCandidate(f: number, filter: number, prioMax: number): boolean {
  return (
    SlotTable.allocated(f) &&
    (f & (ZRAM_WB | ZRAM_SAME | ZRAM_INCOMPRESSIBLE | ZRAM_PP_SLOT)) === 0 &&
    (f & filter) === filter &&
    ((f >>> PRIO_SHIFT) & 3) + 1 < prioMax
  );
}

/** Which slots and priorities a recompress request covers (validated). */
interface RecompressPlan {
  filter: number;
  threshold: number;
  maxPages: number;
  prioStart: number;
  prioMax: number;
  numActive: number;
}

function planRecompress(s: SlotStore, request: RecompressRequest): RecompressPlan {
  const { type, algorithm } = request;
  const threshold = request.threshold ?? 0;
  const maxPages = request.maxPages ?? 0;
  let filter = 0;
  if (type === 'idle') filter = ZRAM_IDLE;
  else if (type === 'huge') filter = ZRAM_HUGE;
  else if (type === 'huge_idle') filter = ZRAM_IDLE | ZRAM_HUGE;
  else if (type !== undefined)
    throw new ZsError('EINVAL', `recompress: type must be idle, huge or huge_idle, got ${JSON.stringify(type)}`);
  if (!isNonNegInt(threshold) || threshold >= s.pool.hugeClassSize) {
    throw new ZsError('EINVAL', `recompress: threshold must be an integer below ${s.pool.hugeClassSize}`);
  }
  if (!isNonNegInt(maxPages)) throw new ZsError('EINVAL', 'recompress: maxPages must be a non-negative integer');

  const st = s.st;
  let numActive = 1;
  for (let prio = 1; prio < MAX_COMPS; prio++) if (Atomics.load(st, S.COMP_ID0 + prio) !== 0) numActive = prio + 1;
  let prioStart = 1;
  let prioMax = numActive;
  if (algorithm !== undefined) {
    const id = algorithmId(algorithm);
    let found = 0;
    for (let prio = 1; prio < MAX_COMPS; prio++) if (Atomics.load(st, S.COMP_ID0 + prio) === id + 1) found = prio;
    if (found === 0)
      throw new ZsError('EINVAL', `recompress: ${algorithm} is not a recompression algorithm of this device`);
    prioStart = found;
    prioMax = found + 1;
  }
  if (request.priority !== undefined) {
    const prio = request.priority;
    if (!Number.isInteger(prio) || prio < 1 || prio >= MAX_COMPS || Atomics.load(st, S.COMP_ID0 + prio) === 0) {
      throw new ZsError('EINVAL', `recompress: no recompression algorithm at priority ${String(prio)}`);
    }
    prioStart = Math.max(prioStart, prio);
    prioMax = Math.min(prioMax, prio + 1);
    if (prioStart >= prioMax) throw new ZsError('EINVAL', 'recompress: algorithm and priority disagree');
  }
  if (prioMax <= 1) throw new ZsError('EINVAL', 'recompress: no recompression algorithm set (setRecompAlgorithm)');
  return { filter, threshold, maxPages, prioStart, prioMax, numActive };
}

/**
 * recompress store: recompresses matching slots with the secondary algorithms (in
 * priority order, or only `algorithm`), keeping a result only if it lands in a smaller
 * size class. Slots that the last algorithm cannot shrink become INCOMPRESSIBLE.
 * Returns the number of slots recompressed.
 */
export function recompress(s: SlotStore, request: RecompressRequest): number {
  const plan = planRecompress(s, request);
  const { filter, maxPages, prioMax } = plan;
  const slots = s.slots;
  const pages = devicePages(s);
  let left = maxPages;
  let done = 0;
  slots.refresh();
  for (let i = 0; i < pages; i++) {
    if (maxPages !== 0 && left === 0) break;
    if (!recompressCandidate(slots.flags(i), filter, prioMax)) continue;
    slots.lock(i, SITE_RECOMPRESS);
    try {
      const f = slots.flags(i);
      if (!recompressCandidate(f, filter, prioMax)) continue;
      const r = recompressLocked(s, i, f, plan);
      if (r < 0) continue; // below threshold: not attempted
      if (left > 0) left--;
      if (r > 0) done++;
    } finally {
      slots.unlock(i);
    }
  }
  return done;
}

/**
 * recompress_slot (slot lock held). Returns 1 if recompressed, 0 if attempted without
 * gain (possibly marking INCOMPRESSIBLE), -1 if skipped as already below threshold.
 */
function recompressLocked(s: SlotStore, index: number, f: number, plan: RecompressPlan): number {
  const { threshold, prioStart, prioMax, numActive } = plan;
  const slots = s.slots;
  const pool = s.pool;
  const oldSize = f & SIZE_MASK;
  if (oldSize < threshold) return -1;
  const page = s.page;
  const loaded = loadLocked(s, index, page);
  if (loaded !== 0) decompressLoaded(s, loaded, page);
  slots.clearFlag(index, ZRAM_IDLE);
  const oldClass = pool.classIndexFor(oldSize);
  let prio = Math.max(prioStart, ((f >>> PRIO_SHIFT) & 3) + 1);
  let out: Uint8Array | undefined;
  for (; prio < prioMax; prio++) {
    if (Atomics.load(s.st, S.COMP_ID0 + prio) === 0) continue;
    const c = codecFor(s, prio).compress(page);
    if (pool.classIndexFor(c.length) >= oldClass || (threshold !== 0 && c.length >= threshold)) continue;
    out = c;
    break;
  }
  if (out === undefined) {
    if (prio >= numActive) slots.setFlag(index, ZRAM_INCOMPRESSIBLE);
    return 0;
  }
  const handle = pool.malloc(out.length); // ENOMEM: keep the old object, stop
  s.journal.prepared(handle);
  pool.write(handle, out);
  const acTime = slots.accessTime(index);
  const of = slots.flags(index);
  const oh = slots.handle(index);
  s.journal.replace(index, handle, 0, out.length | (prio << PRIO_SHIFT), oh, of);
  slots.setHandle(index, handle);
  slots.setOwned(index, out.length | (prio << PRIO_SHIFT));
  add64(s.c64, C.COMPR_DATA_SIZE, out.length);
  inc64(s.c64, C.PAGES_STORED);
  releaseContent(s, of, oh); // after the new object is in: killed between, the repair finishes it
  s.journal.replaced();
  slots.setAccessTime(index, acTime); // recompression is not an access
  return 1;
}
