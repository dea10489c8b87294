// Physical memory: 4 KiB frames in shared memory, a descriptor per frame (the
// kernel's struct page) and the buddy allocator (orders 0..MAX_ORDER) with its free
// lists and the zone lock. An optional movable-only region (CMA-like) has free
// lists of its own that only movable allocations (zspage frames) may take from.
//
// Memory comes in max-order steps (4 MiB) as allocations need it, never given back.
// It is a row of segments, each one growable SharedArrayBuffer of up to 4 GiB (the
// most a growable buffer can reserve on Node 20, and the most elements a typed array
// holds): segment k holds frames [k * segmentFrames, (k + 1) * segmentFrames). Every
// segment is reserved (address space only) when the pool is created, so other
// threads receive them all up front; each step grows the segment its frames fall in,
// so the process's memory follows what is used. Segments are whole max-order blocks,
// so no buddy block straddles two; a zspage's frames may lie in different segments.
// Each thread sees a segment through one Int32 view and one byte view: a frame's
// words are wordsOf(pfn)[wordIndex(pfn, off)], its bytes bytesAt(addr)[byteIndex(addr)].
// Frame numbers go up to PHYS_MAX_FRAMES (32 GiB: what a location word can name).
// A pool may ask for smaller segments (segmentBytes), a testing knob that puts
// segment boundaries inside a small pool.
//
// Per-CPU page lists (the kernel's per-cpu pagesets): order-0 frames freed by a
// CPU wait on that CPU's list and serve its next movable order-0 allocations (a
// zspage's frames, a migration's target), so a frame freed and taken again costs
// no buddy split and merge and stays warm in that CPU's cache. A list holds at
// most `high` frames, moved to and from the buddy lists `batch` at a time; both
// scale with the pool (a small pool keeps few frames away from the buddy lists).
// As in the kernel, listed frames are free but not counted in the free pages nor
// in buddyinfo; an allocation that finds no free block drains every list (and so
// does a thread's own compaction as it checks for a free block). The lists live
// in the zone block and are changed under the zone lock only, so a thread's death
// inside it leaves nothing the free-list check and rebuild do not cover.
//
// The zone lock is innermost (the lock order is written in lock-classes.ts).

import { MAX_ORDER, NR_ORDERS, PAGE_SIZE } from './constants.js';
import { MAX_CPUS } from './cpu-registry.js';
import { ZsError } from './errors.js';
import type { LockContext } from './locks.js';
import { SITE_UNKNOWN, SITE_ZONE_ALLOC, SITE_ZONE_FREE } from './lock-classes.js';
import { LOCATION_PFN_LIMIT } from './location.js';
import {
  PG_BUDDY,
  PG_NEW,
  PG_PCP,
  clearPageDesc,
  frameBase,
  getBuddyNext,
  getBuddyPrev,
  getFlags,
  getOrder,
  pageDescBytes,
  setBuddyNext,
  setBuddyPrev,
  setFirstObjOffset,
  setFlags,
  setNextPfn,
  setOrder,
  setPagePrivate,
  setZspageOf,
} from './page-desc.js';

// The frame descriptors' layout, flags and accessors live in page-desc.ts.
export {
  FD_FIRST_OBJ,
  FD_FLAGS,
  FD_LNEXT,
  FD_LPREV,
  FD_NEXT,
  FD_ORDER,
  FD_PRIVATE,
  FD_WORDS,
  FD_ZSPAGE,
  PG_BUDDY,
  PG_HUGE,
  PG_ISOLATED,
  PG_NEW,
  PG_PCP,
  PG_RESERVED,
  PG_TAIL,
  PG_ZSPAGE,
} from './page-desc.js';

// ---- zone control block: Int32 words
export const Z_LOCK = 0;
export const Z_PRESENT = 2; // frames backed by the SAB so far
export const Z_MAX = 3; // cap in frames
export const Z_FREE_PAGES = 4;
export const Z_CMA_START = 5;
export const Z_CMA_END = 6;
export const Z_GROWS = 7;
export const Z_HEADS = 8; // [2][NR_ORDERS] list heads
export const Z_COUNTS = Z_HEADS + 2 * NR_ORDERS; // [2][NR_ORDERS] block counts
export const Z_SEG_SHIFT = Z_COUNTS + 2 * NR_ORDERS; // log2 of frames per segment
/** Frames one CPU's page list holds at most (0: no lists), and frames moved to or from the buddy lists at once. */
export const Z_PCP_HIGH = Z_SEG_SHIFT + 1;
export const Z_PCP_BATCH = Z_PCP_HIGH + 1;
/** [MAX_CPUS] page lists: a count, then up to PCP_MAX_HIGH frame numbers (the newest last). */
export const Z_PCP = Z_PCP_BATCH + 1;
export const PCP_MAX_HIGH = 32;
const PCP_STRIDE = 1 + PCP_MAX_HIGH;
/** Index in the zone block of CPU cpu's page list: its count, then its frames. */
export function pcpListAt(cpu: number): number {
  return Z_PCP + cpu * PCP_STRIDE;
}
export const ZONE_WORDS = Z_PCP + MAX_CPUS * PCP_STRIDE;

