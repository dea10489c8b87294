// Inspection of a zram device: one slot's state, the debugfs block_state text,
// the statistics values, the full consistency check (verify), the check a live
// device gets after a thread died (verifyQuiet), and the recount that repairs
// counters such a death left off by one. Reads the shared state; changes it
// only to repair (recountStats, verifyQuiet's clearing of half-written slots).

import { devicePages, PAGE, type DeviceState } from './device-state.js';
import {
  PRIO_SHIFT,
  SIZE_MASK,
  SlotTable,
  ZRAM_ENTRY_LOCK,
  ZRAM_HUGE,
  ZRAM_IDLE,
  ZRAM_INCOMPRESSIBLE,
  ZRAM_PP_SLOT,
  ZRAM_SAME,
  ZRAM_WB,
} from './slots.js';
import { C, S, get64, u32, type BdStat, type DebugStat, type IoStat, type MmStat } from './stats.js';

export interface SlotState {
  allocated: boolean;
  /** Stored object size in bytes (4096 for huge; 0 for same-filled and written-back pages). */
  size: number;
  same: boolean;
  writtenBack: boolean;
  huge: boolean;
  idle: boolean;
  incompressible: boolean;
  /** Compression priority: 0 primary, 1..3 recompressed with that secondary algorithm. */
  priority: number;
  /** Seconds since the device epoch of the last access (0 = never). */
  accessTime: number;
}

export interface ZramStatValues {
  mm: MmStat;
  io: IoStat;
  bd: BdStat;
  debug: DebugStat;
}

/** One slot's state (a lock-free snapshot; the caller checked the index). */
export function slotState(d: DeviceState, index: number): SlotState {
  const f = d.slots.flags(index);
  return {
    allocated: SlotTable.allocated(f),
    size: f & SIZE_MASK,
    same: (f & ZRAM_SAME) !== 0,
    writtenBack: (f & ZRAM_WB) !== 0,
    huge: (f & ZRAM_HUGE) !== 0,
    idle: (f & ZRAM_IDLE) !== 0,
    incompressible: (f & ZRAM_INCOMPRESSIBLE) !== 0,
    priority: (f >>> PRIO_SHIFT) & 3,
    accessTime: d.slots.accessTime(index),
  };
}

/**
 * debugfs block_state: one line per stored page, "%12zd %12lld.%06lu %c%c%c%c%c%c\n":
 * index, access time (seconds since the device epoch), then s(ame) w(ritten back)
 * h(uge) i(dle) r(ecompressed) n (incompressible), '.' where unset.
 */
export function blockState(d: DeviceState): string {
  let s = '';
  const pages = devicePages(d);
  const slots = d.slots;
  slots.refresh();
  for (let i = 0; i < pages; i++) {
    const f = slots.flags(i);
    if (!SlotTable.allocated(f)) continue;
    s +=
      `${String(i).padStart(12, ' ')} ${String(slots.accessTime(i)).padStart(12, ' ')}.000000 ` +
      `${f & ZRAM_SAME ? 's' : '.'}${f & ZRAM_WB ? 'w' : '.'}${f & ZRAM_HUGE ? 'h' : '.'}${f & ZRAM_IDLE ? 'i' : '.'}` +
      `${(f >>> PRIO_SHIFT) & 3 ? 'r' : '.'}${f & ZRAM_INCOMPRESSIBLE ? 'n' : '.'}\n`;
  }
  return s;
}

/** The values behind mm_stat, io_stat, bd_stat and debug_stat. */
export function statValues(d: DeviceState): ZramStatValues {
  const st = d.st;
  const c64 = d.c64;
  const ps = devicePages(d) !== 0 ? d.pool.stats() : undefined;
  return {
    mm: {
      origDataSize: get64(c64, C.PAGES_STORED) * PAGE,
      comprDataSize: get64(c64, C.COMPR_DATA_SIZE),
      memUsedTotal: ps ? ps.pagesUsed * PAGE : 0,
      memLimit: u32(st, S.LIMIT_PAGES) * PAGE,
      memUsedMax: get64(c64, C.MAX_USED_PAGES) * PAGE,
      samePages: get64(c64, C.SAME_PAGES),
      pagesCompacted: ps ? Math.max(0, ps.pagesCompacted - get64(c64, C.COMPACTED_BASE)) : 0,
      hugePages: get64(c64, C.HUGE_PAGES),
      hugePagesSince: get64(c64, C.HUGE_PAGES_SINCE),
    },
    io: {
      failedReads: get64(c64, C.FAILED_READS),
      failedWrites: get64(c64, C.FAILED_WRITES),
      invalidIo: get64(c64, C.INVALID_IO),
      notifyFree: get64(c64, C.NOTIFY_FREE),
    },
    bd: {
      bdCount: get64(c64, C.BD_COUNT),
      bdReads: get64(c64, C.BD_READS),
      bdWrites: get64(c64, C.BD_WRITES),
    },
    debug: { writestall: get64(c64, C.WRITESTALL), missFree: get64(c64, C.MISS_FREE) },
  };
}

/**
 * Recounts pages_stored, same_pages, huge_pages, compr_data_size and bd_count
 * from the slots: the repair for counters a thread killed between a slot update
 * and its counter update left off by one; and frees backing blocks no slot names
 * (a writeback killed between taking a block and installing it). Only while no
 * I/O runs (it would race with live updates). Returns how many counters changed
 * plus blocks freed.
 */
