// ZramDevice: the zram block device model on a zsmalloc pool, as one facade.
// It owns the I/O entry points (page and byte-granular read/write, discard,
// slot free notify, swap-in), the knobs (disksize, comp_algorithm, mem_limit,
// mem_used_max, reset, compact, idle, writeback, writeback_limit,
// recomp_algorithm, recompress), the stat texts and the after-death checks; the
// work is done by module functions over narrow types: slot-store.ts (into and
// out of a slot), postprocess.ts (idle, writeback, recompression), inspect.ts
// (slot state, statistics, verify), settings.ts (compression settings),
// options.ts (create options) and range.ts (byte ranges). All device state is
// in SharedArrayBuffers (slot table, counters, backing bitmap, backing path); a
// ZramDevice object is views over them plus this thread's scratch buffers and
// codec instances, so any thread can `ZramDevice.attach(dev.shared)` and do I/O
// on the same device.
//
// Locking: the per-slot ENTRY_LOCK bit (slots.ts). Writes compress and
// allocate outside it and take it only to swap the old content for the new;
// partial writes hold it across read-modify-write. zram takes pool locks
// (malloc/free) while holding a slot lock, as the kernel does; the pool never
// takes a slot lock, so the order slot lock -> pool locks has no cycle.
// Control-plane calls (setDisksize, setAlgorithm, setBackingFile, reset) must
// not race with I/O, as in the kernel, where they need the device unused.

import { ZsError, ZsPool, atomicOps } from '@zsmalloc/core';
import { AlgorithmParamsStore, parseAlgorithmParams, type AlgorithmParamsRequest } from './algorithm-params.js';
import { BackingStore, type BackingOpenOptions } from './backing.js';
import { DEFAULT_ALGORITHM, algorithmId, algorithmListing } from './codec.js';
import { PAGE, checkByteRange, checkIndex, devicePages, type ZramShared } from './device-state.js';
import * as inspect from './inspect.js';
import type { SlotState, ZramStatValues } from './inspect.js';
import { checkOptions, poolFor, type ZramOptions } from './options.js';
import * as pp from './postprocess.js';
import type { RecompressRequest, WritebackMode, WritebackRequest } from './postprocess.js';
import { isNonNegInt, newPageSpan, pageSpan } from './range.js';
import * as settings from './settings.js';
import * as store from './slot-store.js';
import { SlotTable } from './slots.js';
import {
  C,
  S,
  createStatsMemory,
  STATS_WORDS,
  bdStatText,
  debugStatText,
  get64,
  inc64,
  ioStatText,
  mmStatText,
  statsViews,
  u32,
} from './stats.js';
import { repairSlots, slotTakeoverHook } from './slot-repair.js';

export { DEFAULT_MAX_DISKSIZE, MAX_DISKSIZE, type ZramOptions } from './options.js';
export { MAX_COMPS } from './settings.js';
export type { PoolShared, ZramShared } from './device-state.js';
export type { SlotState, ZramStatValues } from './inspect.js';
export type { RecompressRequest, RecompressType, WritebackMode, WritebackRequest } from './postprocess.js';

function isUint8Array(x: unknown): x is Uint8Array {
  return x instanceof Uint8Array;
}

function checkPageBuffer(buf: Uint8Array, name: string): void {
  if (!isUint8Array(buf)) throw new TypeError(`${name} must be a Uint8Array of ${PAGE} bytes`);
  if (buf.length !== PAGE) throw new RangeError(`${name} must be exactly ${PAGE} bytes, got ${buf.length}`);
}

export class ZramDevice {
  readonly pool: ZsPool;
  readonly shared: ZramShared;