// Module-local copies for the hot paths below (frame copy, zone lock, page lists): the
// engine folds a module's own constants into its compiled code, but loads and checks an
// exported or imported one at every use (docs/design.md, "The shared-memory model").
const PAGE = PAGE_SIZE;
const ZONE_LOCK = Z_LOCK;
const PCP_HIGH = Z_PCP_HIGH;
const PCP_BATCH = Z_PCP_BATCH;
const ON_PCP = PG_PCP;
const TAKEN = PG_NEW;
const ALLOC_SITE = SITE_ZONE_ALLOC;
const FREE_SITE = SITE_ZONE_FREE;
const UNKNOWN_SITE = SITE_UNKNOWN;

/** A CPU's page list size for a pool of maxFrames: one frame per 2 MiB, at most PCP_MAX_HIGH. */
export function pcpHigh(maxFrames: number): number {
  return Math.min(PCP_MAX_HIGH, maxFrames >>> 9);
}

export const MT_NORMAL = 0;
export const MT_CMA = 1;

/** Frames added per growth of the SAB: one max-order block (4 MiB). */
const GROW_FRAMES = 1 << MAX_ORDER;

/** Largest segment: the most one growable SharedArrayBuffer can reserve on Node 20 (and a byte view's length). */
export const SEGMENT_MAX_BYTES = 2 ** 32;
/** Smallest segment: one max-order block, so no buddy block straddles two segments. */
export const SEGMENT_MIN_BYTES = GROW_FRAMES * PAGE_SIZE;
/** Most frames a pool can have: what a location word names (32 GiB). */
export const PHYS_MAX_FRAMES = LOCATION_PFN_LIMIT;
/** Words of a frame (the shift below is log2 of it). */
const FRAME_WORD_SHIFT = 10;

export interface PhysMemShared {
  /**
   * The frames' memory: growable buffers, segment k holding frames from
   * k << zone[Z_SEG_SHIFT]; all but the last are full-size segments.
   */
  segments: SharedArrayBuffer[];
  frames: SharedArrayBuffer;
  zone: SharedArrayBuffer;
}

/** Checks a segment size: a power of two from SEGMENT_MIN_BYTES to SEGMENT_MAX_BYTES. */
export function assertSegmentBytes(bytes: number): void {
  if (
    typeof bytes !== 'number' ||
    !Number.isInteger(bytes) ||
    bytes < SEGMENT_MIN_BYTES ||
    bytes > SEGMENT_MAX_BYTES ||
    2 ** Math.round(Math.log2(bytes)) !== bytes
  )
    throw new ZsError(
      'EINVAL',
      `segmentBytes must be a power of two from ${SEGMENT_MIN_BYTES} to ${SEGMENT_MAX_BYTES}, got ${String(bytes)}`,
    );
}

/** Reserves the segments of maxFrames frames (address space; nothing is committed until grown). */
function reserveSegments(maxFrames: number, segFrames: number): SharedArrayBuffer[] {
  const out: SharedArrayBuffer[] = [];
  for (let first = 0; first < maxFrames; first += segFrames) {
    const bytes = frameBase(Math.min(segFrames, maxFrames - first));
    try {
      out.push(new SharedArrayBuffer(0, { maxByteLength: bytes }));
    } catch (e) {
      throw new ZsError(
        'ENOMEM',
        `cannot reserve ${bytes} bytes for segment ${out.length} of pool memory: ${(e as Error).message}`,
      );
    }
  }
  return out;
}