export function recountStats(d: DeviceState): number {
  const slots = d.slots;
  slots.refresh();
  const named = new Set<number>();
  let stored = 0;
  let same = 0;
  let huge = 0;
  let compr = 0;
  let wb = 0;
  const pages = devicePages(d);
  for (let i = 0; i < pages; i++) {
    const f = slots.flags(i);
    if (!SlotTable.allocated(f)) continue;
    stored++;
    if (f & ZRAM_HUGE) huge++;
    if (f & ZRAM_SAME) same++;
    else if (f & ZRAM_WB) {
      wb++;
      named.add(slots.handle(i));
    } else compr += f & SIZE_MASK;
  }
  let changed = 0;
  const nblocks = Atomics.load(d.st, S.BACKING_BLOCKS);
  for (let blk = 1; blk < nblocks; blk++) {
    if (d.backing.blockUsed(blk) && !named.has(blk)) {
      d.backing.freeBlock(blk);
      changed++;
    }
  }
  const set = (k: C, v: number) => {
    if (Atomics.exchange(d.c64, k, BigInt(v)) !== BigInt(v)) changed++;
  };
  set(C.PAGES_STORED, stored);
  set(C.SAME_PAGES, same);
  set(C.HUGE_PAGES, huge);
  set(C.COMPR_DATA_SIZE, compr);
  set(C.BD_COUNT, wb);
  return changed;
}

/**
 * Full consistency check (run it while no I/O is in flight): the pool's own verify(),
 * then every slot against the counters (pages_stored, same_pages, huge_pages,
 * compr_data_size, bd_count), every object's size against the pool, and every
 * written-back slot against the backing bitmap. Throws on the first broken invariant.
 */
export function verify(d: DeviceState): void {
  d.pool.verify();
  const slots = d.slots;
  const pages = devicePages(d);
  let stored = 0;
  let same = 0;
  let huge = 0;
  let compr = 0;
  let wb = 0;
  const blocks = new Set<number>();
  const fail = (msg: string): never => {
    throw new Error(`zram verify: ${msg}`);
  };
  slots.refresh();
  for (let i = 0; i < pages; i++) {
    const f = slots.flags(i);
    if (f & ZRAM_ENTRY_LOCK) fail(`slot ${i} is locked`);
    if (f & ZRAM_PP_SLOT) fail(`slot ${i} still marked for post-processing`);
    if (!SlotTable.allocated(f)) {
      if (f & ~ZRAM_ENTRY_LOCK) fail(`empty slot ${i} has flags ${f.toString(16)}`);
      if (slots.handle(i) !== 0) fail(`empty slot ${i} has a handle`);
      continue;
    }
    stored++;
    const kinds = (f & ZRAM_SAME ? 1 : 0) + (f & ZRAM_WB ? 1 : 0) + (f & SIZE_MASK ? 1 : 0);
    if (kinds !== 1) fail(`slot ${i} is more than one of same/written back/stored (flags ${f.toString(16)})`);
    if (f & ZRAM_HUGE) huge++;
    if (f & ZRAM_SAME) {
      same++;
    } else if (f & ZRAM_WB) {
      const b = slots.handle(i);
      if (b <= 0 || !d.backing.blockUsed(b)) fail(`slot ${i} points to free backing block ${b}`);
      if (blocks.has(b)) fail(`backing block ${b} used twice`);
      blocks.add(b);
      wb++;
    } else {
      const size = f & SIZE_MASK;
      const objSize = d.pool.objSize(slots.handle(i));
      if (objSize !== size) fail(`slot ${i}: size ${size}, pool object ${objSize}`);
      if (((f & ZRAM_HUGE) !== 0) !== (size === PAGE)) fail(`slot ${i}: huge flag and size ${size} disagree`);
      compr += size;
    }
  }
  const check = (name: string, counter: number, actual: number) => {
    if (counter !== actual) fail(`${name} is ${counter}, slots say ${actual}`);
  };
  check('pages_stored', get64(d.c64, C.PAGES_STORED), stored);
  check('same_pages', get64(d.c64, C.SAME_PAGES), same);
  check('huge_pages', get64(d.c64, C.HUGE_PAGES), huge);
  check('compr_data_size', get64(d.c64, C.COMPR_DATA_SIZE), compr);
  check('bd_count', get64(d.c64, C.BD_COUNT), wb);
  let bits = 0;
  const nblocks = Atomics.load(d.st, S.BACKING_BLOCKS);
  for (let b = 0; b < nblocks; b++) if (d.backing.blockUsed(b)) bits++;
  check('backing bitmap population', bits, wb);
}

/**
 * verify() for a device other threads may be using: a slot that is locked or
 * marked for post-processing is in use, not damage; counter drift is recounted.
 */
export function verifyQuiet(d: DeviceState): void {
  d.pool.verify();
  const slots = d.slots;
  slots.refresh();
  for (let i = 0; i < devicePages(d); i++) {
    if (!slots.trylock(i)) continue; // in use by a live thread
    try {
      const f = slots.flags(i);
      if (!SlotTable.allocated(f) && (f & ~ZRAM_ENTRY_LOCK) === 0) {
        // a thread killed inside installLocked (handle written, flags not yet): the
        // slot is empty and reads as zeros; its words are cleared, the object leaks
        if (slots.handle(i) !== 0 || slots.fillHigh(i) !== 0) {
          slots.setHandle(i, 0);
          slots.setFillHigh(i, 0);
          slots.setAccessTime(i, 0);
        }
        continue;
      }
      if (f & ZRAM_PP_SLOT || !SlotTable.allocated(f) || f & (ZRAM_SAME | ZRAM_WB)) continue;
      const size = f & SIZE_MASK;
      const h = slots.handle(i);
      let obj = -1;
      try {
        obj = d.pool.objSize(h);
      } catch {
        // a freed handle
      }
      if (obj !== size) throw new Error(`slot ${i} points to handle ${h} (object size ${obj}, slot says ${size})`);
    } finally {
      slots.unlock(i);
    }
  }
}