  /** The shared state's views plus this thread's codecs, clock and scratch (slot-store.ts). */
  private readonly s: store.SlotStore;
  /** The slot table (also this.s.slots). */
  private readonly slots: SlotTable;
  private readonly st: Int32Array;
  private readonly c64: BigInt64Array;
  private readonly maxPages: number;
  /** This thread's cut of a byte range into pages (read, write, discard): reused, never allocated per call. */
  private readonly span = newPageSpan();
  /** This object made its ZsPool object (create() from options, or attach()): close() detaches it. */
  private readonly ownsPool: boolean;
  private closed = false;

  private constructor(shared: ZramShared, pool: ZsPool, ownsPool: boolean) {
    this.shared = shared;
    this.pool = pool;
    this.ownsPool = ownsPool;
    const { st, c64 } = statsViews(shared.stats.buffer);
    this.st = st;
    this.c64 = c64;
    this.maxPages = shared.maxPages;
    this.slots = new SlotTable(shared.table, pool, shared.lockArrayId);
    // a slot lock taken over from a dead thread: its half-done replacement is settled first
    pool.onDeadBitHolder(shared.lockArrayId, slotTakeoverHook(pool, this.slots, shared.lockArrayId));
    this.s = store.newSlotStore(
      {
        name: shared.name,
        pool,
        slots: this.slots,
        st,
        c64,
        statOps: atomicOps(shared.stats),
        backing: new BackingStore(shared.bitmap, shared.backingPath, st, c64),
      },
      new AlgorithmParamsStore(shared.params),
    );
  }

  static create(opts: ZramOptions): ZramDevice {
    const checked = checkOptions(opts);
    const { disksize, maxPages, algId } = checked;
    const { pool, ownsPool } = poolFor(opts, checked);
    const shared: ZramShared = {
      pool: pool.shared,
      table: SlotTable.allocate(Math.ceil(disksize / PAGE), maxPages),
      stats: createStatsMemory(),
      bitmap: BackingStore.allocateBitmap(maxPages + 1),
      backingPath: new SharedArrayBuffer(4096),
      params: AlgorithmParamsStore.allocate(),
      maxPages,
      name: opts.name ?? 'zram0',
      lockArrayId: pool.newLockArrayId(),
    };
    const dev = new ZramDevice(shared, pool, ownsPool);
    const st = dev.st;
    Atomics.store(st, S.EPOCH_SEC, Math.floor(Date.now() / 1000));
    Atomics.store(st, S.COMP_ID0, algId + 1);
    if (opts.algorithmParams !== undefined) {
      const req =
        typeof opts.algorithmParams === 'string' ? parseAlgorithmParams(opts.algorithmParams) : opts.algorithmParams;
      dev.setAlgorithmParams({ ...req, priority: req.priority ?? 0 });
    }
    if (opts.backingFile !== undefined)
      dev.setBackingFile(opts.backingFile, { exclusive: opts.backingFileExclusive === true });
    if (opts.memLimit) dev.setMemLimit(opts.memLimit);
    if (disksize > 0) dev.setDisksize(disksize);
    return dev;
  }

  /**
   * This thread's view of a device created elsewhere. Pass `pool` to reuse a ZsPool
   * object this thread already has on the same pool; otherwise one is attached (and
   * close() detaches it again).
   */
  static attach(shared: ZramShared, opts?: { pool?: ZsPool }): ZramDevice {
    if (opts?.pool) return new ZramDevice(shared, opts.pool, false);
    return new ZramDevice(shared, ZsPool.attach(shared.pool), true);
  }

  // ---------------------------------------------------------------- knobs

  /** Device size in bytes (0 while uninitialized). */
  get disksize(): number {
    return devicePages(this.s) * PAGE;
  }

  /** Number of 4 KiB pages. */
  get pages(): number {
    return devicePages(this.s);
  }

  get initialized(): boolean {
    return devicePages(this.s) !== 0;
  }

  get hugeClassSize(): number {
    return this.pool.hugeClassSize;
  }