export function createPhysMemShared(
  maxFrames: number,
  cmaFrames: number,
  segmentBytes: number = SEGMENT_MAX_BYTES,
): PhysMemShared {
  if (!Number.isInteger(maxFrames) || maxFrames < 1 || maxFrames > PHYS_MAX_FRAMES)
    throw new ZsError('EINVAL', `a pool has 1..${PHYS_MAX_FRAMES} frames, got ${maxFrames}`);
  assertSegmentBytes(segmentBytes);
  const segFrames = segmentBytes / PAGE_SIZE;
  const segments = reserveSegments(maxFrames, segFrames);
  const frames = new SharedArrayBuffer(pageDescBytes(maxFrames));
  const zone = new SharedArrayBuffer(ZONE_WORDS * 4);
  const z = new Int32Array(zone);
  z[Z_MAX] = maxFrames;
  z[Z_SEG_SHIFT] = Math.round(Math.log2(segFrames));
  for (let k = 0; k < 2 * NR_ORDERS; k++) z[Z_HEADS + k] = -1;
  z[Z_PCP_HIGH] = pcpHigh(maxFrames);
  z[Z_PCP_BATCH] = Math.max(1, z[Z_PCP_HIGH]! >>> 2);
  if (cmaFrames > 0) {
    // The movable-only region sits at the bottom of memory (backed first), in whole
    // max-order blocks so no buddy block straddles its edge.
    const size = Math.min(maxFrames, Math.ceil(cmaFrames / GROW_FRAMES) * GROW_FRAMES);
    z[Z_CMA_START] = 0;
    z[Z_CMA_END] = size;
  } else {
    z[Z_CMA_START] = maxFrames;
    z[Z_CMA_END] = maxFrames;
  }
  return { segments, frames, zone };
}

export class PhysMem {
  readonly shared: PhysMemShared;
  readonly fd: Int32Array;
  readonly zone: Int32Array;
  /** log2 of frames per segment; segMask: a frame's number within its segment. */
  readonly segShift: number;
  readonly segMask: number;
  /** Bytes per (full) segment, and its reciprocal (exact: a power of two). */
  readonly segSize: number;
  private readonly segScale: number;
  /**
   * This thread's views of each segment, over the frames it held when last refreshed
   * (fixed-length views: fast). A segment not yet grown has empty views.
   */
  segWords: Int32Array[];
  segBytes: Uint8Array[];
  /** Frames the views cover, from frame 0. */
  viewFrames: number;
  private readonly locks: LockContext;
  private readonly zoneLockCls: number;
  /** This CPU's page list in the zone block. */
  private readonly pcpAt: number;
  /** Frames on their way between a page list and the buddy lists (this thread's own scratch). */
  private readonly pcpMoving = new Int32Array(PCP_MAX_HIGH);

  constructor(shared: PhysMemShared, locks: LockContext, zoneLockCls: number) {
    this.shared = shared;
    this.fd = new Int32Array(shared.frames);
    this.zone = new Int32Array(shared.zone);
    this.locks = locks;
    this.zoneLockCls = zoneLockCls;
    this.segShift = this.zone[Z_SEG_SHIFT]!;
    this.segMask = (1 << this.segShift) - 1;
    this.segSize = frameBase(1 << this.segShift);
    this.segScale = 1 / this.segSize;
    this.pcpAt = pcpListAt(locks.cpu);
    this.viewFrames = 0;
    this.segWords = shared.segments.map(() => new Int32Array(0));
    this.segBytes = shared.segments.map(() => new Uint8Array(0));
    this.refresh();
  }

  get maxFrames(): number {
    return this.zone[Z_MAX]!;
  }
  get presentFrames(): number {
    return Atomics.load(this.zone, Z_PRESENT);
  }
  /** Number of segments. */
  get segmentCount(): number {
    return this.shared.segments.length;
  }

  /** Re-creates the views of segments that grew (another thread may have grown them). */
  refresh(): void {
    const segs = this.shared.segments;
    let k = this.viewFrames >> this.segShift;
    let frames = k << this.segShift;
    for (; k < segs.length; k++) {
      const seg = segs[k]!;
      const len = seg.byteLength;
      if (len !== this.segBytes[k]!.length) {
        this.segBytes[k] = new Uint8Array(seg, 0, len);
        this.segWords[k] = new Int32Array(seg, 0, len / 4);
      }
      frames += len / PAGE_SIZE;
      if (len < seg.maxByteLength) break; // segments grow in order: the rest are empty
    }
    this.viewFrames = frames;
  }

  // ---- frame addressing: which view holds a frame, and where in it

  /** The Int32 view holding frame pfn's words; index it with wordIndex(pfn, off). */
  wordsOf(pfn: number): Int32Array {
    return this.segWords[pfn >> this.segShift]!;
  }
  /** Index in wordsOf(pfn) of the word at byte `off` (a multiple of 4) of frame pfn. */
  wordIndex(pfn: number, off: number): number {
    return ((pfn & this.segMask) << FRAME_WORD_SHIFT) + (off >> 2);
  }
  /** The byte view holding byte address addr (frameByte); index it with byteIndex(addr). */
  bytesAt(addr: number): Uint8Array {
    return this.segBytes[Math.floor(addr * this.segScale)]!;
  }
  /** Index of byte address addr in bytesAt(addr). */
  byteIndex(addr: number): number {
    return addr - Math.floor(addr * this.segScale) * this.segSize;
  }

