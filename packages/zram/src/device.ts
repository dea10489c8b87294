// ZramDevice: the zram block device model on a zsmalloc pool. Owns the I/O
// paths (page and byte-granular read/write, discard, slot free notify), the
// knobs (disksize, comp_algorithm, mem_limit, mem_used_max, reset, compact,
// idle, writeback, writeback_limit, recomp_algorithm, recompress) and the stat
// texts. All device state is in SharedArrayBuffers (slot table, counters,
// backing bitmap, backing path); a ZramDevice object is views over them plus
// this thread's scratch buffers and codec instances, so any thread can
// `ZramDevice.attach(dev.shared)` and do I/O on the same device.
//
// Locking: the per-slot ENTRY_LOCK bit (slots.ts). Writes compress and
// allocate outside it and take it only to swap the old content for the new;
// partial writes hold it across read-modify-write. zram takes pool locks
// (malloc/free) while holding a slot lock, as the kernel does; the pool never
// takes a slot lock, so the order slot lock -> pool locks has no cycle.
// Control-plane calls (setDisksize, setAlgorithm, setBackingFile, reset) must
// not race with I/O, as in the kernel, where they need the device unused.

import { ZsError, ZsPool } from '@zsmalloc/core';
import type { PoolOptions, ZsPoolShared } from '@zsmalloc/core';
import { BackingStore } from './backing.js';
import { DEFAULT_ALGORITHM, algorithmId, algorithmListing, algorithmName, createCodec, type Codec } from './codec.js';
import { ZramError } from './errors.js';
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
import {
  S,
  STATS_WORDS,
  bdStatText,
  debugStatText,
  ioStatText,
  mmStatText,
  u32,
  type BdStat,
  type DebugStat,
  type IoStat,
  type MmStat,
} from './stats.js';

const PAGE = 4096;
/** Largest disksize: keeps every byte counter (compr_data_size <= disksize) inside 32 bits. */
export const MAX_DISKSIZE = 2 ** 32 - PAGE;
/** Compression priorities: 0 is the primary algorithm, 1..3 the recompression ones. */
export const MAX_COMPS = 4;

export type PoolShared = ZsPoolShared;

export interface ZramOptions {
  /** Bytes; rounded up to a page multiple. 0 leaves the device uninitialized (see setDisksize). */
  disksize: number;
  /** Primary compression algorithm (default 'lz4'). */
  algorithm?: string;
  /** mem_limit in bytes (0 = none). */
  memLimit?: number;
  /** Path of the writeback backing file (created if missing, extended to disksize + 4 KiB). */
  backingFile?: string;
  /** An existing pool to store into, or options for a new one (default: sized from maxDisksize/disksize). */
  pool?: ZsPool | PoolOptions;
  /** Largest disksize this device may ever be given (reserves slot-table address space). Default MAX_DISKSIZE. */
  maxDisksize?: number;
  name?: string;
}

/** Structured-clonable description of a device: post it to a worker and ZramDevice.attach() it there. */
export interface ZramShared {
  readonly pool: PoolShared;
  readonly table: SharedArrayBuffer;
  readonly stats: SharedArrayBuffer;
  readonly bitmap: SharedArrayBuffer;
  readonly backingPath: SharedArrayBuffer;
  readonly maxPages: number;
  readonly name: string;
}

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

function isUint8Array(x: unknown): x is Uint8Array {
  return x instanceof Uint8Array;
}

function isNonNegInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

export class ZramDevice {
  readonly pool: ZsPool;
  readonly shared: ZramShared;

  private readonly slots: SlotTable;
  private readonly st: Int32Array;
  private readonly backing: BackingStore;
  private readonly maxPages: number;
  /** This object made its ZsPool object (create() from options, or attach()): close() detaches it. */
  private readonly ownsPool: boolean;
  private closed = false;

  // Thread-local scratch (the kernel's per-CPU buffers): no allocation per page.
  private readonly page = new Uint8Array(PAGE); // read-modify-write, writeback, recompression
  private readonly cbuf = new Uint8Array(PAGE); // a compressed object copied out of the pool
  private readonly sameWords = new Int32Array(PAGE / 4); // aligned copy for the same-filled test
  private readonly sameBytes = new Uint8Array(this.sameWords.buffer);
  private readonly codecCache: (Codec | undefined)[] = [];

  // Result of prepare(), consumed by installLocked().
  private pSame = false;
  private pHandle = 0;
  private pSize = 0;
  private pHuge = false;
  private pLo = 0;
  private pHi = 0;
  // Result of loadLocked() for compressed slots.
  private loadPrio = 0;

  private constructor(shared: ZramShared, pool: ZsPool, ownsPool: boolean) {
    this.shared = shared;
    this.pool = pool;
    this.ownsPool = ownsPool;
    this.slots = new SlotTable(shared.table, pool);
    this.st = new Int32Array(shared.stats);
    this.backing = new BackingStore(shared.bitmap, shared.backingPath, this.st);
    this.maxPages = shared.maxPages;
  }