  /** disksize store: page-aligned (rounded up); EBUSY once set (until reset()). */
  setDisksize(bytes: number): void {
    if (!isNonNegInt(bytes) || bytes === 0)
      throw new ZsError('EINVAL', `disksize must be a positive integer, got ${bytes}`);
    if (this.initialized) throw new ZsError('EBUSY', 'disksize is already set; reset the device first');
    const pages = Math.ceil(bytes / PAGE);
    if (pages > this.maxPages) {
      throw new ZsError('ENOMEM', `disksize ${bytes} exceeds this device's maxDisksize ${this.maxPages * PAGE}`);
    }
    // The table is all zeros here (new, or cleared by reset()): growing it touches no memory.
    this.slots.ensure(pages);
    if (this.s.backing.configured()) this.s.backing.prepare(pages);
    Atomics.store(this.st, S.DISKSIZE_PAGES, pages);
  }

  /** comp_algorithm show: every known algorithm, the current one in brackets, kernel layout. */
  compAlgorithm(): string {
    return algorithmListing(this.algorithm);
  }

  get algorithm(): string {
    return settings.primaryAlgorithm(this.st);
  }

  /** comp_algorithm store: unknown names fail with the list of known ones; EBUSY once initialized. */
  setAlgorithm(name: string): void {
    settings.setAlgorithm(this.st, name);
  }

  /**
   * recomp_algorithm store ("algo=NAME priority=N"), N in 1..3. An empty priority can be
   * set at any time; replacing one that is set needs an uninitialized device (EBUSY),
   * since slots recompressed with it must still decompress.
   */
  setRecompAlgorithm(name: string, priority: number): void {
    settings.setRecompAlgorithm(this.st, name, priority);
  }

  /** recomp_algorithm show: "#N: " and the listing for every configured priority. */
  recompAlgorithm(): string {
    return settings.recompAlgorithmText(this.st);
  }

  /**
   * algorithm_params store: "priority=N algo=NAME level=L dict=PATH" (or the parsed
   * object). Replaces every parameter of that priority (unset ones return to the
   * algorithm's default, as in the kernel). EINVAL for a malformed string, a priority
   * without an algorithm, or a level or dictionary the algorithm does not take;
   * ZramError ENOENT/EINVAL for a missing or unusable dictionary file; EBUSY once
   * initialized. A rejected call changes nothing.
   */
  setAlgorithmParams(request: string | AlgorithmParamsRequest): void {
    settings.setAlgorithmParams(this.s, request);
  }

  /** Every configured priority's algorithm and parameters: "#N: NAME level=L dict=PATH" lines. */
  algorithmParams(): string {
    return settings.algorithmParamsText(this.s);
  }

  /** The algorithm of each priority (undefined where unset). */
  algorithms(): (string | undefined)[] {
    return settings.algorithmsByPriority(this.st);
  }

  get memLimit(): number {
    return Atomics.load(this.st, S.LIMIT_PAGES) * PAGE;
  }

  /** mem_limit store: bytes, page-aligned up; 0 = no limit; may change while the device is in use. */
  setMemLimit(bytes: number): void {
    if (!isNonNegInt(bytes)) throw new ZsError('EINVAL', `mem_limit must be a non-negative integer, got ${bytes}`);
    Atomics.store(this.st, S.LIMIT_PAGES, Math.ceil(bytes / PAGE));
  }

  get memUsedMax(): number {
    return get64(this.c64, C.MAX_USED_PAGES) * PAGE;
  }

  /** mem_used_max store of "0": restart the high-water mark from current usage. */
  resetMemUsedMax(): void {
    Atomics.store(this.c64, C.MAX_USED_PAGES, BigInt(this.pool.pagesUsed()));
  }

  get backingFile(): string {
    return this.s.backing.path();
  }

  /** backing_dev store: only while uninitialized (EBUSY otherwise). */
  setBackingFile(path: string, opts?: BackingOpenOptions): void {
    if (typeof path !== 'string' || path.length === 0)
      throw new ZsError('EINVAL', 'backing file path must be a non-empty string');
    if (this.initialized) throw new ZsError('EBUSY', "can't change the backing file of an initialized device");
    this.s.backing.setPath(path, opts);
  }