  /** Copies frame `from` over frame `to` (another thread may have grown memory for either). */
  copyFrame(to: number, from: number): void {
    this.ensure(Math.max(to, from));
    const s = this.segBytes[from >> this.segShift]!;
    const d = this.segBytes[to >> this.segShift]!;
    const so = (from & this.segMask) * PAGE;
    const dof = (to & this.segMask) * PAGE;
    if (s === d) s.copyWithin(dof, so, so + PAGE);
    else d.set(s.subarray(so, so + PAGE), dof);
  }

  /** Makes sure frame `pfn` is inside this thread's views. */
  ensure(pfn: number): void {
    if (pfn >= this.viewFrames) this.refresh();
  }

  zoneLock(site = UNKNOWN_SITE): void {
    this.locks.mutexLock(this.zone, ZONE_LOCK, this.zoneLockCls, site);
  }
  zoneUnlock(): void {
    this.locks.mutexUnlock(this.zone, ZONE_LOCK);
  }

  migratetypeOf(pfn: number): number {
    return pfn >= this.zone[Z_CMA_START]! && pfn < this.zone[Z_CMA_END]! ? MT_CMA : MT_NORMAL;
  }

  // ---------------------------------------------------------------- free lists (zone lock held)

  private listAdd(pfn: number, order: number, mt: number): void {
    const fd = this.fd;
    const z = this.zone;
    const h = Z_HEADS + mt * NR_ORDERS + order;
    const head = z[h]!;
    setFlags(fd, pfn, PG_BUDDY);
    setOrder(fd, pfn, order);
    setBuddyPrev(fd, pfn, -1);
    setBuddyNext(fd, pfn, head);
    if (head >= 0) setBuddyPrev(fd, head, pfn);
    z[h] = pfn;
    z[Z_COUNTS + mt * NR_ORDERS + order]!++;
  }

  private listDel(pfn: number, order: number, mt: number): void {
    const fd = this.fd;
    const z = this.zone;
    const prev = getBuddyPrev(fd, pfn);
    const next = getBuddyNext(fd, pfn);
    if (prev >= 0) setBuddyNext(fd, prev, next);
    else z[Z_HEADS + mt * NR_ORDERS + order] = next;
    if (next >= 0) setBuddyPrev(fd, next, prev);
    setFlags(fd, pfn, 0);
    setBuddyPrev(fd, pfn, -1);
    setBuddyNext(fd, pfn, -1);
    z[Z_COUNTS + mt * NR_ORDERS + order]!--;
  }

  /** Frees a block into the lists, merging with free buddies. Zone lock held. */
  private freeBlockLocked(pfn: number, order: number): void {
    const fd = this.fd;
    const present = this.zone[Z_PRESENT]!;
    const mt = this.migratetypeOf(pfn);
    this.zone[Z_FREE_PAGES]! += 1 << order;
    while (order < MAX_ORDER) {
      const buddy = pfn ^ (1 << order);
      if (buddy + (1 << order) > present) break;
      if (getFlags(fd, buddy) !== PG_BUDDY || getOrder(fd, buddy) !== order || this.migratetypeOf(buddy) !== mt) break;
      this.listDel(buddy, order, mt);
      setOrder(fd, buddy, 0);
      if (buddy < pfn) {
        setOrder(fd, pfn, 0);
        pfn = buddy;
      }
      order++;
    }
    this.listAdd(pfn, order, mt);
  }

  /** Grows the SAB by up to one max-order block. Zone lock held. */
  private growLocked(): boolean {
    const z = this.zone;
    const present = z[Z_PRESENT]!;
    const max = z[Z_MAX]!;
    if (present >= max) return false;
    const target = Math.min(max, present + GROW_FRAMES);
    // a step stays inside one segment (segments are whole steps; only the last is shorter)
    const seg = present >> this.segShift;
    this.shared.segments[seg]!.grow(frameBase(target - (seg << this.segShift)));
    Atomics.store(z, Z_PRESENT, target);
    z[Z_GROWS]!++;
    let pfn = present;
    while (pfn < target) {
      let order = MAX_ORDER;
      while (order > 0 && ((pfn & ((1 << order) - 1)) !== 0 || pfn + (1 << order) > target)) order--;
      clearPageDesc(this.fd, pfn);
      this.freeBlockLocked(pfn, order);
      pfn += 1 << order;
    }
    return true;
  }