  static create(opts: ZramOptions): ZramDevice {
    if (opts === null || typeof opts !== 'object') throw new TypeError('ZramDevice.create: options object required');
    const disksize = opts.disksize ?? 0;
    if (!isNonNegInt(disksize) || disksize > MAX_DISKSIZE) {
      throw new ZsError('EINVAL', `disksize must be an integer in 0..${MAX_DISKSIZE}, got ${disksize}`);
    }
    const maxDisksize = opts.maxDisksize ?? MAX_DISKSIZE;
    if (!isNonNegInt(maxDisksize) || maxDisksize > MAX_DISKSIZE) {
      throw new ZsError('EINVAL', `maxDisksize must be an integer in 0..${MAX_DISKSIZE}`);
    }
    const maxPages = Math.max(Math.ceil(maxDisksize / PAGE), Math.ceil(disksize / PAGE));
    const algId = algorithmId(opts.algorithm ?? DEFAULT_ALGORITHM);
    if (opts.memLimit !== undefined && !isNonNegInt(opts.memLimit))
      throw new ZsError('EINVAL', 'memLimit must be a non-negative integer');

    let pool: ZsPool;
    const ownsPool = !(opts.pool instanceof ZsPool);
    if (opts.pool instanceof ZsPool) {
      pool = opts.pool;
    } else {
      const sizing = disksize || Math.min(maxDisksize, 1 << 30);
      const poolOpts: PoolOptions = opts.pool ?? {
        maxBytes: Math.ceil((sizing * 1.25 + (1 << 20)) / PAGE) * PAGE,
        name: opts.name ?? 'zram',
      };
      pool = ZsPool.create(poolOpts);
    }

    const shared: ZramShared = {
      pool: pool.shared,
      table: SlotTable.allocate(Math.ceil(disksize / PAGE), maxPages),
      stats: new SharedArrayBuffer(STATS_WORDS * 4),
      bitmap: BackingStore.allocateBitmap(maxPages + 1),
      backingPath: new SharedArrayBuffer(4096),
      maxPages,
      name: opts.name ?? 'zram0',
    };
    const dev = new ZramDevice(shared, pool, ownsPool);
    const st = dev.st;
    Atomics.store(st, S.EPOCH_SEC, Math.floor(Date.now() / 1000));
    Atomics.store(st, S.COMP_ID0, algId + 1);
    if (opts.backingFile !== undefined) dev.setBackingFile(opts.backingFile);
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
    return Atomics.load(this.st, S.DISKSIZE_PAGES) * PAGE;
  }

  /** Number of 4 KiB pages. */
  get pages(): number {
    return Atomics.load(this.st, S.DISKSIZE_PAGES);
  }

  get initialized(): boolean {
    return Atomics.load(this.st, S.DISKSIZE_PAGES) !== 0;
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
    this.slots.ensure(pages);
    this.slots.clear(pages);
    if (this.backing.configured()) this.backing.prepare(pages);
    Atomics.store(this.st, S.DISKSIZE_PAGES, pages);
  }

  /** comp_algorithm show: every known algorithm, the current one in brackets, kernel layout. */
  compAlgorithm(): string {
    return algorithmListing(this.algorithm);
  }

  get algorithm(): string {
    return algorithmName(Atomics.load(this.st, S.COMP_ID0) - 1);
  }

  /** comp_algorithm store: unknown names fail with the list of known ones; EBUSY once initialized. */
  setAlgorithm(name: string): void {
    const id = algorithmId(name);
    if (this.initialized) throw new ZsError('EBUSY', "can't change the algorithm of an initialized device");
    Atomics.store(this.st, S.COMP_ID0, id + 1);
  }

  /**
   * recomp_algorithm store ("algo=NAME priority=N"), N in 1..3. An empty priority can be
   * set at any time; replacing one that is set needs an uninitialized device (EBUSY),
   * since slots recompressed with it must still decompress.
   */
  setRecompAlgorithm(name: string, priority: number): void {
    const id = algorithmId(name);
    if (!Number.isInteger(priority) || priority < 1 || priority >= MAX_COMPS) {
      throw new ZsError('EINVAL', `recompression priority must be 1..${MAX_COMPS - 1}, got ${priority}`);
    }
    const cur = Atomics.load(this.st, S.COMP_ID0 + priority);
    if (cur === id + 1) return;
    if (cur !== 0 && this.initialized)
      throw new ZsError('EBUSY', `priority ${priority} already uses ${algorithmName(cur - 1)}`);
    Atomics.store(this.st, S.COMP_ID0 + priority, id + 1);
  }

  /** recomp_algorithm show: "#N: " and the listing for every configured priority. */
  recompAlgorithm(): string {
    let s = '';
    for (let prio = 1; prio < MAX_COMPS; prio++) {
      const id = Atomics.load(this.st, S.COMP_ID0 + prio);
      if (id !== 0) s += `#${prio}: ${algorithmListing(algorithmName(id - 1))}`;
    }
    return s;
  }

  /** The algorithm of each priority (undefined where unset). */
  algorithms(): (string | undefined)[] {
    const out: (string | undefined)[] = [];
    for (let prio = 0; prio < MAX_COMPS; prio++) {
      const id = Atomics.load(this.st, S.COMP_ID0 + prio);
      out.push(id ? algorithmName(id - 1) : undefined);
    }
    return out;
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
    return u32(this.st, S.MAX_USED_PAGES) * PAGE;
  }

  /** mem_used_max store of "0": restart the high-water mark from current usage. */
  resetMemUsedMax(): void {
    Atomics.store(this.st, S.MAX_USED_PAGES, this.pagesUsed());
  }

  get backingFile(): string {
    return this.backing.path();
  }