  get writebackLimitEnabled(): boolean {
    return Atomics.load(this.st, S.WB_LIMIT_ENABLE) !== 0;
  }

  setWritebackLimitEnable(on: boolean): void {
    Atomics.store(this.st, S.WB_LIMIT_ENABLE, on ? 1 : 0);
  }

  /** writeback_limit in 4 KiB units. */
  get writebackLimit(): number {
    return u32(this.st, S.WB_LIMIT);
  }

  setWritebackLimit(units4k: number): void {
    if (!isNonNegInt(units4k) || units4k > 0xffffffff)
      throw new ZsError('EINVAL', `writeback_limit must be a non-negative integer, got ${units4k}`);
    Atomics.store(this.st, S.WB_LIMIT, units4k | 0);
  }

  /**
   * After a thread attached to this device died (its CPU marked dead with
   * pool.markThreadDead), releases the slot locks it held in this device's table
   * (never another device's), then the pool's rwlock shares it held, and hands
   * back dead CPU slots that hold nothing. Waiters do the same by themselves; this
   * sweep also frees locks no one waits on yet. Returns the slot locks released.
   */
  recoverDeadLocks(): number {
    const n = this.slots.recoverDeadOwners();
    this.pool.reapDeadCpus();
    return n;
  }

  /** compact store: compacts the pool; returns pages freed. */
  compact(): number {
    return this.pool.compact();
  }

  /**
   * reset store: frees every slot and backing block, zeroes the statistics, forgets
   * mem_limit, the backing file and the recompression algorithms, restores the
   * default algorithm and leaves the device uninitialized (disksize 0), as the kernel does.
   */
  reset(): void {
    const s = this.s;
    const pages = Atomics.load(this.st, S.DISKSIZE_PAGES);
    Atomics.store(this.st, S.DISKSIZE_PAGES, 0);
    this.slots.refresh();
    for (let i = 0; i < pages; i++) {
      if (this.slots.flags(i) === 0) continue; // empty: nothing to free (and no lock to take)
      this.slots.lock(i);
      try {
        store.freeSlotLocked(s, i);
      } finally {
        this.slots.unlock(i);
      }
    }
    this.slots.clear(pages);
    s.backing.detach();
    const st = this.st;
    const keep = [S.EPOCH_SEC, S.BACKING_GEN, S.PARAMS_GEN] as const;
    const saved = keep.map((i) => Atomics.load(st, i));
    for (let i = 0; i < STATS_WORDS; i++) Atomics.store(st, i, 0);
    for (let i = 0; i < C.COUNT; i++) Atomics.store(this.c64, i, 0n);
    for (const [k, i] of keep.entries()) Atomics.store(st, i, saved[k]!);
    Atomics.store(this.c64, C.COMPACTED_BASE, BigInt(this.pool.stats().pagesCompacted));
    settings.resetCompSettings(s, algorithmId(DEFAULT_ALGORITHM));
  }

  /**
   * This thread is done with the device: closes its backing file descriptor and, if
   * this object attached or created its own ZsPool object, detaches that (giving the
   * pool's CPU slot back). The object is unusable afterwards; the device lives on.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.s.backing.close();
    if (this.ownsPool) this.pool.detach();
  }

  // ---------------------------------------------------------------- page I/O

  /** Writes one whole page (src.length === 4096). */
  writePage(index: number, src: Uint8Array): void {
    checkIndex(this.s, index);
    checkPageBuffer(src, 'src');
    store.storeSlot(this.s, index, src);
  }

  /** Reads one whole page into dst (dst.length === 4096). */
  readPage(index: number, dst: Uint8Array): void {
    checkIndex(this.s, index);
    checkPageBuffer(dst, 'dst');
    store.readSlot(this.s, index, dst);
  }