  private takeLocked(order: number, mt: number): number {
    const z = this.zone;
    for (let o = order; o <= MAX_ORDER; o++) {
      const pfn = z[Z_HEADS + mt * NR_ORDERS + o]!;
      if (pfn < 0) continue;
      this.listDel(pfn, o, mt);
      // Split: keep the low half, give back the high halves.
      let cur = o;
      while (cur > order) {
        cur--;
        this.listAdd(pfn + (1 << cur), cur, mt);
      }
      setOrder(this.fd, pfn, order);
      z[Z_FREE_PAGES]! -= 1 << order;
      return pfn;
    }
    return -1;
  }

  /**
   * Allocates a 2^order block; -1 when none is free even after growing.
   * Movable allocations take from the movable-only region first, so it gets used.
   */
  allocBlock(order: number, movable: boolean): number {
    this.zoneLock(ALLOC_SITE);
    try {
      return this.allocLocked(order, movable);
    } finally {
      this.zoneUnlock();
    }
  }

  /** A 2^order block, growing memory if needed; -1 when none. Zone lock held. */
  private allocLocked(order: number, movable: boolean): number {
    let drained = false;
    for (;;) {
      let pfn = -1;
      if (order === 0 && movable && this.zone[PCP_HIGH] !== 0) pfn = this.pcpAllocLocked();
      else {
        if (movable) pfn = this.takeLocked(order, MT_CMA);
        if (pfn < 0) pfn = this.takeLocked(order, MT_NORMAL);
      }
      if (pfn >= 0) {
        this.takenLocked(pfn);
        return pfn;
      }
      if (this.growLocked()) continue;
      // the last free frames may wait on CPUs' page lists: back to the buddy lists, where they merge
      if (drained || this.drainAllLocked() === 0) return -1;
      drained = true;
    }
  }

  /**
   * One order-0 movable frame (a migration's target), -1 when none is free: from
   * this CPU's page list when it has one, in a hold of the zone lock with nothing
   * else in it; otherwise as allocBlock(0, true).
   */
  allocFrame(): number {
    const z = this.zone;
    const at = this.pcpAt;
    this.zoneLock(ALLOC_SITE);
    const n = z[at]! - 1;
    if (n < 0) return this.allocFrameSlowLocked();
    z[at] = n;
    const pfn = z[at + 1 + n]!;
    this.takenLocked(pfn);
    this.zoneUnlock();
    return pfn;
  }

  /** allocFrame with this CPU's page list empty (zone lock held; dropped here). */
  private allocFrameSlowLocked(): number {
    try {
      return this.allocLocked(0, true);
    } finally {
      this.zoneUnlock();
    }
  }

  /**
   * Frees one order-0 frame (a migration's source) onto this CPU's page list, in a
   * hold of the zone lock with nothing else in it when the list has room; otherwise
   * as freeBlock(pfn, 0).
   */
  freeFrame(pfn: number): void {
    const z = this.zone;
    const at = this.pcpAt;
    this.zoneLock(FREE_SITE);
    const n = z[at]!;
    if (n >= z[PCP_HIGH]!) {
      this.freeFrameSlowLocked(pfn);
      return;
    }
    this.clearFrameLocked(pfn);
    setFlags(this.fd, pfn, ON_PCP);
    z[at + 1 + n] = pfn;
    z[at] = n + 1;
    this.zoneUnlock();
  }

  /** freeFrame with this CPU's page list full or absent (zone lock held; dropped here). */
  private freeFrameSlowLocked(pfn: number): void {
    try {
      this.releasePcpLocked(pfn);
    } finally {
      this.zoneUnlock();
    }
  }

  /**
   * Tags a frame just taken off a free list, not yet owned: under the lock, so a
   * repair after a thread's death never mistakes it for a free frame (see pool-repair.ts).
   */
  private takenLocked(pfn: number): void {
    const fd = this.fd;
    setFlags(fd, pfn, TAKEN);
    setNextPfn(fd, pfn, -1);
    setBuddyPrev(fd, pfn, -1);
    setBuddyNext(fd, pfn, -1);
  }

  /**
   * Allocates `n` order-0 movable frames (a zspage's chain) under one hold of the
   * zone lock, into out[0..n). All or nothing: false, with nothing taken, when
   * memory runs out.
   */
  allocFrames(out: Int32Array, n: number, owner = 0): boolean {
    this.zoneLock(ALLOC_SITE);
    try {
      for (let i = 0; i < n; i++) {
        const pfn = this.allocLocked(0, true);
        if (pfn < 0) {
          for (let j = 0; j < i; j++) this.releaseLocked(out[j]!, 0);
          return false;
        }
        // the zspage being built, named under the lock (a builder's death leaves them recognisable)
        setZspageOf(this.fd, pfn, owner);
        out[i] = pfn;
      }
    } finally {
      this.zoneUnlock();
    }
    // the views must cover every frame taken (memory may have grown meanwhile)
    let max = 0;
    for (let i = 0; i < n; i++) if (out[i]! > max) max = out[i]!;
    this.ensure(max);
    return true;
  }