  /** backing_dev store: only while uninitialized (EBUSY otherwise). */
  setBackingFile(path: string): void {
    if (typeof path !== 'string' || path.length === 0)
      throw new ZsError('EINVAL', 'backing file path must be a non-empty string');
    if (this.initialized) throw new ZsError('EBUSY', "can't change the backing file of an initialized device");
    this.backing.setPath(path);
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

  /** compact store: compacts the pool; returns pages freed. */
  /**
   * After a thread attached to this device died (its CPU marked dead with
   * pool.markThreadDead), releases the slot lock it may have held so other
   * threads do not wait forever. Returns the number of slot locks released.
   */
  recoverDeadLocks(): number {
    return this.slots.recoverDeadOwners();
  }

  compact(): number {
    return this.pool.compact();
  }

  /**
   * reset store: frees every slot and backing block, zeroes the statistics, forgets
   * mem_limit, the backing file and the recompression algorithms, restores the
   * default algorithm and leaves the device uninitialized (disksize 0), as the kernel does.
   */
  reset(): void {
    const pages = Atomics.load(this.st, S.DISKSIZE_PAGES);
    Atomics.store(this.st, S.DISKSIZE_PAGES, 0);
    this.slots.refresh();
    for (let i = 0; i < pages; i++) {
      this.slots.lock(i);
      try {
        this.freeSlotLocked(i);
      } finally {
        this.slots.unlock(i);
      }
    }
    this.slots.clear(pages);
    this.backing.detach();
    const st = this.st;
    const keep = [S.EPOCH_SEC, S.BACKING_GEN] as const;
    const saved = keep.map((i) => Atomics.load(st, i));
    for (let i = 0; i < STATS_WORDS; i++) Atomics.store(st, i, 0);
    for (const [k, i] of keep.entries()) Atomics.store(st, i, saved[k]!);
    Atomics.store(st, S.COMPACTED_BASE, this.pool.stats().pagesCompacted);
    Atomics.store(st, S.COMP_ID0, algorithmId(DEFAULT_ALGORITHM) + 1);
  }

  /**
   * This thread is done with the device: closes its backing file descriptor and, if
   * this object attached or created its own ZsPool object, detaches that (giving the
   * pool's CPU slot back). The object is unusable afterwards; the device lives on.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.backing.close();
    if (this.ownsPool) this.pool.detach();
  }

  // ---------------------------------------------------------------- page I/O

  /** Writes one whole page (src.length === 4096). */
  writePage(index: number, src: Uint8Array): void {
    this.checkIndex(index);
    this.checkPageBuffer(src, 'src');
    this.storePage(index, src);
  }

  /** Reads one whole page into dst (dst.length === 4096). */
  readPage(index: number, dst: Uint8Array): void {
    this.checkIndex(index);
    this.checkPageBuffer(dst, 'dst');
    this.readInto(index, dst);
  }

  /** Writes any byte range inside the device; partial pages are read-modify-written under the slot lock. */
  write(offset: number, src: Uint8Array): void {
    if (!isUint8Array(src)) throw new TypeError('write: src must be a Uint8Array');
    this.checkRange(offset, src.length, 'write');
    const len = src.length;
    let pos = 0;
    while (pos < len) {
      const abs = offset + pos;
      const index = Math.floor(abs / PAGE);
      const off = abs - index * PAGE;
      const n = Math.min(PAGE - off, len - pos);
      if (n === PAGE) this.storePage(index, src.subarray(pos, pos + PAGE));
      else this.writePartial(index, off, src, pos, n);
      pos += n;
    }
  }

  /** Reads any byte range inside the device. */
  read(offset: number, dst: Uint8Array): void {
    if (!isUint8Array(dst)) throw new TypeError('read: dst must be a Uint8Array');
    this.checkRange(offset, dst.length, 'read');
    const len = dst.length;
    let pos = 0;
    while (pos < len) {
      const abs = offset + pos;
      const index = Math.floor(abs / PAGE);
      const off = abs - index * PAGE;
      const n = Math.min(PAGE - off, len - pos);
      if (n === PAGE) {
        this.readInto(index, dst.subarray(pos, pos + PAGE));
      } else {
        this.readInto(index, this.page);
        dst.set(this.page.subarray(off, off + n), pos);
      }
      pos += n;
    }
  }

  /** Frees whole pages inside [offset, offset + length); partial pages are skipped. Each page counts as notify_free. */
  discard(offset: number, length: number): void {
    this.checkRange(offset, length, 'discard');
    let index = Math.floor(offset / PAGE);
    const off = offset - index * PAGE;
    let n = length;
    if (off !== 0) {
      if (n <= PAGE - off) return;
      n -= PAGE - off;
      index++;
    }
    while (n >= PAGE) {
      this.slots.lock(index);
      try {
        this.freeSlotLocked(index);
      } finally {
        this.slots.unlock(index);
      }
      Atomics.add(this.st, S.NOTIFY_FREE, 1);
      index++;
      n -= PAGE;
    }
  }

  /** swap_slot_free_notify: frees one page if its slot lock is free at once; otherwise counts miss_free. */
  slotFreeNotify(index: number): boolean {
    this.checkIndex(index);
    if (!this.slots.trylock(index)) {
      Atomics.add(this.st, S.MISS_FREE, 1);
      return false;
    }
    try {
      this.freeSlotLocked(index);
    } finally {
      this.slots.unlock(index);
    }
    Atomics.add(this.st, S.NOTIFY_FREE, 1);
    return true;
  }

  // ---------------------------------------------------------------- idle, writeback, recompression

  /** idle store: mark every stored page idle ('all'), or those not accessed for at least `ageSeconds`. Returns pages marked. */
  markIdle(arg: 'all' | number): number {
    const all = arg === 'all';
    if (!all && !isNonNegInt(arg))
      throw new ZsError('EINVAL', `idle: expected "all" or an age in seconds, got ${String(arg)}`);
    const age = all ? 0 : (arg as number);
    const now = this.now();
    const pages = this.pages;
    const slots = this.slots;
    let marked = 0;
    this.slots.refresh();
    for (let i = 0; i < pages; i++) {
      if (!SlotTable.allocated(slots.flags(i))) continue;
      slots.lock(i);
      const f = slots.flags(i);
      if (SlotTable.allocated(f) && (f & (ZRAM_WB | ZRAM_SAME)) === 0) {
        if (all || now - slots.accessTime(i) >= age) {
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

  /**
   * writeback store: writes matching pages to the backing file and frees their memory.
   * Returns pages written. Throws ZramError('ENODEV') without a backing file,
   * ZramError('EIO') when writeback_limit runs out, ZsError('ENOSPC') when the file is full.
   */
  writeback(request: WritebackRequest | WritebackMode | string): number {
    const req = parseWriteback(request);
    let filter = 0;
    let lo = 0;
    let hi = this.pages - 1;
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
        this.checkIndex(req.index as number);
        lo = hi = req.index as number;
        break;
      case 'page_indexes':
        this.checkIndex(req.first as number);
        this.checkIndex(req.last as number);
        if ((req.last as number) < (req.first as number)) throw new ZsError('EINVAL', 'page_indexes: last < first');
        lo = req.first as number;
        hi = req.last as number;
        break;
      default:
        throw new ZsError('EINVAL', `unknown writeback mode ${JSON.stringify((req as { mode: unknown }).mode)}`);
    }
    if (!this.backing.configured()) throw new ZramError('ENODEV', 'writeback: no backing file');

    const slots = this.slots;
    const st = this.st;
    const page = this.page;
    let written = 0;
    let blk = 0;
    let failure: Error | undefined;
    slots.refresh();
    for (let i = lo; i <= hi; i++) {
      if (!this.writebackCandidate(slots.flags(i), filter)) continue;
      slots.lock(i);
      let n = 0;
      let prio = 0;
      try {
        if (!this.writebackCandidate(slots.flags(i), filter)) continue;
        if (Atomics.load(st, S.WB_LIMIT_ENABLE) !== 0 && Atomics.load(st, S.WB_LIMIT) === 0) {
          failure = new ZramError('EIO', 'writeback_limit exhausted', written);
          break;
        }
        if (blk === 0) {
          blk = this.backing.allocBlock();
          if (blk === 0) {
            failure = new ZsError('ENOSPC', 'writeback: backing file is full');
            break;
          }
        }
        slots.setFlag(i, ZRAM_PP_SLOT);
        try {
          n = this.loadLocked(i, page);
          prio = this.loadPrio;
        } catch (e) {
          slots.clearFlag(i, ZRAM_PP_SLOT);
          Atomics.add(st, S.FAILED_READS, 1);
          failure = new ZramError('EIO', `writeback: reading page ${i} failed: ${(e as Error).message}`, written);
          break;
        }
      } finally {
        slots.unlock(i);
      }
      try {
        if (n !== 0) this.decompress(n, prio, page);
        this.backing.writeBlock(blk, page);
      } catch (e) {
        slots.lock(i);
        slots.clearFlag(i, ZRAM_PP_SLOT);
        slots.unlock(i);
        failure = new ZramError('EIO', `writeback of page ${i} failed: ${(e as Error).message}`, written);
        break;
      }
      slots.lock(i);
      try {
        // Accessed, rewritten or freed meanwhile: PP_SLOT is gone; keep the block for the next page.
        if ((slots.flags(i) & ZRAM_PP_SLOT) === 0) continue;
        this.freeSlotLocked(i);
        slots.setHandle(i, blk);
        slots.setOwned(i, ZRAM_WB);
        Atomics.add(st, S.PAGES_STORED, 1);
      } finally {
        slots.unlock(i);
      }
      blk = 0;
      written++;
      Atomics.add(st, S.BD_WRITES, 1);
      this.consumeWritebackLimit();
    }
    if (blk !== 0) this.backing.freeBlock(blk);
    if (failure) throw failure;
    return written;
  }

  /**
   * recompress store: recompresses matching slots with the secondary algorithms (in
   * priority order, or only `algorithm`), keeping a result only if it lands in a smaller
   * size class. Slots that the last algorithm cannot shrink become INCOMPRESSIBLE.
   * Returns the number of slots recompressed.
   */
  recompress(request: RecompressRequest = {}): number {
    const { type, algorithm } = request;
    const threshold = request.threshold ?? 0;
    const maxPages = request.maxPages ?? 0;
    let filter = 0;
    if (type === 'idle') filter = ZRAM_IDLE;
    else if (type === 'huge') filter = ZRAM_HUGE;
    else if (type === 'huge_idle') filter = ZRAM_IDLE | ZRAM_HUGE;
    else if (type !== undefined)
      throw new ZsError('EINVAL', `recompress: type must be idle, huge or huge_idle, got ${JSON.stringify(type)}`);
    if (!isNonNegInt(threshold) || threshold >= this.pool.hugeClassSize) {
      throw new ZsError('EINVAL', `recompress: threshold must be an integer below ${this.pool.hugeClassSize}`);
    }
    if (!isNonNegInt(maxPages)) throw new ZsError('EINVAL', 'recompress: maxPages must be a non-negative integer');

    let numActive = 1;
    for (let prio = 1; prio < MAX_COMPS; prio++)
      if (Atomics.load(this.st, S.COMP_ID0 + prio) !== 0) numActive = prio + 1;
    let prioStart = 1;
    let prioMax = numActive;
    if (algorithm !== undefined) {
      const id = algorithmId(algorithm);
      let found = 0;
      for (let prio = 1; prio < MAX_COMPS; prio++)
        if (Atomics.load(this.st, S.COMP_ID0 + prio) === id + 1) found = prio;
      if (found === 0)
        throw new ZsError('EINVAL', `recompress: ${algorithm} is not a recompression algorithm of this device`);
      prioStart = found;
      prioMax = found + 1;
    }
    if (request.priority !== undefined) {
      const prio = request.priority;
      if (!Number.isInteger(prio) || prio < 1 || prio >= MAX_COMPS || Atomics.load(this.st, S.COMP_ID0 + prio) === 0) {
        throw new ZsError('EINVAL', `recompress: no recompression algorithm at priority ${String(prio)}`);
      }
      prioStart = Math.max(prioStart, prio);
      prioMax = Math.min(prioMax, prio + 1);
      if (prioStart >= prioMax) throw new ZsError('EINVAL', 'recompress: algorithm and priority disagree');
    }
    if (prioMax <= 1) throw new ZsError('EINVAL', 'recompress: no recompression algorithm set (setRecompAlgorithm)');

    const slots = this.slots;
    const pages = this.pages;
    let left = maxPages;
    let done = 0;
    this.slots.refresh();
    for (let i = 0; i < pages; i++) {
      if (maxPages !== 0 && left === 0) break;
      if (!this.recompressCandidate(slots.flags(i), filter, prioMax)) continue;
      slots.lock(i);
      try {
        const f = slots.flags(i);
        if (!this.recompressCandidate(f, filter, prioMax)) continue;
        const r = this.recompressLocked(i, f, threshold, prioStart, prioMax, numActive);
        if (r < 0) continue; // below threshold: not attempted
        if (left > 0) left--;
        if (r > 0) done++;
      } finally {
        slots.unlock(i);
      }
    }
    return done;
  }

  // ---------------------------------------------------------------- slot inspection

  /** One slot's state (a lock-free snapshot). */
  slotState(index: number): SlotState {
    this.checkIndex(index);
    const f = this.slots.flags(index);
    return {
      allocated: SlotTable.allocated(f),
      size: f & SIZE_MASK,
      same: (f & ZRAM_SAME) !== 0,
      writtenBack: (f & ZRAM_WB) !== 0,
      huge: (f & ZRAM_HUGE) !== 0,
      idle: (f & ZRAM_IDLE) !== 0,
      incompressible: (f & ZRAM_INCOMPRESSIBLE) !== 0,
      priority: (f >>> PRIO_SHIFT) & 3,
      accessTime: this.slots.accessTime(index),
    };
  }

  /**
   * debugfs block_state: one line per stored page, "%12zd %12lld.%06lu %c%c%c%c%c%c\n":
   * index, access time (seconds since the device epoch), then s(ame) w(ritten back)
   * h(uge) i(dle) r(ecompressed) n (incompressible), '.' where unset.
   */
  blockState(): string {
    let s = '';
    const pages = this.pages;
    this.slots.refresh();
    for (let i = 0; i < pages; i++) {
      const f = this.slots.flags(i);
      if (!SlotTable.allocated(f)) continue;
      s +=
        `${String(i).padStart(12, ' ')} ${String(this.slots.accessTime(i)).padStart(12, ' ')}.000000 ` +
        `${f & ZRAM_SAME ? 's' : '.'}${f & ZRAM_WB ? 'w' : '.'}${f & ZRAM_HUGE ? 'h' : '.'}${f & ZRAM_IDLE ? 'i' : '.'}` +
        `${(f >>> PRIO_SHIFT) & 3 ? 'r' : '.'}${f & ZRAM_INCOMPRESSIBLE ? 'n' : '.'}\n`;
    }
    return s;
  }

  /**
   * Full consistency check (run it while no I/O is in flight): the pool's own verify(),
   * then every slot against the counters (pages_stored, same_pages, huge_pages,
   * compr_data_size, bd_count), every object's size against the pool, and every
   * written-back slot against the backing bitmap. Throws on the first broken invariant.
   */
  verify(): void {
    this.pool.verify();
    const slots = this.slots;
    const st = this.st;
    const pages = this.pages;
    let stored = 0;
    let same = 0;
    let huge = 0;
    let compr = 0;
    let wb = 0;
    const blocks = new Set<number>();
    const fail = (msg: string): never => {
      throw new Error(`zram verify: ${msg}`);
    };
    this.slots.refresh();
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
        if (b <= 0 || !this.backing.blockUsed(b)) fail(`slot ${i} points to free backing block ${b}`);
        if (blocks.has(b)) fail(`backing block ${b} used twice`);
        blocks.add(b);
        wb++;
      } else {
        const size = f & SIZE_MASK;
        const objSize = this.pool.objSize(slots.handle(i));
        if (objSize !== size) fail(`slot ${i}: size ${size}, pool object ${objSize}`);
        if (((f & ZRAM_HUGE) !== 0) !== (size === PAGE)) fail(`slot ${i}: huge flag and size ${size} disagree`);
        compr += size;
      }
    }
    const check = (name: string, counter: number, actual: number) => {
      if (counter !== actual) fail(`${name} is ${counter}, slots say ${actual}`);
    };
    check('pages_stored', u32(st, S.PAGES_STORED), stored);
    check('same_pages', u32(st, S.SAME_PAGES), same);
    check('huge_pages', u32(st, S.HUGE_PAGES), huge);
    check('compr_data_size', u32(st, S.COMPR_DATA_SIZE), compr);
    check('bd_count', u32(st, S.BD_COUNT), wb);
    let bits = 0;
    const nblocks = Atomics.load(st, S.BACKING_BLOCKS);
    for (let b = 0; b < nblocks; b++) if (this.backing.blockUsed(b)) bits++;
    check('backing bitmap population', bits, wb);
  }

  // ---------------------------------------------------------------- statistics

  statValues(): ZramStatValues {
    const st = this.st;
    const init = this.initialized;
    const ps = init ? this.pool.stats() : undefined;
    return {
      mm: {
        origDataSize: u32(st, S.PAGES_STORED) * PAGE,
        comprDataSize: u32(st, S.COMPR_DATA_SIZE),
        memUsedTotal: ps ? ps.pagesUsed * PAGE : 0,
        memLimit: u32(st, S.LIMIT_PAGES) * PAGE,
        memUsedMax: u32(st, S.MAX_USED_PAGES) * PAGE,
        samePages: u32(st, S.SAME_PAGES),
        pagesCompacted: ps ? Math.max(0, ps.pagesCompacted - u32(st, S.COMPACTED_BASE)) : 0,
        hugePages: u32(st, S.HUGE_PAGES),
        hugePagesSince: u32(st, S.HUGE_PAGES_SINCE),
      },
      io: {
        failedReads: u32(st, S.FAILED_READS),
        failedWrites: u32(st, S.FAILED_WRITES),
        invalidIo: u32(st, S.INVALID_IO),
        notifyFree: u32(st, S.NOTIFY_FREE),
      },
      bd: { bdCount: u32(st, S.BD_COUNT), bdReads: u32(st, S.BD_READS), bdWrites: u32(st, S.BD_WRITES) },
      debug: { writestall: u32(st, S.WRITESTALL), missFree: u32(st, S.MISS_FREE) },
    };
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

  // ---------------------------------------------------------------- internals

  private checkIndex(index: number): void {
    const pages = Atomics.load(this.st, S.DISKSIZE_PAGES);
    if (!(typeof index === 'number' && Number.isInteger(index) && index >= 0 && index < pages)) {
      throw new RangeError(`page index ${String(index)} outside the device (${pages} pages)`);
    }
    this.slots.cover(index);
  }

  private checkRange(offset: number, length: number, op: string): void {
    const size = Atomics.load(this.st, S.DISKSIZE_PAGES) * PAGE;
    if (!isNonNegInt(offset) || !isNonNegInt(length) || offset + length > size) {
      throw new RangeError(`${op}: range [${String(offset)}, +${String(length)}) outside the device (${size} bytes)`);
    }
  }

  private checkPageBuffer(buf: Uint8Array, name: string): void {
    if (!isUint8Array(buf)) throw new TypeError(`${name} must be a Uint8Array of ${PAGE} bytes`);
    if (buf.length !== PAGE) throw new RangeError(`${name} must be exactly ${PAGE} bytes, got ${buf.length}`);
  }

  private now(): number {
    return Math.floor(Date.now() / 1000) - Atomics.load(this.st, S.EPOCH_SEC) + 1;
  }

  private pagesUsed(): number {
    return this.pool.pagesUsed();
  }

  private codecFor(prio: number): Codec {
    const id = Atomics.load(this.st, S.COMP_ID0 + prio) - 1;
    if (id < 0) throw new ZramError('EIO', `no compression algorithm at priority ${prio}`);
    let c = this.codecCache[id];
    if (c === undefined) {
      c = createCodec(id);
      this.codecCache[id] = c;
    }
    return c;
  }

  private updateMaxUsed(used: number): void {
    const st = this.st;
    for (;;) {
      const cur = Atomics.load(st, S.MAX_USED_PAGES);
      if (used <= cur || Atomics.compareExchange(st, S.MAX_USED_PAGES, cur, used) === cur) return;
    }
  }

  private consumeWritebackLimit(): void {
    const st = this.st;
    if (Atomics.load(st, S.WB_LIMIT_ENABLE) === 0) return;
    for (;;) {
      const cur = Atomics.load(st, S.WB_LIMIT);
      if (cur === 0 || Atomics.compareExchange(st, S.WB_LIMIT, cur, cur - 1) === cur) return;
    }
  }

  /** Every 8-byte word of the page equal? Leaves the word in pLo/pHi. */
  private sameFilled(page: Uint8Array): boolean {
    for (let k = 0; k < 8; k++) if (page[PAGE - 8 + k] !== page[k]) return false;
    this.sameBytes.set(page);
    const w = this.sameWords;
    const a = w[0]!;
    const b = w[1]!;
    for (let i = 2; i < PAGE / 4; i += 2) if (w[i] !== a || w[i + 1] !== b) return false;
    this.pLo = page[0]! | (page[1]! << 8) | (page[2]! << 16) | (page[3]! << 24);
    this.pHi = page[4]! | (page[5]! << 8) | (page[6]! << 16) | (page[7]! << 24);
    return true;
  }

  private static fillWord(dst: Uint8Array, lo: number, hi: number): void {
    const b0 = lo & 0xff;
    if (lo === hi && lo === ((b0 * 0x01010101) | 0)) {
      dst.fill(b0);
      return;
    }
    dst[0] = b0;
    dst[1] = (lo >>> 8) & 0xff;
    dst[2] = (lo >>> 16) & 0xff;
    dst[3] = (lo >>> 24) & 0xff;
    dst[4] = hi & 0xff;
    dst[5] = (hi >>> 8) & 0xff;
    dst[6] = (hi >>> 16) & 0xff;
    dst[7] = (hi >>> 24) & 0xff;
    for (let len = 8; len < PAGE; len <<= 1) dst.copyWithin(len, 0, len);
  }

  /**
   * Compresses and allocates the new content of a page (no slot lock needed).
   * On failure counts failed_writes and throws; nothing stored changes.
   */
  private prepare(page: Uint8Array): void {
    if (this.sameFilled(page)) {
      this.pSame = true;
      return;
    }
    this.pSame = false;
    const pool = this.pool;
    const st = this.st;
    let out: Uint8Array;
    let handle: number;
    let huge: boolean;
    let size: number;
    try {
      out = this.codecFor(0).compress(page);
      huge = out.length >= pool.hugeClassSize;
      size = huge ? PAGE : out.length;
      handle = pool.malloc(size);
    } catch (e) {
      Atomics.add(st, S.FAILED_WRITES, 1);
      throw e;
    }
    const used = this.pagesUsed();
    this.updateMaxUsed(used);
    const limit = Atomics.load(st, S.LIMIT_PAGES);
    if (limit !== 0 && used > limit) {
      pool.free(handle);
      Atomics.add(st, S.FAILED_WRITES, 1);
      throw new ZsError('ENOMEM', `zram: mem_limit ${limit * PAGE} reached (pool uses ${used * PAGE})`);
    }
    pool.write(handle, huge ? page : out);
    this.pHandle = handle;
    this.pSize = size;
    this.pHuge = huge;
  }

  /** Installs what prepare() made into a slot whose old content was freed (slot lock held). */
  private installLocked(index: number): void {
    const slots = this.slots;
    const st = this.st;
    if (this.pSame) {
      slots.setHandle(index, this.pLo);
      slots.setFillHigh(index, this.pHi);
      slots.setOwned(index, ZRAM_SAME);
      Atomics.add(st, S.SAME_PAGES, 1);
    } else {
      slots.setHandle(index, this.pHandle);
      slots.setOwned(index, this.pSize | (this.pHuge ? ZRAM_HUGE : 0));
      Atomics.add(st, S.COMPR_DATA_SIZE, this.pSize);
      if (this.pHuge) {
        Atomics.add(st, S.HUGE_PAGES, 1);
        Atomics.add(st, S.HUGE_PAGES_SINCE, 1);
      }
    }
    Atomics.add(st, S.PAGES_STORED, 1);
    slots.setAccessTime(index, this.now());
  }

  /** zram_free_page: releases whatever the slot holds and clears it (slot lock held). */
  private freeSlotLocked(index: number): void {
    const slots = this.slots;
    const st = this.st;
    const f = slots.flags(index);
    if (f & ZRAM_HUGE) Atomics.sub(st, S.HUGE_PAGES, 1);
    if (f & ZRAM_WB) {
      this.backing.freeBlock(slots.handle(index));
      Atomics.sub(st, S.PAGES_STORED, 1);
    } else if (f & ZRAM_SAME) {
      Atomics.sub(st, S.SAME_PAGES, 1);
      Atomics.sub(st, S.PAGES_STORED, 1);
    } else if ((f & SIZE_MASK) !== 0) {
      this.pool.free(slots.handle(index));
      Atomics.sub(st, S.COMPR_DATA_SIZE, f & SIZE_MASK);
      Atomics.sub(st, S.PAGES_STORED, 1);
    }
    slots.setHandle(index, 0);
    slots.setFillHigh(index, 0);
    slots.setAccessTime(index, 0);
    slots.setOwned(index, 0);
  }

  /**
   * Loads a slot's content (slot lock held). Fills dst and returns 0, or, for a compressed
   * object, copies it into cbuf, sets loadPrio and returns its length (decompress after unlocking).
   */
  private loadLocked(index: number, dst: Uint8Array): number {
    const slots = this.slots;
    const f = slots.flags(index);
    if (f & ZRAM_WB) {
      this.backing.readBlock(slots.handle(index), dst);
      Atomics.add(this.st, S.BD_READS, 1);
      return 0;
    }
    if (f & ZRAM_SAME) {
      ZramDevice.fillWord(dst, slots.handle(index), slots.fillHigh(index));
      return 0;
    }
    const size = f & SIZE_MASK;
    if (size === 0) {
      dst.fill(0);
      return 0;
    }
    if (f & ZRAM_HUGE) {
      this.pool.read(slots.handle(index), dst);
      return 0;
    }
    this.pool.read(slots.handle(index), this.cbuf);
    this.loadPrio = (f >>> PRIO_SHIFT) & 3;
    return size;
  }

  private decompress(n: number, prio: number, dst: Uint8Array): void {
    const got = this.codecFor(prio).decompress(this.cbuf, n, dst);
    if (got !== PAGE) throw new ZramError('EIO', `decompression produced ${got} bytes`);
  }

  /** zram_accessed: clears IDLE and PP_SLOT, stamps the access time (slot lock held). */
  private accessedLocked(index: number): void {
    this.slots.clearFlag(index, ZRAM_IDLE | ZRAM_PP_SLOT);
    this.slots.setAccessTime(index, this.now());
  }

  private readInto(index: number, dst: Uint8Array): void {
    const slots = this.slots;
    let n = 0;
    let prio = 0;
    slots.lock(index);
    try {
      n = this.loadLocked(index, dst);
      prio = this.loadPrio;
      if (SlotTable.allocated(slots.flags(index))) this.accessedLocked(index);
    } catch (e) {
      Atomics.add(this.st, S.FAILED_READS, 1);
      throw e;
    } finally {
      slots.unlock(index);
    }
    if (n !== 0) {
      try {
        this.decompress(n, prio, dst);
      } catch (e) {
        Atomics.add(this.st, S.FAILED_READS, 1);
        throw e;
      }
    }
  }

  /** Full-page store: compress and allocate first, then swap under the slot lock. */
  private storePage(index: number, src: Uint8Array): void {
    this.prepare(src);
    this.slots.lock(index);
    try {
      this.freeSlotLocked(index);
      this.installLocked(index);
    } finally {
      this.slots.unlock(index);
    }
  }

  /**
   * Swap-in of a written-back page: reads it from the backing file and stores it in
   * memory again, all under the slot lock, so a concurrent write cannot be lost.
   * Returns false when the slot is not (or no longer) written back.
   */
  swapIn(index: number): boolean {
    this.checkIndex(index);
    const page = this.page;
    const slots = this.slots;
    slots.lock(index);
    try {
      if ((slots.flags(index) & ZRAM_WB) === 0) return false;
      this.loadLocked(index, page);
      this.prepare(page);
      this.freeSlotLocked(index);
      this.installLocked(index);
      return true;
    } finally {
      slots.unlock(index);
    }
  }

  /** Read-modify-write of part of one page, all under its slot lock. */
  private writePartial(index: number, off: number, src: Uint8Array, pos: number, n: number): void {
    const page = this.page;
    const slots = this.slots;
    slots.lock(index);
    try {
      try {
        const cn = this.loadLocked(index, page);
        if (cn !== 0) this.decompress(cn, this.loadPrio, page);
      } catch (e) {
        Atomics.add(this.st, S.FAILED_WRITES, 1);
        throw e;
      }
      page.set(src.subarray(pos, pos + n), off);
      this.prepare(page);
      this.freeSlotLocked(index);
      this.installLocked(index);
    } finally {
      slots.unlock(index);
    }
  }

  private writebackCandidate(f: number, filter: number): boolean {
    return SlotTable.allocated(f) && (f & (ZRAM_WB | ZRAM_SAME | ZRAM_PP_SLOT)) === 0 && (f & filter) === filter;
  }

  private recompressCandidate(f: number, filter: number, prioMax: number): boolean {
    return (
      SlotTable.allocated(f) &&
      (f & (ZRAM_WB | ZRAM_SAME | ZRAM_INCOMPRESSIBLE | ZRAM_PP_SLOT)) === 0 &&
      (f & filter) === filter &&
      ((f >>> PRIO_SHIFT) & 3) + 1 < prioMax
    );
  }

  /**
   * recompress_slot (slot lock held). Returns 1 if recompressed, 0 if attempted without
   * gain (possibly marking INCOMPRESSIBLE), -1 if skipped as already below threshold.
   */
  private recompressLocked(
    index: number,
    f: number,
    threshold: number,
    prioStart: number,
    prioMax: number,
    numActive: number,
  ): number {
    const slots = this.slots;
    const pool = this.pool;
    const st = this.st;
    const oldSize = f & SIZE_MASK;
    if (oldSize < threshold) return -1;
    const page = this.page;
    const cn = this.loadLocked(index, page);
    if (cn !== 0) this.decompress(cn, this.loadPrio, page);
    slots.clearFlag(index, ZRAM_IDLE);
    const oldClass = pool.classIndexFor(oldSize);
    let prio = Math.max(prioStart, ((f >>> PRIO_SHIFT) & 3) + 1);
    let out: Uint8Array | undefined;
    for (; prio < prioMax; prio++) {
      if (Atomics.load(st, S.COMP_ID0 + prio) === 0) continue;
      const c = this.codecFor(prio).compress(page);
      if (pool.classIndexFor(c.length) >= oldClass || (threshold !== 0 && c.length >= threshold)) continue;
      out = c;
      break;
    }
    if (out === undefined) {
      if (prio >= numActive) slots.setFlag(index, ZRAM_INCOMPRESSIBLE);
      return 0;
    }
    const handle = pool.malloc(out.length); // ENOMEM: keep the old object, stop
    pool.write(handle, out);
    const acTime = slots.accessTime(index);
    this.freeSlotLocked(index);
    slots.setHandle(index, handle);
    slots.setOwned(index, out.length | (prio << PRIO_SHIFT));
    Atomics.add(st, S.COMPR_DATA_SIZE, out.length);
    Atomics.add(st, S.PAGES_STORED, 1);
    slots.setAccessTime(index, acTime); // recompression is not an access
    return 1;
  }
}

function parseWriteback(request: WritebackRequest | WritebackMode | string): WritebackRequest {
  if (typeof request === 'object' && request !== null) return request;
  if (typeof request !== 'string') throw new ZsError('EINVAL', 'writeback: expected a mode');
  let m = /^page_index=(\d+)$/.exec(request);
  if (m) return { mode: 'page_index', index: Number(m[1]) };
  m = /^page_indexes=(\d+)-(\d+)$/.exec(request);
  if (m) return { mode: 'page_indexes', first: Number(m[1]), last: Number(m[2]) };
  return { mode: request as WritebackMode };
}