  /** Writes any byte range inside the device; partial pages are read-modify-written under the slot lock. */
  write(offset: number, src: Uint8Array): void {
    if (!isUint8Array(src)) throw new TypeError('write: src must be a Uint8Array');
    const s = this.s;
    checkByteRange(s, offset, src.length, 'write');
    const { head, first, pages, tail } = pageSpan(offset, src.length, this.span);
    if (head > 0) store.writePartial(s, first - 1, offset % PAGE, src, 0, head);
    let pos = head;
    for (let index = first; index < first + pages; index++, pos += PAGE)
      store.storeSlot(s, index, src.subarray(pos, pos + PAGE));
    if (tail > 0) store.writePartial(s, first + pages, 0, src, pos, tail);
  }

  /** Reads any byte range inside the device. */
  read(offset: number, dst: Uint8Array): void {
    if (!isUint8Array(dst)) throw new TypeError('read: dst must be a Uint8Array');
    const s = this.s;
    checkByteRange(s, offset, dst.length, 'read');
    const { head, first, pages, tail } = pageSpan(offset, dst.length, this.span);
    if (head > 0) store.readPartial(s, first - 1, offset % PAGE, dst, 0, head);
    let pos = head;
    for (let index = first; index < first + pages; index++, pos += PAGE)
      store.readSlot(s, index, dst.subarray(pos, pos + PAGE));
    if (tail > 0) store.readPartial(s, first + pages, 0, dst, pos, tail);
  }

  /** Frees whole pages inside [offset, offset + length); partial pages are skipped. Each page counts as notify_free. */
  discard(offset: number, length: number): void {
    const s = this.s;
    checkByteRange(s, offset, length, 'discard');
    const { first, pages } = pageSpan(offset, length, this.span);
    for (let index = first; index < first + pages; index++) {
      this.slots.lock(index);
      try {
        store.freeSlotLocked(s, index);
      } finally {
        this.slots.unlock(index);
      }
      inc64(this.c64, C.NOTIFY_FREE);
    }
  }

  /** swap_slot_free_notify: frees one page if its slot lock is free at once; otherwise counts miss_free. */
  slotFreeNotify(index: number): boolean {
    const s = this.s;
    checkIndex(s, index);
    if (!this.slots.trylock(index)) {
      inc64(this.c64, C.MISS_FREE);
      return false;
    }
    try {
      store.freeSlotLocked(s, index);
    } finally {
      this.slots.unlock(index);
    }
    inc64(this.c64, C.NOTIFY_FREE);
    return true;
  }

  /**
   * Swap-in of a written-back page: reads it from the backing file and stores it in
   * memory again, all under the slot lock, so a concurrent write cannot be lost.
   * Returns false when the slot is not (or no longer) written back.
   */
  swapIn(index: number): boolean {
    checkIndex(this.s, index);
    return store.swapIn(this.s, index);
  }

  /**
   * Starts a batch of page I/O on this thread: access times stamped until the
   * matching endBatch() all use the time read here, once (access times are kept
   * in whole seconds, coarse as the kernel's). Batches nest.
   */
  beginBatch(): void {
    store.beginBatch(this.s);
  }

  endBatch(): void {
    store.endBatch(this.s);
  }

  // ---------------------------------------------------------------- idle, writeback, recompression

  /** idle store: mark every stored page idle ('all'), or those not accessed for at least `ageSeconds`. Returns pages marked. */
  markIdle(arg: 'all' | number): number {
    return pp.markIdle(this.s, arg);
  }

  /**
   * writeback store: writes matching pages to the backing file and frees their memory.
   * Returns pages written. Throws ZramError('ENODEV') without a backing file,
   * ZramError('EIO') when writeback_limit runs out, ZsError('ENOSPC') when the file is full.
   */
  writeback(request: WritebackRequest | WritebackMode | string): number {
    return pp.writeback(this.s, request);
  }