  freeBlock(pfn: number, order: number): void {
    this.zoneLock(FREE_SITE);
    try {
      if (order === 0) this.releasePcpLocked(pfn);
      else this.releaseLocked(pfn, order);
    } finally {
      this.zoneUnlock();
    }
  }

  /** Frees list[0..n), order-0 frames, under one hold of the zone lock. */
  freeFrames(list: Int32Array, n: number): void {
    if (n === 0) return;
    this.zoneLock(FREE_SITE);
    try {
      for (let i = 0; i < n; i++) this.releasePcpLocked(list[i]!);
    } finally {
      this.zoneUnlock();
    }
  }

  /** Clears a block's descriptors and gives it back to the buddy lists. Zone lock held. */
  private releaseLocked(pfn: number, order: number): void {
    this.clearBlockLocked(pfn, order);
    this.freeBlockLocked(pfn, order);
  }

  /** Clears an order-0 frame's descriptor and puts it on this CPU's page list. Zone lock held. */
  private releasePcpLocked(pfn: number): void {
    this.clearBlockLocked(pfn, 0);
    this.pcpFreeLocked(pfn);
  }

  private clearBlockLocked(pfn: number, order: number): void {
    for (let k = 0; k < 1 << order; k++) this.clearFrameLocked(pfn + k);
  }

  /** Clears a frame's descriptor on its way to a free list. Zone lock held. */
  private clearFrameLocked(pfn: number): void {
    const fd = this.fd;
    setFlags(fd, pfn, 0);
    setZspageOf(fd, pfn, 0);
    setFirstObjOffset(fd, pfn, 0);
    setNextPfn(fd, pfn, -1);
    setPagePrivate(fd, pfn, 0);
    setOrder(fd, pfn, 0);
  }

  // ---------------------------------------------------------------- per-CPU page lists (zone lock held)

  /** Puts a cleared order-0 frame on this CPU's list; a full list first gives its oldest batch back. */
  private pcpFreeLocked(pfn: number): void {
    const z = this.zone;
    const high = z[PCP_HIGH]!;
    if (high === 0) {
      this.freeBlockLocked(pfn, 0);
      return;
    }
    const at = this.pcpAt;
    let n = z[at]!;
    if (n >= high) n = this.pcpTrimLocked(at, n, z[PCP_BATCH]!);
    setFlags(this.fd, pfn, ON_PCP);
    z[at + 1 + n] = pfn;
    z[at] = n + 1;
  }

  /**
   * An order-0 frame from this CPU's list, which an empty list first refills with
   * a batch from the buddy lists (handed out in ascending order, as the buddy
   * allocator would); -1 when the buddy lists have none.
   */
  private pcpAllocLocked(): number {
    const z = this.zone;
    const at = this.pcpAt;
    let n = z[at]!;
    if (n === 0) {
      // Taken into this thread's scratch first, then listed with the first frame taken
      // on top (handed out first) and the count written once. A death on the way
      // leaves frames off every list (leaked, found by the check), never a frame on
      // two lists or twice on one.
      const batch = z[PCP_BATCH]!;
      const moving = this.pcpMoving;
      for (; n < batch; n++) {
        let pfn = this.takeLocked(0, MT_CMA);
        if (pfn < 0) pfn = this.takeLocked(0, MT_NORMAL);
        if (pfn < 0) break;
        setFlags(this.fd, pfn, ON_PCP);
        moving[n] = pfn;
      }
      if (n === 0) return -1;
      for (let i = 0; i < n; i++) z[at + n - i] = moving[i]!;
      z[at] = n;
    }
    n--;
    z[at] = n;
    return z[at + 1 + n]!;
  }

  /**
   * Gives the k oldest frames of the list at `at` (holding n) back to the buddy lists;
   * returns how many stay. The list is shortened before any frame is freed, so a
   * death on the way leaves frames off every list (leaked, found by the check),
   * never a frame both listed and free.
   */
  private pcpTrimLocked(at: number, n: number, k: number): number {
    const z = this.zone;
    const moving = this.pcpMoving;
    if (k > n) k = n;
    for (let i = 0; i < k; i++) moving[i] = z[at + 1 + i]!;
    z[at] = n - k; // the newest k are off the list until the move below puts them back
    z.copyWithin(at + 1, at + 1 + k, at + 1 + n);
    for (let i = 0; i < k; i++) {
      const pfn = moving[i]!;
      setFlags(this.fd, pfn, 0);
      this.freeBlockLocked(pfn, 0);
    }
    return n - k;
  }

  /** Empties every CPU's page list into the buddy lists (drain_all_pages). Returns frames moved. */
  private drainAllLocked(): number {
    let moved = 0;
    for (let cpu = 0; cpu < MAX_CPUS; cpu++) {
      const at = pcpListAt(cpu);
      const n = this.zone[at]!;
      if (n > 0) moved += n - this.pcpTrimLocked(at, n, n);
    }
    return moved;
  }

  /** Empties every CPU's page list into the buddy lists. */
  drainAll(): number {
    this.zoneLock(SITE_ZONE_FREE);
    try {
      return this.drainAllLocked();
    } finally {
      this.zoneUnlock();
    }
  }

  /** Empties this CPU's page list into the buddy lists (drain_local_pages), so its frames can merge. */
  drainLocal(): void {
    if (this.zone[this.pcpAt] === 0) return; // a plain look: only this CPU fills its list
    this.zoneLock(SITE_ZONE_FREE);
    try {
      const n = this.zone[this.pcpAt]!;
      this.pcpTrimLocked(this.pcpAt, n, n);
    } finally {
      this.zoneUnlock();
    }
  }

  /** Frames on CPUs' page lists (free, but neither in the buddy lists nor counted in freePages). */
  pcpFrames(): number {
    let n = 0;
    for (let cpu = 0; cpu < MAX_CPUS; cpu++) n += Atomics.load(this.zone, pcpListAt(cpu));
    return n;
  }

  /**
   * Takes a specific free order-0 frame out of the free lists (the frame compactor's
   * free scanner uses this to pick migration targets). Returns false if it is not free.
   * Zone lock held by the caller.
   */
  isolateFreeFrameLocked(pfn: number): boolean {
    // Find the free block containing pfn.
    const fd = this.fd;
    for (let order = 0; order <= MAX_ORDER; order++) {
      const head = pfn & ~((1 << order) - 1);
      if (getFlags(fd, head) === PG_BUDDY && getOrder(fd, head) === order) {
        const mt = this.migratetypeOf(head);
        this.listDel(head, order, mt);
        this.zone[Z_FREE_PAGES]! -= 1 << order;
        // Give back everything but pfn.
        let cur = order;
        let base = head;
        while (cur > 0) {
          cur--;
          const half = 1 << cur;
          if (pfn < base + half) {
            this.listAdd(base + half, cur, mt);
            this.zone[Z_FREE_PAGES]! += half;
          } else {
            this.listAdd(base, cur, mt);
            this.zone[Z_FREE_PAGES]! += half;
            base += half;
          }
        }
        setFlags(fd, pfn, PG_NEW); // taken, not yet owned (as allocLocked)
        setOrder(fd, pfn, 0);
        setNextPfn(fd, pfn, -1);
        return true;
      }
    }
    return false;
  }

  /** Gives one order-0 frame back to the free lists. Zone lock held (repair after a death). */
  releaseFrameLocked(pfn: number): void {
    this.releaseLocked(pfn, 0);
  }

  /**
   * Rebuilds the free lists from scratch (a thread died inside the zone lock, in the
   * middle of a list update): every present frame `inUse` does not claim is free,
   * merged into the largest blocks. Zone lock held. Returns the free frames.
   */
  rebuildFreeListsLocked(inUse: (pfn: number) => boolean): number {
    const z = this.zone;
    const fd = this.fd;
    for (let k = 0; k < 2 * NR_ORDERS; k++) {
      z[Z_HEADS + k] = -1;
      z[Z_COUNTS + k] = 0;
    }
    z[Z_FREE_PAGES] = 0;
    for (let cpu = 0; cpu < MAX_CPUS; cpu++) z[pcpListAt(cpu)] = 0;
    const present = z[Z_PRESENT]!;
    for (let pfn = 0; pfn < present; pfn++) {
      if ((getFlags(fd, pfn) & ~(PG_BUDDY | PG_PCP)) !== 0 || inUse(pfn)) continue;
      setFlags(fd, pfn, 0);
      setOrder(fd, pfn, 0);
    }
    let free = 0;
    for (let pfn = 0; pfn < present; pfn++) {
      if (getFlags(fd, pfn) !== 0 || inUse(pfn)) continue;
      this.releaseLocked(pfn, 0);
      free++;
    }
    return free;
  }

  /** Free blocks per order, summed over migratetypes, as /proc/buddyinfo. */
  buddyinfo(): number[] {
    const z = this.zone;
    const out: number[] = [];
    for (let o = 0; o <= MAX_ORDER; o++)
      out.push(Atomics.load(z, Z_COUNTS + o) + Atomics.load(z, Z_COUNTS + NR_ORDERS + o));
    return out;
  }