  /**
   * recompress store: recompresses matching slots with the secondary algorithms (in
   * priority order, or only `algorithm`), keeping a result only if it lands in a smaller
   * size class. Slots that the last algorithm cannot shrink become INCOMPRESSIBLE.
   * Returns the number of slots recompressed.
   */
  recompress(request: RecompressRequest = {}): number {
    return pp.recompress(this.s, request);
  }

  // ---------------------------------------------------------------- inspection and statistics

  /** One slot's state (a lock-free snapshot). */
  slotState(index: number): SlotState {
    checkIndex(this.s, index);
    return inspect.slotState(this.s, index);
  }

  /** debugfs block_state; see inspect.blockState. */
  blockState(): string {
    return inspect.blockState(this.s);
  }

  /** Recounts the page counters from the slots and frees unnamed backing blocks; see inspect.recountStats. */
  recountStats(): number {
    return inspect.recountStats(this.s);
  }

  /** Full consistency check while no I/O is in flight; throws on the first broken invariant (inspect.verify). */
  verify(): void {
    inspect.verify(this.s);
  }

  statValues(): ZramStatValues {
    return inspect.statValues(this.s);
  }

  /** mm_stat: orig_data_size compr_data_size mem_used_total mem_limit mem_used_max same_pages pages_compacted huge_pages huge_pages_since */
  mmStat(): string {
    return mmStatText(this.statValues().mm);
  }

  /** io_stat: failed_reads failed_writes invalid_io notify_free */
  ioStat(): string {
    return ioStatText(this.statValues().io);
  }

  /** bd_stat: bd_count bd_reads bd_writes, in 4 KiB units */
  bdStat(): string {
    return bdStatText(this.statValues().bd);
  }

  /** debug_stat: "version: 1", then writestall and miss_free */
  debugStat(): string {
    return debugStatText(this.statValues().debug);
  }

  // ---------------------------------------------------------------- after a thread's death

  /** What the last check after a death repaired on this thread ('' for nothing). */
  lastRepair = '';

  /** Why the device was fenced, as this thread's check found it ('' if it did not fence it). */
  get fenceCause(): string {
    return this.s.fenceReason;
  }

  /** The device refuses I/O once fenced (see checkAfterDeath). */
  get fenced(): boolean {
    return Atomics.load(this.st, S.FENCED) !== 0;
  }

  /**
   * After a thread attached to this device died (and its CPU was marked dead):
   * releases the locks it held (recoverDeadLocks) and clears a compaction it left
   * marked as running. Never blocks. Then run checkAfterDeath() on a thread that
   * may block.
   */
  releaseAfterDeath(): void {
    this.recoverDeadLocks();
    this.pool.repairAfterDeath();
  }

  /**
   * The check after a thread's death (may wait for locks: run it off the event
   * loop's thread, e.g. in a worker): first the repair, which rolls the dead
   * threads' half-done updates forward or back from their intent records and
   * rebuilds allocator state the pool check finds broken (core's pool-repair.ts,
   * slot-repair.ts); then the pool and every slot must check out (pool verify; each
   * slot's object is live and of the size the slot says). What does not fences the
   * device: every later I/O throws ZramError('EIO') naming the damage, and nothing
   * is served wrong. Returns whether the device is usable.
   */
  checkAfterDeath(): boolean {
    this.releaseAfterDeath();
    if (this.fenced) return false;
    try {
      const pool = this.pool.repairStructures();
      const slots = repairSlots({
        pool: this.pool,
        slots: this.s.slots,
        backing: this.s.backing,
        pages: this.pages,
        dev: this.s.slots.lockArrayId,
      });
      this.lastRepair = pool && slots ? `${pool}; ${slots}` : pool || slots;
      inspect.verifyQuiet(this.s);
      return true;
    } catch (e) {
      this.s.fenceReason = e instanceof Error ? e.message : String(e);
      Atomics.store(this.st, S.FENCED, 1);
      return false;
    }
  }
}