  freePages(): number {
    return Atomics.load(this.zone, Z_FREE_PAGES);
  }

  /** The unusable free space index per order (extfrag), 0..1. */
  unusableIndex(): number[] {
    const info = this.buddyinfo();
    let total = 0;
    for (let o = 0; o <= MAX_ORDER; o++) total += info[o]! << o;
    const out: number[] = [];
    for (let order = 0; order <= MAX_ORDER; order++) {
      if (total === 0) {
        out.push(0);
        continue;
      }
      let suitable = 0;
      for (let o = order; o <= MAX_ORDER; o++) suitable += info[o]! << o;
      out.push((total - suitable) / total);
    }
    return out;
  }

  /** Checks the free lists against the descriptors. Zone lock held. Returns frames on free lists. */
  verifyFreeListsLocked(owner: Int32Array): number {
    const z = this.zone;
    const fd = this.fd;
    let free = 0;
    for (let mt = 0; mt < 2; mt++) {
      for (let o = 0; o <= MAX_ORDER; o++) {
        let n = 0;
        let prev = -1;
        for (let pfn = z[Z_HEADS + mt * NR_ORDERS + o]!; pfn >= 0; pfn = getBuddyNext(fd, pfn)) {
          if (getFlags(fd, pfn) !== PG_BUDDY)
            throw new Error(`buddy: frame ${pfn} on free list order ${o} lacks PG_BUDDY`);
          if (getOrder(fd, pfn) !== o)
            throw new Error(`buddy: frame ${pfn} on list ${o} has order ${getOrder(fd, pfn)}`);
          if (getBuddyPrev(fd, pfn) !== prev) throw new Error(`buddy: frame ${pfn} has a broken back link`);
          if ((pfn & ((1 << o) - 1)) !== 0) throw new Error(`buddy: block ${pfn} misaligned for order ${o}`);
          if (this.migratetypeOf(pfn) !== mt) throw new Error(`buddy: block ${pfn} on the wrong migratetype list`);
          for (let k = 0; k < 1 << o; k++) {
            if (owner[pfn + k] !== 0)
              throw new Error(`buddy: frame ${pfn + k} free and also owned (${owner[pfn + k]})`);
            owner[pfn + k] = -1;
          }
          free += 1 << o;
          n++;
          prev = pfn;
          if (n > z[Z_MAX]!) throw new Error('buddy: free list cycle');
        }
        if (n !== z[Z_COUNTS + mt * NR_ORDERS + o])
          throw new Error(`buddy: order ${o} count ${z[Z_COUNTS + mt * NR_ORDERS + o]} but ${n} on list`);
      }
    }
    if (free !== z[Z_FREE_PAGES]) throw new Error(`buddy: free pages ${z[Z_FREE_PAGES]} but ${free} on lists`);
    this.verifyPcpListsLocked(owner);
    return free;
  }

  /** Checks the per-CPU page lists: each names free frames marked PG_PCP, no frame twice, every marked frame listed. */
  private verifyPcpListsLocked(owner: Int32Array): void {
    const z = this.zone;
    const fd = this.fd;
    const high = z[Z_PCP_HIGH]!;
    const present = z[Z_PRESENT]!;
    let listed = 0;
    for (let cpu = 0; cpu < MAX_CPUS; cpu++) {
      const at = pcpListAt(cpu);
      const n = z[at]!;
      if (n < 0 || n > high) throw new Error(`pcp: CPU ${cpu}'s page list holds ${n} frames (high ${high})`);
      for (let i = 0; i < n; i++) {
        const pfn = z[at + 1 + i]!;
        if (pfn < 0 || pfn >= present || getFlags(fd, pfn) !== PG_PCP)
          throw new Error(`pcp: CPU ${cpu}'s page list names frame ${pfn}, which is not a listed free frame`);
        if (owner[pfn] !== 0)
          throw new Error(`pcp: frame ${pfn} on CPU ${cpu}'s page list and also owned (${owner[pfn]})`);
        owner[pfn] = -1;
        listed++;
      }
    }
    let marked = 0;
    for (let pfn = 0; pfn < present; pfn++) if ((getFlags(fd, pfn) & PG_PCP) !== 0) marked++;
    if (marked !== listed) throw new Error(`pcp: ${marked} frames marked PG_PCP but ${listed} on page lists`);
  }
}

export function assertOrder(order: number): void {
  if (!Number.isInteger(order) || order < 0 || order > MAX_ORDER) {
    throw new ZsError('EINVAL', `order must be an integer in 0..${MAX_ORDER}, got ${order}`);
  }
}
