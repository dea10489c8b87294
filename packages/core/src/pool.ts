// ZsPool: the zsmalloc allocator over shared memory. Owns malloc/free, object
// access (read/write and map/unmap), statistics, the debugfs "classes" text and
// the consistency check. Compaction (compaction.ts) and page migration
// (migrate.ts) work on the same state through the internals exposed here.
//
// The lock order is written once, in lock-classes.ts (checked at run time by
// lockdep when the pool is created with `lockdep: true`).
//
// lockMode 'class' (kernel 4.x-6.1 and 6.11+): the pool lock is an rwlock; malloc
// and free take only the class lock; object access takes the pool lock for reading
// just long enough to turn a handle into a zspage; compaction and migration take it
// for writing. lockMode 'pool' (6.2-6.10): one pool mutex replaces the rwlock and
// every class lock.
//
// Why free needs no pool lock (class mode). An object's location (its handle word,
// its frame's zspage, the zspage's class, the header naming the handle) is written
// only by malloc and free of that object, and by compaction and migration; all of
// them hold the object's class lock while they write it (compaction and migration
// also hold the pool lock for writing). free reads the location without locks,
// which may give a stale answer, takes the class lock the answer names, and then
// checks again under that lock that the handle word still holds the location, the
// frame still belongs to the zspage, the zspage is still of that class and the
// header still names the handle. Any change to one of those after the check would
// need the class lock we hold, so the object cannot move or be freed under us. If
// the check fails, the object moved (or was freed) between the read and the lock:
// free drops the lock and starts again. Two racing frees of one handle are
// serialised by the class lock; with per-CPU caches, whose frees take no class
// lock, the handle word is claimed by compare-and-swap instead. An unlocked
// read that finds no live object is repeated under the pool lock before EINVAL,
// so a free racing a move never reports a live handle as bad.
//
// Per-CPU object caches (percpuCache, percpu-cache.ts) add one rule: whatever moves
// objects or reads the caches as a whole (compaction, migration, verify, draining)
// takes the pool lock for writing, which also waits until no CPU is inside a
// lock-free cache operation, and makes new ones take the locked path meanwhile.

import { threadId } from 'node:worker_threads';

import { compactPool } from './compaction.js';

import {
  NR_FULLNESS_GROUPS,
  PAGE_SHIFT,
  PAGE_SIZE,
  ZS_DEFAULT_CHAIN,
  ZS_MAX_CHAIN,
  ZS_HANDLE_SIZE,
  ZS_INUSE_RATIO_10,
  ZS_INUSE_RATIO_99,
  ZS_SIZE_CLASSES,
} from './constants.js';

import {
  ARRAY_CTL,
  ARRAY_ID_FIRST_DYNAMIC,
  ARRAY_ZSPAGES,
  claimCpu,
  cpuHoldsRecords,
  deathCount,
  tagDead,
  deadCpus,
  markThreadDead,
  releaseCpu,
} from './cpu-registry.js';

import { ZsError } from './errors.js';

import { HandleTable, createHandleTable } from './handles.js';
import {
  LOCK_KIND_BIT,
  LOCK_KIND_MUTEX,
  LOCK_KIND_RW,
  collectLockStats,
  formatLockStat,
  lockClassNameBytes,
  lockStatWords,
  registerLockClass,
  type LockClassStats,
} from './lock-stat.js';

import {
  LC_CLASS,
  LC_HANDLE,
  LC_POOL,
  LC_ZONE,
  LC_ZSCACHE,
  LC_ZSPAGE,
  POOL_LOCK_CLASSES,
  SITE_ACCESS,
  SITE_FREE,
  SITE_LOCK_ALL,
  SITE_MALLOC,
  SITE_UNKNOWN,
  SITE_ZSPAGE_ID_ALLOC,
  SITE_ZSPAGE_ID_FREE,
} from './lock-classes.js';

import { LockContext } from './locks.js';

import {
  P_CHAIN,
  P_COMPACTING,
  P_CPUS,
  P_HANDLES,
  P_LOCK_ARRAY_IDS,
  P_KC_FAIL,
  P_KC_RUNS,
  P_KC_SUCCESS,
  P_LOCK,
  P_LOCKREG,
  P_LOCK_MODE,
  P_LOCK_STAT,
  P_MIGRATED,
  P_MIG_EBUSY,
  P_MIG_ENOMEM,
  P_MIG_GONE,
  P_PAGES_ALLOCATED,
  P_PAGES_COMPACTED,
  P_POOL_MUTEX,
  P_RULE,
  P_WORDS,
  P_ZS_COMPACT_RUNS,
  P_ZS_FREE_HEAD,
  P_ZS_HIGH,
  P_ZS_LOCK,
} from './pool-layout.js';

import { compactFrames } from './migrate.js';

import {
  MG_COUNT,
  MG_ENTRIES,
  MG_USED,
  PCP_CAPACITY,
  PCP_MAX_CPUS,
  PerCpuCache,
  createPerCpuCacheShared,
  drainAllCaches,
  flushMagazine,
  backRef,
  entryOf,
  reclaimCpuCaches,
  refillMagazine,
  type PerCpuCacheShared,
} from './percpu-cache.js';

import { PhysMem, assertOrder, createPhysMemShared, type PhysMemShared } from './phys-mem.js';
import { buildSizeClasses, classIndexFor, type ChainRule, type SizeClassTable } from './size-class.js';

import {
  CLF_WORDS,
  CL_COUNT,
  CL_GROUPS,
  CL_HEAD,
  CL_LOCK,
  CL_MOVED,
  CL_OBJ_ALLOCATED,
  CL_OBJ_USED,
  CL_WORDS,
  ZD_CLASS,
  ZD_FG,
  ZD_FIRST,
  ZD_FREEOBJ,
  ZD_FREE_NEXT,
  ZD_HUGE_SIZE,
  ZD_INUSE,
  ZD_ISOLATED,
  ZD_LOCK,
  ZD_NEXT,
  ZD_NRPAGES,
  ZD_PREV,
  ZD_STATE,
  ZD_WORDS,
  RESERVED_HEADER,
  ZS_STATE_FREE,
  ZS_STATE_LIVE,
  buildFullnessTable,
  decodeFreeLink,
  encodeFreeLink,
  encodeHeader,
  fullnessGroup,
} from './zspage.js';
import {
  PG_HUGE,
  PG_ISOLATED,
  PG_NEW,
  PG_RESERVED,
  PG_TAIL,
  PG_ZSPAGE,
  getFirstObjOffset,
  getFlags,
  getNextPfn,
  getOrder,
  getPagePrivate,
  getZspageOf,
  setFirstObjOffset,
  setFlags,
  setNextPfn,
  setOrder,
  setPagePrivate,
  setZspageOf,
} from './page-desc.js';
import { LOCATION_PFN_LIMIT, locationToObj, objToIdx, objToPfn } from './location.js';

export type LockMode = 'class' | 'pool';
export type MapMode = 'ro' | 'wo' | 'rw';

export interface PoolOptions {
  /** Cap on physical memory used by the pool, in bytes (rounded down to frames). */
  maxBytes: number;
  /** Max pages per zspage, 4..16 (default 8). */
  chainSize?: number;
  lockMode?: LockMode;
  lockStat?: boolean;
  /** Check every lock acquisition against the lock order (lock-classes.ts); an inversion throws. */
  lockdep?: boolean;
  name?: string;
  /** Chain-length rule: the current kernel's ('waste', default) or the original patch's ('percent'). */
  chainRule?: ChainRule;
  /** Size in bytes of a movable-only (CMA-like) region at the top of memory; 0 = none. */
  cmaBytes?: number;
  /**
   * Per-CPU object caches (magazines, percpu-cache.ts): malloc and free of non-huge
   * classes served without locks from a small per-thread batch of reserved objects.
   * Default off: the kernel has no such cache, and the lock study must see its path.
   */
  percpuCache?: boolean;
}

export interface ZsPoolShared {
  name: string;
  phys: PhysMemShared;
  ctl: SharedArrayBuffer;
  classes: SharedArrayBuffer;
  classBytes: SharedArrayBuffer;
  zspages: SharedArrayBuffer;
  handles: SharedArrayBuffer;
  lockStats: SharedArrayBuffer;
  lockNames: SharedArrayBuffer;
  /** The per-CPU object caches, when the pool was created with percpuCache. */
  percpu?: PerCpuCacheShared;
}

export interface PoolStats {
  pagesUsed: number;
  pagesCompacted: number;
  objAllocated: number;
  objUsed: number;
  bytesStored: number;
}

export interface ClassStat {
  index: number;
  size: number;
  fullness: number[];
  objAllocated: number;
  objUsed: number;
  pagesUsed: number;
  pagesPerZspage: number;
  freeable: number;
}

export interface MigrationStats {
  framesMigrated: number;
  failedBusy: number; // zspage mapped or being read (EBUSY)
  failedNoMem: number; // no free frame to move into
  failedGone: number; // frame no longer part of a zspage when isolated or migrated
  compactRuns: number; // frame-compaction runs
  compactSuccess: number; // runs that produced a free block of the requested order
  compactFail: number;
  objectsMoved: number; // objects moved by zspage compaction (memcpy calls)
  zsCompactRuns: number;
}

export class ZsPool {
  readonly shared: ZsPoolShared;
  readonly name: string;
  readonly table: SizeClassTable;
  readonly hugeClassSize: number;
  readonly lockMode: LockMode;
  readonly classMode: boolean;
  /** @internal per-thread views over the shared state */
  readonly ctl: Int32Array;
  readonly cls: Int32Array;
  readonly clsBytes: Float64Array;
  readonly zd: Int32Array;
  readonly phys: PhysMem;
  readonly handles: HandleTable;
  readonly locks: LockContext;
  readonly maxFrames: number;
  /** @internal the per-CPU object caches (null when off, or for a CPU id past PCP_MAX_CPUS) */
  readonly pcp: PerCpuCache | null;
  /** @internal every CPU's caches (null when the pool has none) */
  readonly pcpWords: Int32Array | null;
  readonly pcpBytes: Float64Array | null;
  /** Whether the pool was created with percpuCache. */
  readonly percpuCache: boolean;
  /** @internal fullness group of every in-use count of every class, no division. */
  private readonly fgBase: Int32Array;
  private readonly fgGroups: Uint8Array;
  /** Per-thread copy area for objects that straddle two frames (the per-CPU mapping area). */
  private readonly area = new Uint8Array(PAGE_SIZE);
  /** Per-thread scratch for a zspage's frame numbers (allocated and freed as one batch). */
  private readonly chainScratch = new Int32Array(ZS_MAX_CHAIN);
  private readonly lockNames: Uint8Array;
  private readonly lockStatsF64: Float64Array;
  // the one mapping this thread may hold (no nesting, as the kernel's per-CPU area)
  private mapHandle = 0;
  private mapZspage = 0;
  private mapOff = 0;
  private mapLen = 0;
  private mapCopied = false;
  private mapMode: MapMode = 'ro';
  private detached = false;

  private constructor(shared: ZsPoolShared) {
    this.shared = shared;
    this.name = shared.name;
    this.ctl = new Int32Array(shared.ctl);
    this.cls = new Int32Array(shared.classes);
    this.clsBytes = new Float64Array(shared.classBytes);
    this.zd = new Int32Array(shared.zspages);
    this.lockNames = new Uint8Array(shared.lockNames);
    this.lockStatsF64 = new Float64Array(shared.lockStats);
    const chain = this.ctl[P_CHAIN]!;
    this.table = buildSizeClasses(chain, this.ctl[P_RULE] === 1 ? 'percent' : 'waste');
    this.hugeClassSize = this.table.hugeClassSize;
    this.lockMode = this.ctl[P_LOCK_MODE] === 1 ? 'pool' : 'class';
    this.classMode = this.lockMode === 'class';
    const cpu = claimCpu(this.ctl, P_CPUS, threadId);
    const flags = this.ctl[P_LOCK_STAT]!;
    const lockdep = (flags & 2) !== 0 ? { reg: this.ctl.subarray(P_LOCKREG), names: this.lockNames } : null;
    this.locks = new LockContext(cpu, this.ctl, P_CPUS, this.lockStatsF64, (flags & 1) !== 0, lockdep);
    this.phys = new PhysMem(shared.phys, this.locks, LC_ZONE);
    this.maxFrames = this.phys.maxFrames;
    this.handles = new HandleTable(shared.handles, this.ctl, P_HANDLES, this.locks, LC_HANDLE);
    const fg = buildFullnessTable(this.table.objsPerZspage);
    this.fgBase = fg.base;
    this.fgGroups = fg.groups;
    this.percpuCache = shared.percpu !== undefined;
    this.pcpWords = shared.percpu !== undefined ? new Int32Array(shared.percpu.words) : null;
    this.pcpBytes = shared.percpu !== undefined ? new Float64Array(shared.percpu.bytes) : null;
    this.pcp = shared.percpu !== undefined && cpu < PCP_MAX_CPUS ? new PerCpuCache(shared.percpu, cpu) : null;
    this.locks.nameArray(shared.ctl, ARRAY_CTL);
    this.locks.nameArray(shared.zspages, ARRAY_ZSPAGES);
  }

  static create(opts: PoolOptions): ZsPool {
    if (opts === null || typeof opts !== 'object') throw new ZsError('EINVAL', 'pool options required');
    const maxFrames = Math.floor(Number(opts.maxBytes) / PAGE_SIZE);
    if (!Number.isFinite(maxFrames) || maxFrames < 1)
      throw new ZsError('EINVAL', `maxBytes must be at least ${PAGE_SIZE}, got ${opts.maxBytes}`);
    if (maxFrames >= LOCATION_PFN_LIMIT)
      throw new ZsError('EINVAL', `maxBytes must be below ${LOCATION_PFN_LIMIT * PAGE_SIZE} bytes`);
    const chain = opts.chainSize ?? ZS_DEFAULT_CHAIN;
    buildSizeClasses(chain, opts.chainRule ?? 'waste'); // validates chainSize
    const lockMode = opts.lockMode ?? 'class';
    if (lockMode !== 'class' && lockMode !== 'pool')
      throw new ZsError('EINVAL', `lockMode must be 'class' or 'pool', got ${String(lockMode)}`);
    const cmaFrames = Math.floor((opts.cmaBytes ?? 0) / PAGE_SIZE);
    if (cmaFrames < 0 || cmaFrames > maxFrames) throw new ZsError('EINVAL', 'cmaBytes must be within maxBytes');
    const maxHandles = maxFrames * (PAGE_SIZE / 32);
    const shared: ZsPoolShared = {
      name: opts.name ?? 'zs_pool',
      phys: createPhysMemShared(maxFrames, cmaFrames),
      ctl: new SharedArrayBuffer(P_WORDS * 4),
      classes: new SharedArrayBuffer(ZS_SIZE_CLASSES * CL_WORDS * 4),
      classBytes: new SharedArrayBuffer(ZS_SIZE_CLASSES * CLF_WORDS * 8),
      zspages: new SharedArrayBuffer((maxFrames + 1) * ZD_WORDS * 4),
      handles: createHandleTable(maxHandles),
      lockStats: new SharedArrayBuffer(lockStatWords() * 8),
      lockNames: new SharedArrayBuffer(lockClassNameBytes()),
    };
    if (opts.percpuCache === true) shared.percpu = createPerCpuCacheShared();
    else if (opts.percpuCache !== undefined && opts.percpuCache !== false)
      throw new ZsError('EINVAL', `percpuCache must be a boolean, got ${String(opts.percpuCache)}`);
    const ctl = new Int32Array(shared.ctl);
    ctl[P_CHAIN] = chain;
    ctl[P_LOCK_MODE] = lockMode === 'pool' ? 1 : 0;
    ctl[P_LOCK_STAT] = (opts.lockStat ? 1 : 0) | (opts.lockdep ? 2 : 0);
    ctl[P_RULE] = opts.chainRule === 'percent' ? 1 : 0;
    ctl[P_ZS_FREE_HEAD] = 0;
    ctl[P_ZS_HIGH] = 1;
    HandleTable.initControl(ctl, P_HANDLES, maxHandles);
    const cls = new Int32Array(shared.classes);
    for (let c = 0; c < ZS_SIZE_CLASSES; c++) {
      for (let g = 0; g < NR_FULLNESS_GROUPS; g++) cls[c * CL_WORDS + CL_HEAD + g] = 0;
    }
    const reg = ctl.subarray(P_LOCKREG);
    const names = new Uint8Array(shared.lockNames);
    for (const [id, name] of POOL_LOCK_CLASSES.entries()) {
      const rw = id === LC_ZSPAGE || (id === LC_POOL && lockMode === 'class');
      registerLockClass(reg, names, name, rw ? LOCK_KIND_RW : LOCK_KIND_MUTEX);
    }
    return new ZsPool(shared);
  }

  /** An equivalent pool object over the same shared memory, for another thread. */
  static attach(shared: ZsPoolShared): ZsPool {
    return new ZsPool(shared);
  }

  /** Gives this thread's CPU slot and cached handles back. The object is unusable after. */
  detach(): void {
    if (this.detached) return;
    if (this.pcp !== null) reclaimCpuCaches(this, this.locks.cpu);
    this.handles.drain();
    releaseCpu(this.ctl, P_CPUS, this.locks.cpu);
    this.detached = true;
  }

  /** Marks the CPU slots of a dead thread, so locks it held can be recovered. */
  markThreadDead(threadId: number): number[] {
    const cpus = markThreadDead(this.ctl, P_CPUS, threadId);
    // a dead CPU's magazines go back to their zspages
    if (this.percpuCache) for (const cpu of cpus) reclaimCpuCaches(this, cpu);
    return cpus;
  }

  /**
   * Returns every CPU's cached objects to their zspages (the compaction worker
   * does this before compacting, so reserved objects do not pin zspages). Returns
   * the number of objects returned. No-op without percpuCache.
   */
  drainCaches(): number {
    return this.percpuCache ? drainAllCaches(this) : 0;
  }

  /** A new id for an array of lock words outside the pool (a device's slot table), the same for every thread. */
  newLockArrayId(): number {
    return ARRAY_ID_FIRST_DYNAMIC + Atomics.add(this.ctl, P_LOCK_ARRAY_IDS, 1);
  }

  /** Tells this thread's lock context the id of an array of lock words (see newLockArrayId). */
  nameLockArray(buffer: ArrayBufferLike, id: number): void {
    this.locks.nameArray(buffer, id);
  }

  /**
   * Undoes what dead CPUs still hold in `words` according to their held-lock records
   * (bit locks, rwlock reader counts and writer bits) and wakes the waiters. Only
   * that array is touched: another device's words are never changed. Returns the
   * number released. Mutexes need no such help: their waiters see the dead owner in
   * the word.
   */
  recoverDeadLocks(words: Int32Array): number {
    return this.locks.recoverDeadAll(words);
  }

  /**
   * After a thread's death: clears a "compaction running" mark left by a compactor
   * that died (it would disable compaction for good). Returns true if one was.
   */
  repairAfterDeath(): boolean {
    this.reapDeadCpus();
    const c = Atomics.load(this.ctl, P_COMPACTING);
    return c !== 0 && tagDead(this.ctl, P_CPUS, c) && Atomics.compareExchange(this.ctl, P_COMPACTING, c, 0) === c;
  }

  /** Threads marked dead in this pool's CPU registry, ever. */
  deathCount(): number {
    return deathCount(this.ctl, P_CPUS);
  }

  /**
   * After a thread's death: undoes dead CPUs' records on the pool's own rwlocks and
   * hands back every dead slot that holds nothing any more, so slots are reused
   * however many threads die. Returns the number of slots handed back.
   */
  reapDeadCpus(): number {
    this.locks.recoverDeadAll(this.ctl);
    this.locks.recoverDeadAll(this.zd);
    let n = 0;
    for (const cpu of deadCpus(this.ctl, P_CPUS)) {
      if (cpuHoldsRecords(this.ctl, P_CPUS, cpu)) continue;
      releaseCpu(this.ctl, P_CPUS, cpu);
      n++;
    }
    return n;
  }

  get cpu(): number {
    return this.locks.cpu;
  }
  get chainSize(): number {
    return this.table.chainSize;
  }

  // ================================================================ locks

  lockClassId(name: string): number {
    return registerLockClass(this.ctl.subarray(P_LOCKREG), this.lockNames, name, LOCK_KIND_BIT);
  }
  bitLock(words: Int32Array, index: number, mask: number, cls: number, site = SITE_UNKNOWN): void {
    this.locks.bitLock(words, index, mask, cls, site);
  }
  bitUnlock(words: Int32Array, index: number, mask: number, _cls?: number): void {
    this.locks.bitUnlock(words, index, mask);
  }
  bitTrylock(words: Int32Array, index: number, mask: number, cls: number, site = SITE_UNKNOWN): boolean {
    return this.locks.bitTrylock(words, index, mask, cls, site);
  }

  /** @internal pool lock for reading (class mode) or the pool mutex (pool mode). */
  poolReadLock(site = SITE_UNKNOWN): void {
    if (this.classMode) this.locks.readLock(this.ctl, P_LOCK, LC_POOL, site);
    else this.locks.mutexLock(this.ctl, P_POOL_MUTEX, LC_POOL, site);
  }
  poolReadUnlock(): void {
    if (this.classMode) this.locks.readUnlock(this.ctl, P_LOCK);
    else this.locks.mutexUnlock(this.ctl, P_POOL_MUTEX);
  }
  /** @internal pool lock for writing; in pool mode this one lock also covers every class. */
  poolWriteLock(site = SITE_UNKNOWN): void {
    if (this.classMode) this.locks.writeLock(this.ctl, P_LOCK, LC_POOL, site);
    else this.locks.mutexLock(this.ctl, P_POOL_MUTEX, LC_POOL, site);
    // no CPU may be inside a lock-free cache operation while objects move
    if (this.percpuCache) PerCpuCache.quiesce(this.pcpWords!, this.ctl, P_CPUS);
  }
  poolWriteUnlock(): void {
    if (this.percpuCache) PerCpuCache.unquiesce(this.pcpWords!);
    if (this.classMode) this.locks.writeUnlock(this.ctl, P_LOCK);
    else this.locks.mutexUnlock(this.ctl, P_POOL_MUTEX);
  }
  /** @internal the class lock (class mode only; in pool mode the pool mutex covers it). */
  classLock(c: number, site = SITE_UNKNOWN): void {
    if (this.classMode) this.locks.mutexLock(this.cls, c * CL_WORDS + CL_LOCK, LC_CLASS, site);
  }
  classUnlock(c: number): void {
    if (this.classMode) this.locks.mutexUnlock(this.cls, c * CL_WORDS + CL_LOCK);
  }
  /** The lock malloc takes: the class lock, or in pool mode the one pool lock. */
  mallocLock(c: number): void {
    if (this.classMode) this.classLock(c, SITE_MALLOC);
    else this.locks.mutexLock(this.ctl, P_POOL_MUTEX, LC_POOL, SITE_MALLOC);
  }
  mallocUnlock(c: number): void {
    if (this.classMode) this.classUnlock(c);
    else this.locks.mutexUnlock(this.ctl, P_POOL_MUTEX);
  }

  /** @internal does anyone wait for the locks a compactor holds on class c? */
  compactionContended(c: number): boolean {
    if (this.classMode) {
      return this.locks.rwContended(this.ctl, P_LOCK) || this.locks.mutexContended(this.cls, c * CL_WORDS + CL_LOCK);
    }
    return this.locks.mutexContended(this.ctl, P_POOL_MUTEX);
  }
  zspageReadLock(zs: number, site = SITE_UNKNOWN): void {
    this.locks.readLock(this.zd, zs * ZD_WORDS + ZD_LOCK, LC_ZSPAGE, site);
  }
  zspageReadUnlock(zs: number): void {
    this.locks.readUnlock(this.zd, zs * ZD_WORDS + ZD_LOCK);
  }
  zspageWriteTrylock(zs: number, site = SITE_UNKNOWN): boolean {
    return this.locks.writeTrylock(this.zd, zs * ZD_WORDS + ZD_LOCK, LC_ZSPAGE, site);
  }
  zspageWriteUnlock(zs: number): void {
    this.locks.writeUnlock(this.zd, zs * ZD_WORDS + ZD_LOCK);
  }

  // ================================================================ geometry helpers

  /** Merged class index for an allocation of `size` bytes. */
  classIndexFor(size: number): number {
    return classIndexFor(this.table, size);
  }

  /** @internal frame holding byte `offset` of zspage `zs` (walks the chain). */
  frameAt(zs: number, offset: number): number {
    let pfn = this.zd[zs * ZD_WORDS + ZD_FIRST]!;
    for (let k = offset >>> PAGE_SHIFT; k > 0; k--) pfn = getNextPfn(this.phys.fd, pfn);
    // another thread may have grown memory to allocate this frame
    this.phys.ensure(pfn);
    return pfn;
  }

  /** @internal byte address of object `idx` in zspage `zs` and the frame it starts in. */
  private objStart(zs: number, c: number, idx: number): number {
    const off = idx * this.table.size[c]!;
    const pfn = this.frameAt(zs, off);
    this.startPfn = pfn;
    return pfn * PAGE_SIZE + (off & (PAGE_SIZE - 1));
  }
  private startPfn = 0;

  // ================================================================ fullness lists (class lock held)

  /** @internal */
  listInsert(c: number, zs: number, fg: number): void {
    const cls = this.cls;
    const zd = this.zd;
    const cb = c * CL_WORDS;
    const z = zs * ZD_WORDS;
    const head = cls[cb + CL_HEAD + fg]!;
    zd[z + ZD_FG] = fg;
    zd[z + ZD_PREV] = 0;
    zd[z + ZD_NEXT] = head;
    if (head !== 0) zd[head * ZD_WORDS + ZD_PREV] = zs;
    cls[cb + CL_HEAD + fg] = zs;
    cls[cb + CL_COUNT + fg]!++;
    cls[cb + CL_GROUPS]! |= 1 << fg;
  }

  /** @internal */
  listRemove(c: number, zs: number): void {
    const cls = this.cls;
    const zd = this.zd;
    const z = zs * ZD_WORDS;
    const fg = zd[z + ZD_FG]!;
    if (fg < 0) return;
    const prev = zd[z + ZD_PREV]!;
    const next = zd[z + ZD_NEXT]!;
    if (prev !== 0) zd[prev * ZD_WORDS + ZD_NEXT] = next;
    else {
      cls[c * CL_WORDS + CL_HEAD + fg] = next;
      if (next === 0) cls[c * CL_WORDS + CL_GROUPS]! &= ~(1 << fg);
    }
    if (next !== 0) zd[next * ZD_WORDS + ZD_PREV] = prev;
    zd[z + ZD_FG] = -1;
    zd[z + ZD_PREV] = 0;
    zd[z + ZD_NEXT] = 0;
    cls[c * CL_WORDS + CL_COUNT + fg]!--;
  }

  /** @internal moves a zspage to the list its in-use count says; returns the group. */
  fixFullness(c: number, zs: number): number {
    const z = zs * ZD_WORDS;
    const fg = this.fgGroups[this.fgBase[c]! + this.zd[z + ZD_INUSE]!]!;
    if (this.zd[z + ZD_FG] !== fg) {
      this.listRemove(c, zs);
      this.listInsert(c, zs, fg);
    }
    return fg;
  }

  /** @internal head of the first non-empty group from `from` down to `to` (or up), by the class's group bits. */
  firstInGroups(c: number, from: number, to: number): number {
    const cb = c * CL_WORDS;
    const lo = Math.min(from, to);
    const hi = Math.max(from, to);
    const bits = this.cls[cb + CL_GROUPS]! & ((2 << hi) - 1) & ~((1 << lo) - 1);
    if (bits === 0) return 0;
    const g = from >= to ? 31 - Math.clz32(bits) : 31 - Math.clz32(bits & -bits);
    return this.cls[cb + CL_HEAD + g]!;
  }

  // ================================================================ objects (class lock held)

  /** @internal takes a free object in zspage zs for handle h; returns the location word. */
  objMalloc(zs: number, c: number, h: number, size: number, publish = true): number {
    const zd = this.zd;
    const z = zs * ZD_WORDS;
    const idx = zd[z + ZD_FREEOBJ]!;
    let pfn: number;
    if (this.table.huge[c]) {
      pfn = zd[z + ZD_FIRST]!;
      setPagePrivate(this.phys.fd, pfn, h);
      zd[z + ZD_HUGE_SIZE] = size;
      zd[z + ZD_FREEOBJ] = -1;
    } else {
      const addr = this.objStart(zs, c, idx);
      pfn = this.startPfn;
      const words = this.phys.words;
      const w = addr >>> 2;
      zd[z + ZD_FREEOBJ] = decodeFreeLink(words[w]!);
      words[w] = encodeHeader(h);
      words[w + 1] = size;
    }
    zd[z + ZD_INUSE]!++;
    const cb = c * CL_WORDS;
    this.cls[cb + CL_OBJ_USED]!++;
    this.clsBytes[c] = this.clsBytes[c]! + size;
    const loc = locationToObj(pfn, idx);
    if (publish) this.publishHandle(h, loc);
    return loc;
  }

  /**
   * @internal points handle h at location loc. Compaction publishes only after the
   * copy, so a compactor killed midway leaves the handle on the old, intact copy.
   */
  publishHandle(h: number, loc: number): void {
    this.handles.inRange(h); // the handle may be newer than this thread's view of the table
    this.handles.words[h] = loc;
  }

  /** @internal frees object idx of zspage zs (its handle is dealt with by the caller). */
  objFree(zs: number, c: number, pfn: number, idx: number): void {
    const zd = this.zd;
    const z = zs * ZD_WORDS;
    let size: number;
    if (this.table.huge[c]) {
      size = zd[z + ZD_HUGE_SIZE]!;
      setPagePrivate(this.phys.fd, pfn, 0);
      zd[z + ZD_HUGE_SIZE] = 0;
    } else {
      this.phys.ensure(pfn);
      const off = idx * this.table.size[c]! - getPagePrivate(this.phys.fd, pfn) * PAGE_SIZE;
      const w = (pfn * PAGE_SIZE + off) >>> 2;
      const words = this.phys.words;
      size = words[w + 1]!;
      words[w] = encodeFreeLink(zd[z + ZD_FREEOBJ]!);
      words[w + 1] = 0;
    }
    zd[z + ZD_FREEOBJ] = idx;
    zd[z + ZD_INUSE]!--;
    this.cls[c * CL_WORDS + CL_OBJ_USED]!--;
    this.clsBytes[c] = this.clsBytes[c]! - size;
  }

  /**
   * @internal takes a free object of (non-huge) zspage zs for a per-CPU cache:
   * counted in the zspage's in-use count (it is allocated) but not in obj_used;
   * its header says reserved, so compaction leaves it alone. Returns its location
   * word (the caller records its magazine position in the object's second word).
   */
  objReserve(zs: number, c: number): number {
    const zd = this.zd;
    const z = zs * ZD_WORDS;
    const idx = zd[z + ZD_FREEOBJ]!;
    const w = this.objStart(zs, c, idx) >>> 2;
    const words = this.phys.words;
    zd[z + ZD_FREEOBJ] = decodeFreeLink(words[w]!);
    words[w] = RESERVED_HEADER;
    words[w + 1] = 0;
    zd[z + ZD_INUSE]!++;
    return locationToObj(this.startPfn, idx);
  }

  /** @internal gives a reserved object back to its zspage's free list. */
  objUnreserve(zs: number, c: number, idx: number): void {
    const zd = this.zd;
    const z = zs * ZD_WORDS;
    const w = this.objStart(zs, c, idx) >>> 2;
    const words = this.phys.words;
    words[w] = encodeFreeLink(zd[z + ZD_FREEOBJ]!);
    words[w + 1] = 0;
    zd[z + ZD_FREEOBJ] = idx;
    zd[z + ZD_INUSE]!--;
  }

  /**
   * @internal a new zspage for class c (no lock held on entry), counted and movable,
   * returned with the malloc lock held; the caller takes an object from it and then
   * puts it on its list (fixFullness). 0 on ENOMEM (lock not held then).
   */
  newZspageLocked(c: number): number {
    const zs = this.allocZspage(c);
    if (zs === 0) return 0;
    this.mallocLock(c);
    this.setMovable(zs);
    this.cls[c * CL_WORDS + CL_OBJ_ALLOCATED]! += this.table.objsPerZspage[c]!;
    Atomics.add(this.ctl, P_PAGES_ALLOCATED, this.table.pagesPerZspage[c]!);
    return zs;
  }

  /** objects in use in class c: the class counter plus every CPU cache's unfolded count. */
  objUsedOf(c: number): number {
    const n = this.cls[c * CL_WORDS + CL_OBJ_USED]!;
    return this.percpuCache ? n + PerCpuCache.usedDelta(this.pcpWords!, c) : n;
  }

  /** bytes stored in class c (class counter plus the CPU caches' unfolded bytes). */
  bytesOf(c: number): number {
    const n = this.clsBytes[c]!;
    return this.percpuCache ? n + PerCpuCache.bytesDelta(this.pcpBytes!, c) : n;
  }

  // ================================================================ zspages

  private zspageIdAlloc(): number {
    const ctl = this.ctl;
    this.locks.mutexLock(ctl, P_ZS_LOCK, LC_ZSCACHE, SITE_ZSPAGE_ID_ALLOC);
    let id = ctl[P_ZS_FREE_HEAD]!;
    if (id !== 0) ctl[P_ZS_FREE_HEAD] = this.zd[id * ZD_WORDS + ZD_FREE_NEXT]!;
    else if (ctl[P_ZS_HIGH]! <= this.maxFrames) id = ctl[P_ZS_HIGH]!++;
    this.locks.mutexUnlock(ctl, P_ZS_LOCK);
    return id;
  }

  private zspageIdFree(id: number): void {
    const ctl = this.ctl;
    this.locks.mutexLock(ctl, P_ZS_LOCK, LC_ZSCACHE, SITE_ZSPAGE_ID_FREE);
    this.zd[id * ZD_WORDS + ZD_STATE] = ZS_STATE_FREE;
    this.zd[id * ZD_WORDS + ZD_FREE_NEXT] = ctl[P_ZS_FREE_HEAD]!;
    ctl[P_ZS_FREE_HEAD] = id;
    this.locks.mutexUnlock(ctl, P_ZS_LOCK);
  }

  /** Allocates and initialises a zspage of class c (no class lock needed); 0 on ENOMEM. */
  private allocZspage(c: number): number {
    const id = this.zspageIdAlloc();
    if (id === 0) return 0;
    const k = this.table.pagesPerZspage[c]!;
    const objs = this.table.objsPerZspage[c]!;
    const size = this.table.size[c]!;
    const huge = this.table.huge[c] === 1;
    const fd = this.phys.fd;
    const pfns = this.chainScratch;
    if (!this.phys.allocFrames(pfns, k)) {
      this.zspageIdFree(id);
      return 0;
    }
    const first = pfns[0]!;
    for (let i = 0; i < k; i++) {
      const pfn = pfns[i]!;
      // Not movable until it is on a fullness list (the kernel's SetZsPageMovable).
      setFlags(fd, pfn, PG_NEW | (huge ? PG_HUGE : 0));
      setZspageOf(fd, pfn, id);
      setNextPfn(fd, pfn, -1);
      setPagePrivate(fd, pfn, huge ? 0 : i);
      // offset in this frame of the first object that starts in it
      const firstIdx = Math.ceil((i * PAGE_SIZE) / size);
      setFirstObjOffset(fd, pfn, firstIdx * size - i * PAGE_SIZE);
      if (i > 0) setNextPfn(fd, pfns[i - 1]!, pfn);
    }
    const zd = this.zd;
    const z = id * ZD_WORDS;
    zd[z + ZD_CLASS] = c;
    zd[z + ZD_INUSE] = 0;
    zd[z + ZD_FREEOBJ] = 0;
    zd[z + ZD_FIRST] = first;
    zd[z + ZD_FG] = -1;
    zd[z + ZD_PREV] = 0;
    zd[z + ZD_NEXT] = 0;
    zd[z + ZD_ISOLATED] = 0;
    zd[z + ZD_NRPAGES] = k;
    zd[z + ZD_HUGE_SIZE] = 0;
    zd[z + ZD_STATE] = ZS_STATE_LIVE;
    if (!huge) {
      const words = this.phys.words;
      for (let idx = 0; idx < objs; idx++) {
        const addr = this.objStart(id, c, idx);
        words[addr >>> 2] = encodeFreeLink(idx + 1 < objs ? idx + 1 : -1);
        words[(addr >>> 2) + 1] = 0;
      }
    }
    return id;
  }

  /** Makes a new zspage's frames movable; class lock held, as it goes on a list. */
  private setMovable(zs: number): void {
    const fd = this.phys.fd;
    for (let pfn = this.zd[zs * ZD_WORDS + ZD_FIRST]!; pfn >= 0; pfn = getNextPfn(fd, pfn)) {
      setFlags(fd, pfn, (getFlags(fd, pfn) & ~PG_NEW) | PG_ZSPAGE);
    }
  }

  /**
   * @internal releases an empty zspage (class lock held, zspage off the lists):
   * frames back to the buddy allocator. A frame isolated for migration is left to
   * the migrator, which finds it no longer part of a zspage and frees it.
   */
  freeZspage(c: number, zs: number): void {
    const zd = this.zd;
    const fd = this.phys.fd;
    const z = zs * ZD_WORDS;
    const k = zd[z + ZD_NRPAGES]!;
    const pfns = this.chainScratch;
    let n = 0;
    let pfn = zd[z + ZD_FIRST]!;
    while (pfn >= 0) {
      const next = getNextPfn(fd, pfn);
      if ((getFlags(fd, pfn) & PG_ISOLATED) !== 0) {
        setFlags(fd, pfn, PG_ISOLATED); // orphan: no longer PG_ZSPAGE
        setZspageOf(fd, pfn, 0);
        setNextPfn(fd, pfn, -1);
      } else {
        pfns[n++] = pfn;
      }
      pfn = next;
    }
    this.phys.freeFrames(pfns, n);
    this.cls[c * CL_WORDS + CL_OBJ_ALLOCATED]! -= this.table.objsPerZspage[c]!;
    Atomics.sub(this.ctl, P_PAGES_ALLOCATED, k);
    zd[z + ZD_FIRST] = -1;
    zd[z + ZD_INUSE] = 0;
    zd[z + ZD_ISOLATED] = 0;
    this.zspageIdFree(zs);
  }

  // ================================================================ handles

  /**
   * @internal resolves a handle to its location word, checking that it names a live
   * object; -1 if not. Caller holds the pool lock (read) so the location is stable.
   */
  resolve(h: number): number {
    if (!this.handles.inRange(h)) return -1;
    const loc = this.handles.words[h]!;
    if (loc < 0) return -1;
    const pfn = objToPfn(loc);
    const idx = objToIdx(loc);
    if (pfn >= this.maxFrames) return -1;
    this.phys.ensure(pfn);
    const fd = this.phys.fd;
    if ((getFlags(fd, pfn) & PG_ZSPAGE) === 0) return -1;
    const zs = getZspageOf(fd, pfn);
    const c = this.zd[zs * ZD_WORDS + ZD_CLASS]!;
    if (this.table.huge[c]) return getPagePrivate(fd, pfn) === h ? loc : -1;
    const off = idx * this.table.size[c]! - getPagePrivate(fd, pfn) * PAGE_SIZE;
    if (off < 0 || off >= PAGE_SIZE) return -1;
    return this.phys.words[(pfn * PAGE_SIZE + off) >>> 2] === encodeHeader(h) ? loc : -1;
  }

  private badHandle(h: number, what: string): ZsError {
    return new ZsError('EINVAL', `${what}: ${String(h)} is not a live handle`);
  }

  // ================================================================ public API

  malloc(size: number): number {
    return this.mallocObject(size, null);
  }

  /**
   * malloc of src.length bytes with src copied in, in one step: the copy is made
   * while the object is still held by the allocation (the class lock, or this
   * CPU's cache gate), so no second lookup and no zspage lock, as malloc and
   * write would take. What zram stores a compressed page with.
   */
  mallocWrite(src: Uint8Array): number {
    if (!(src instanceof Uint8Array)) throw new ZsError('EINVAL', 'mallocWrite: src must be a Uint8Array');
    return this.mallocObject(src.length, src);
  }

  private mallocObject(size: number, src: Uint8Array | null): number {
    if (!Number.isInteger(size) || size <= 0)
      throw new ZsError('EINVAL', `malloc size must be a positive integer, got ${String(size)}`);
    if (size > PAGE_SIZE) throw new ZsError('ENOSPC', `malloc size ${size} is larger than a page (${PAGE_SIZE})`);
    const c = this.classIndexFor(size);
    const h = this.handles.alloc();
    if (h === 0) throw new ZsError('ENOMEM', 'handle table exhausted');
    if (this.pcp !== null && this.table.huge[c] === 0 && this.mallocCached(c, h, size, src)) return h;
    this.mallocLock(c);
    let zs = this.firstInGroups(c, ZS_INUSE_RATIO_99, 0);
    if (zs === 0) {
      this.mallocUnlock(c);
      zs = this.newZspageLocked(c);
      if (zs === 0) {
        this.handles.release(h);
        throw new ZsError('ENOMEM', `pool '${this.name}' is out of memory (cap ${this.maxFrames} frames)`);
      }
    }
    const loc = this.objMalloc(zs, c, h, size);
    if (src !== null) this.copyIn(this.dataAddrOf(loc, c), src, size);
    this.fixFullness(c, zs);
    this.mallocUnlock(c);
    return h;
  }

  /** Byte address of the data of the object at location loc of class c (its frame in the views). */
  private dataAddrOf(loc: number, c: number): number {
    const pfn = objToPfn(loc);
    if (this.table.huge[c] !== 0) return pfn * PAGE_SIZE;
    const off = objToIdx(loc) * this.table.size[c]! - getPagePrivate(this.phys.fd, pfn) * PAGE_SIZE;
    return pfn * PAGE_SIZE + off + ZS_HANDLE_SIZE;
  }

  /**
   * malloc from this CPU's magazine of class c, without locks: refills it first if
   * empty. False when it cannot (a mover is at work, or no memory to refill): the
   * caller takes the locked path.
   */
  private mallocCached(c: number, h: number, size: number, src: Uint8Array | null): boolean {
    const pcp = this.pcp!;
    const w = pcp.words;
    const s = pcp.slot(c);
    if (w[s + MG_COUNT] === 0 && !refillMagazine(this, c)) return false;
    if (!pcp.enter()) return false;
    const n = w[s + MG_COUNT]!;
    if (n === 0) {
      pcp.exit(); // drained between the refill and now
      return false;
    }
    const loc = w[s + MG_ENTRIES + n - 1]!;
    const pfn = objToPfn(loc);
    this.phys.ensure(pfn);
    const off = objToIdx(loc) * this.table.size[c]! - getPagePrivate(this.phys.fd, pfn) * PAGE_SIZE;
    const a = (pfn * PAGE_SIZE + off) >>> 2;
    const words = this.phys.words;
    words[a] = encodeHeader(h);
    words[a + 1] = size;
    if (src !== null) this.copyIn(a * 4 + ZS_HANDLE_SIZE, src, size);
    this.handles.inRange(h);
    this.handles.words[h] = loc;
    w[s + MG_COUNT] = n - 1;
    w[s + MG_USED]!++;
    pcp.addBytes(c, size);
    pcp.exit();
    return true;
  }

  /**
   * free into this CPU's magazine, without locks. False when it cannot (a mover at
   * work, a huge object, a handle that does not name a live object): the locked
   * path decides (and reports a bad handle).
   */
  private freeCached(handle: number): boolean {
    const pcp = this.pcp!;
    const hw = this.handles;
    if (!hw.inRange(handle)) return false;
    for (;;) {
      if (!pcp.enter()) return false;
      // resolve the handle (movers are out while this CPU is busy)
      const loc = hw.words[handle]!;
      const pfn = objToPfn(loc);
      const fd = this.phys.fd;
      if (loc < 0 || pfn >= this.phys.viewFrames || (getFlags(fd, pfn) & PG_ZSPAGE) === 0) {
        pcp.exit();
        return false;
      }
      const zs = getZspageOf(fd, pfn);
      const c = this.zd[zs * ZD_WORDS + ZD_CLASS]!;
      const off = objToIdx(loc) * this.table.size[c]! - getPagePrivate(fd, pfn) * PAGE_SIZE;
      const a = (pfn * PAGE_SIZE + off) >>> 2;
      const words = this.phys.words;
      if (this.table.huge[c] !== 0 || off < 0 || off >= PAGE_SIZE || words[a] !== encodeHeader(handle)) {
        pcp.exit();
        return false;
      }
      const w = pcp.words;
      const s = pcp.slot(c);
      const n = w[s + MG_COUNT]!;
      if (n === PCP_CAPACITY) {
        pcp.exit();
        flushMagazine(this, c);
        continue;
      }
      // claim the handle: a racing free of the same handle loses here
      if (Atomics.compareExchange(hw.words, handle, loc, -1) !== loc) {
        pcp.exit();
        return false;
      }
      const osize = words[a + 1]!;
      words[a] = RESERVED_HEADER;
      words[a + 1] = backRef(pcp.cpu, n);
      w[s + MG_ENTRIES + n] = loc;
      w[s + MG_COUNT] = n + 1;
      w[s + MG_USED]!--;
      pcp.addBytes(c, -osize);
      pcp.exit();
      hw.release(handle);
      return true;
    }
  }

  free(handle: number): void {
    if (this.pcp !== null && this.freeCached(handle)) return;
    let c: number;
    let zs: number;
    let loc: number;
    if (this.classMode) {
      // No pool lock: see the lock-order block at the top of this file.
      for (;;) {
        loc = this.resolve(handle);
        if (loc < 0) {
          loc = this.resolveLocked(handle);
          if (loc < 0) throw this.badHandle(handle, 'free');
        }
        zs = getZspageOf(this.phys.fd, objToPfn(loc));
        c = this.zd[zs * ZD_WORDS + ZD_CLASS]!;
        if (c < 0 || c >= ZS_SIZE_CLASSES) continue; // a descriptor being reused: read again
        this.classLock(c, SITE_FREE);
        if (this.stillAt(handle, loc, zs, c)) break;
        this.classUnlock(c);
      }
    } else {
      this.locks.mutexLock(this.ctl, P_POOL_MUTEX, LC_POOL, SITE_FREE);
      loc = this.resolve(handle);
      if (loc < 0) {
        this.locks.mutexUnlock(this.ctl, P_POOL_MUTEX);
        throw this.badHandle(handle, 'free');
      }
      zs = getZspageOf(this.phys.fd, objToPfn(loc));
      c = this.zd[zs * ZD_WORDS + ZD_CLASS]!;
      this.handles.words[handle] = -1;
    }
    this.objFree(zs, c, objToPfn(loc), objToIdx(loc));
    const fg = this.fixFullness(c, zs);
    if (fg === 0) {
      this.listRemove(c, zs);
      this.freeZspage(c, zs);
    }
    if (this.classMode) this.classUnlock(c);
    else this.locks.mutexUnlock(this.ctl, P_POOL_MUTEX);
    this.handles.release(handle);
  }

  /**
   * free's check under class lock c: the handle still names location loc, whose
   * frame is still in zspage zs, still of class c, with the handle in its header.
   * Then claims the handle word (compare-and-swap to -1), so only one free wins.
   */
  private stillAt(handle: number, loc: number, zs: number, c: number): boolean {
    const pfn = objToPfn(loc);
    const fd = this.phys.fd;
    if ((getFlags(fd, pfn) & PG_ZSPAGE) === 0 || getZspageOf(fd, pfn) !== zs) return false;
    if (this.zd[zs * ZD_WORDS + ZD_CLASS] !== c || this.zd[zs * ZD_WORDS + ZD_STATE] !== ZS_STATE_LIVE) return false;
    if (this.table.huge[c] !== 0) {
      if (getPagePrivate(fd, pfn) !== handle) return false;
    } else {
      const off = objToIdx(loc) * this.table.size[c]! - getPagePrivate(fd, pfn) * PAGE_SIZE;
      if (off < 0 || off >= PAGE_SIZE || this.phys.words[(pfn * PAGE_SIZE + off) >>> 2] !== encodeHeader(handle))
        return false;
    }
    // with per-CPU caches a lock-free free may race for the handle: claim it atomically
    if (this.pcpWords !== null) return Atomics.compareExchange(this.handles.words, handle, loc, -1) === loc;
    if (this.handles.words[handle] !== loc) return false;
    this.handles.words[handle] = -1;
    return true;
  }

  /** resolve() under the pool read lock: the authoritative answer when the unlocked one says no. */
  private resolveLocked(handle: number): number {
    this.poolReadLock(SITE_FREE);
    const loc = this.resolve(handle);
    this.poolReadUnlock();
    return loc;
  }

  /**
   * Resolves and read-locks the zspage holding `handle` (pool lock for reading
   * only while turning the handle into a zspage). Returns the zspage id; the
   * location is left in this.accLoc. Throws EINVAL for a bad handle.
   */
  private beginAccess(handle: number, what: string): number {
    this.poolReadLock(SITE_ACCESS);
    const loc = this.resolve(handle);
    if (loc < 0) {
      this.poolReadUnlock();
      throw this.badHandle(handle, what);
    }
    const pfn = objToPfn(loc);
    const zs = getZspageOf(this.phys.fd, pfn);
    this.zspageReadLock(zs, SITE_ACCESS);
    this.poolReadUnlock();
    this.accPfn = pfn;
    this.accIdx = objToIdx(loc);
    return zs;
  }
  private accPfn = 0;
  private accIdx = 0;

  /** Byte address of the object's data and its length, for the object begun by beginAccess. */
  private dataAddr(zs: number): number {
    const c = this.zd[zs * ZD_WORDS + ZD_CLASS]!;
    const pfn = this.accPfn;
    if (this.table.huge[c]) {
      this.accLen = this.zd[zs * ZD_WORDS + ZD_HUGE_SIZE]!;
      return pfn * PAGE_SIZE;
    }
    const off = this.accIdx * this.table.size[c]! - getPagePrivate(this.phys.fd, pfn) * PAGE_SIZE;
    const addr = pfn * PAGE_SIZE + off;
    this.accLen = this.phys.words[(addr >>> 2) + 1]!;
    return addr + ZS_HANDLE_SIZE;
  }
  private accLen = 0;

  objSize(handle: number): number {
    const zs = this.beginAccess(handle, 'objSize');
    this.dataAddr(zs);
    const len = this.accLen;
    this.zspageReadUnlock(zs);
    return len;
  }

  /** Copies src into the object (src.length <= objSize), straight into the frames. */
  write(handle: number, src: Uint8Array): void {
    const zs = this.beginAccess(handle, 'write');
    try {
      const addr = this.dataAddr(zs);
      if (src.length > this.accLen)
        throw new ZsError('EINVAL', `write of ${src.length} bytes into an object of ${this.accLen}`);
      this.copyIn(addr, src, src.length);
    } finally {
      this.zspageReadUnlock(zs);
    }
  }

  /** Copies the object into dst (dst.length >= objSize); returns objSize. */
  read(handle: number, dst: Uint8Array): number {
    const zs = this.beginAccess(handle, 'read');
    try {
      const addr = this.dataAddr(zs);
      const len = this.accLen;
      if (dst.length < len) throw new ZsError('EINVAL', `read of an object of ${len} bytes into ${dst.length}`);
      this.copyOut(addr, dst, len);
      return len;
    } finally {
      this.zspageReadUnlock(zs);
    }
  }

  /** Copies `len` bytes of src to address addr of zspage zs, crossing into the next frame if needed. */
  private copyIn(addr: number, src: Uint8Array, len: number): void {
    const room = PAGE_SIZE - (addr & (PAGE_SIZE - 1));
    if (len <= room) {
      this.phys.bytes.set(len === src.length ? src : src.subarray(0, len), addr);
      return;
    }
    const next = this.nextFrameBase(addr);
    const all = this.phys.bytes;
    all.set(src.subarray(0, room), addr);
    all.set(src.subarray(room, len), next);
  }

  private copyOut(addr: number, dst: Uint8Array, len: number): void {
    const room = PAGE_SIZE - (addr & (PAGE_SIZE - 1));
    if (len <= room) {
      dst.set(this.phys.bytes.subarray(addr, addr + len));
      return;
    }
    const next = this.nextFrameBase(addr);
    const all = this.phys.bytes;
    dst.set(all.subarray(addr, addr + room));
    dst.set(all.subarray(next, next + len - room), room);
  }

  /**
   * @internal byte address of the frame that follows, in its zspage chain, the frame
   * holding byte `addr` (an object crossing a frame boundary continues there).
   */
  nextFrameBase(addr: number): number {
    const next = getNextPfn(this.phys.fd, addr >>> PAGE_SHIFT);
    this.phys.ensure(next);
    return next * PAGE_SIZE;
  }

  /**
   * Maps the object: a view straight into the frame when the object lies in one
   * frame, else this thread's copy area (filled unless 'wo'). Valid until unmap.
   * One mapping per thread at a time; the zspage stays read-locked meanwhile, so
   * compaction and migration skip it.
   */
  map(handle: number, mode: MapMode): Uint8Array {
    if (mode !== 'ro' && mode !== 'wo' && mode !== 'rw')
      throw new ZsError('EINVAL', `map mode must be ro, wo or rw, got ${String(mode)}`);
    if (this.mapHandle !== 0)
      throw new ZsError('EBUSY', `this thread already maps handle ${this.mapHandle}; unmap it first`);
    const zs = this.beginAccess(handle, 'map');
    const addr = this.dataAddr(zs);
    const len = this.accLen;
    this.mapHandle = handle;
    this.mapZspage = zs;
    this.mapOff = addr;
    this.mapLen = len;
    this.mapMode = mode;
    const room = PAGE_SIZE - (addr & (PAGE_SIZE - 1));
    if (len <= room) {
      this.mapCopied = false;
      return this.phys.bytes.subarray(addr, addr + len);
    }
    this.mapCopied = true;
    if (mode !== 'wo') this.copyOut(addr, this.area, len);
    return this.area.subarray(0, len);
  }

  unmap(handle: number): void {
    if (this.mapHandle === 0 || this.mapHandle !== handle) {
      throw new ZsError('EINVAL', `unmap of handle ${String(handle)} which this thread has not mapped`);
    }
    const zs = this.mapZspage;
    if (this.mapCopied && this.mapMode !== 'ro') this.copyIn(this.mapOff, this.area, this.mapLen);
    this.mapHandle = 0;
    this.zspageReadUnlock(zs);
  }

  /** Pages compaction could free in class c (zs_can_compact). */
  canCompact(c: number): number {
    const cb = c * CL_WORDS;
    const wasted = this.cls[cb + CL_OBJ_ALLOCATED]! - this.objUsedOf(c);
    return Math.floor(wasted / this.table.objsPerZspage[c]!) * this.table.pagesPerZspage[c]!;
  }

  /** The shrinker's count: pages compaction could free over all classes. */
  compactable(): number {
    let n = 0;
    for (const c of this.table.distinct) n += this.canCompact(c);
    return n;
  }

  compact(): number {
    return compactPool(this);
  }

  stats(): PoolStats {
    let objAllocated = 0;
    let objUsed = 0;
    let bytes = 0;
    for (const c of this.table.distinct) {
      objAllocated += this.cls[c * CL_WORDS + CL_OBJ_ALLOCATED]!;
      objUsed += this.objUsedOf(c);
      bytes += this.bytesOf(c);
    }
    return {
      pagesUsed: Atomics.load(this.ctl, P_PAGES_ALLOCATED),
      pagesCompacted: Atomics.load(this.ctl, P_PAGES_COMPACTED),
      objAllocated,
      objUsed,
      bytesStored: bytes,
    };
  }

  migrationStats(): MigrationStats {
    const c = this.ctl;
    let moved = 0;
    for (const k of this.table.distinct) moved += this.cls[k * CL_WORDS + CL_MOVED]!;
    return {
      framesMigrated: Atomics.load(c, P_MIGRATED),
      failedBusy: Atomics.load(c, P_MIG_EBUSY),
      failedNoMem: Atomics.load(c, P_MIG_ENOMEM),
      failedGone: Atomics.load(c, P_MIG_GONE),
      compactRuns: Atomics.load(c, P_KC_RUNS),
      compactSuccess: Atomics.load(c, P_KC_SUCCESS),
      compactFail: Atomics.load(c, P_KC_FAIL),
      objectsMoved: moved,
      zsCompactRuns: Atomics.load(c, P_ZS_COMPACT_RUNS),
    };
  }

  classStats(): ClassStat[] {
    const out: ClassStat[] = [];
    for (let c = 0; c < ZS_SIZE_CLASSES; c++) {
      if (this.table.merged[c] !== c) continue;
      const cb = c * CL_WORDS;
      const fullness: number[] = [];
      for (let g = 0; g < NR_FULLNESS_GROUPS; g++) fullness.push(this.cls[cb + CL_COUNT + g]!);
      out.push({
        index: c,
        size: this.table.size[c]!,
        fullness,
        objAllocated: this.cls[cb + CL_OBJ_ALLOCATED]!,
        objUsed: this.objUsedOf(c),
        pagesUsed: (this.cls[cb + CL_OBJ_ALLOCATED]! / this.table.objsPerZspage[c]!) * this.table.pagesPerZspage[c]!,
        pagesPerZspage: this.table.pagesPerZspage[c]!,
        freeable: this.canCompact(c),
      });
    }
    return out;
  }

  /** The debugfs "classes" file of the pool. */
  classesText(): string {
    const head = [
      ' class',
      ' size',
      ...['10%', '20%', '30%', '40%', '50%', '60%', '70%', '80%', '90%', '99%', '100%'].map((s) => s.padStart(9)),
    ];
    const lines = [
      `${' class'.padStart(6)} ${'size'.padStart(5)} ${head.slice(2).join(' ')} ${'obj_allocated'.padStart(13)} ${'obj_used'.padStart(10)} ${'pages_used'.padStart(10)} ${'pages_per_zspage'.padStart(16)} ${'freeable'.padStart(8)}`,
    ];
    const totals = new Array<number>(NR_FULLNESS_GROUPS).fill(0);
    let tAlloc = 0;
    let tUsed = 0;
    let tPages = 0;
    let tFree = 0;
    for (const s of this.classStats()) {
      let line = ` ${String(s.index).padStart(5)} ${String(s.size).padStart(5)} `;
      for (let g = ZS_INUSE_RATIO_10; g < NR_FULLNESS_GROUPS; g++) {
        totals[g]! += s.fullness[g]!;
        line += `${String(s.fullness[g]).padStart(9)} `;
      }
      line += `${String(s.objAllocated).padStart(13)} ${String(s.objUsed).padStart(10)} ${String(s.pagesUsed).padStart(10)} ${String(s.pagesPerZspage).padStart(16)} ${String(s.freeable).padStart(8)}`;
      lines.push(line);
      tAlloc += s.objAllocated;
      tUsed += s.objUsed;
      tPages += s.pagesUsed;
      tFree += s.freeable;
    }
    let total = ' Total              ';
    for (let g = ZS_INUSE_RATIO_10; g < NR_FULLNESS_GROUPS; g++) total += `${String(totals[g]).padStart(9)} `;
    total += `${String(tAlloc).padStart(13)} ${String(tUsed).padStart(10)} ${String(tPages).padStart(10)} ${''.padStart(16)} ${String(tFree).padStart(8)}`;
    lines.push(total);
    return `${lines.join('\n')}\n`;
  }

  /** lock_stat per class and state; `withPoints` false skips the per-call-site contention points (cheaper). */
  lockStats(withPoints = true): LockClassStats[] {
    return collectLockStats(this.ctl.subarray(P_LOCKREG), this.lockNames, this.lockStatsF64, withPoints);
  }

  lockStatText(): string {
    return formatLockStat(this.lockStats());
  }

  /** Clears the lock statistics (as writing 0 to /proc/lock_stat). */
  clearLockStat(): void {
    this.lockStatsF64.fill(0);
  }

  buddyinfo(): number[] {
    return this.phys.buddyinfo();
  }

  /** The unusable free space index per order, as /sys/kernel/debug/extfrag/unusable_index. */
  unusableIndex(): number[] {
    return this.phys.unusableIndex();
  }

  /** Frames in use by the pool's zspages. */
  pagesUsed(): number {
    return Atomics.load(this.ctl, P_PAGES_ALLOCATED);
  }

  /**
   * A 2^order block of frames for another user of physical memory (unmovable).
   * Runs frame compaction when no block of that order is free; ENOMEM if still none.
   */
  allocPages(order: number): number {
    assertOrder(order);
    let pfn = this.phys.allocBlock(order, false);
    if (pfn < 0) {
      compactFrames(this, order);
      pfn = this.phys.allocBlock(order, false);
    }
    if (pfn < 0) throw new ZsError('ENOMEM', `no free block of order ${order}, even after frame compaction`);
    this.phys.ensure(pfn + (1 << order) - 1);
    const fd = this.phys.fd;
    setFlags(fd, pfn, PG_RESERVED);
    setOrder(fd, pfn, order);
    for (let k = 1; k < 1 << order; k++) {
      setFlags(fd, pfn + k, PG_TAIL);
      setOrder(fd, pfn + k, 0);
    }
    return pfn;
  }

  freePages(pfn: number, order: number): void {
    assertOrder(order);
    if (!Number.isInteger(pfn) || pfn < 0 || pfn >= this.phys.presentFrames)
      throw new ZsError('EINVAL', `freePages: ${String(pfn)} is not a frame number`);
    const fd = this.phys.fd;
    this.phys.zoneLock();
    const ok = getFlags(fd, pfn) === PG_RESERVED && getOrder(fd, pfn) === order;
    if (ok) setFlags(fd, pfn, 0);
    this.phys.zoneUnlock();
    if (!ok)
      throw new ZsError('EINVAL', `freePages: frame ${pfn} is not the head of an allocated order-${order} block`);
    this.phys.freeBlock(pfn, order);
  }

  /** Physical memory as frame kinds: 0 free, 1 zspage, 2 huge zspage, 3 isolated, 4 allocPages. */
  frameMap(): Uint8Array {
    const n = this.phys.presentFrames;
    const out = new Uint8Array(n);
    const fd = this.phys.fd;
    for (let pfn = 0; pfn < n; pfn++) {
      const f = getFlags(fd, pfn);
      out[pfn] = f & PG_ISOLATED ? 3 : f & PG_HUGE ? 2 : f & PG_ZSPAGE ? 1 : f & (PG_RESERVED | PG_TAIL) ? 4 : 0;
    }
    return out;
  }

  // ================================================================ verify

  /** Takes every lock of the pool, in order. */
  lockAll(): void {
    this.poolWriteLock(SITE_LOCK_ALL);
    if (this.classMode)
      for (const c of this.table.distinct.slice().sort((a, b) => a - b)) this.classLock(c, SITE_LOCK_ALL);
    this.phys.zoneLock(SITE_LOCK_ALL);
  }

  unlockAll(): void {
    this.phys.zoneUnlock();
    if (this.classMode) for (const c of this.table.distinct) this.classUnlock(c);
    this.poolWriteUnlock();
  }

  /** Full consistency check of every structure; throws on the first broken invariant. */
  verify(): void {
    if (this.mapHandle !== 0) throw new Error('verify() while this thread holds a mapping');
    this.lockAll();
    try {
      verifyLocked(this);
    } finally {
      this.unlockAll();
    }
  }

  /** @internal counters for migration and compaction modules */
  bump(word: number, n = 1): void {
    Atomics.add(this.ctl, word, n);
  }
}

function verifyLocked(pool: ZsPool): void {
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
            const addr = chain[off >>> PAGE_SHIFT]! * PAGE_SIZE + (off & (PAGE_SIZE - 1));
            const w = phys.words[addr >>> 2]!;
            if ((w & 1) !== 0) throw new Error(`${where}: free object ${idx} has the allocated tag`);
            idx = decodeFreeLink(w);
          }
          if (freeCount !== objs - inuse)
            throw new Error(`${where}: ${freeCount} free objects but inuse ${inuse}/${objs}`);
          for (let idx = 0; idx < objs; idx++) {
            if (isFree[idx]) continue;
            const off = idx * size;
            const pfn = chain[off >>> PAGE_SHIFT]!;
            const addr = pfn * PAGE_SIZE + (off & (PAGE_SIZE - 1));
            const w = phys.words[addr >>> 2]!;
            if ((w & 1) !== 1) throw new Error(`${where}: object ${idx} neither free nor allocated`);
            if (w === RESERVED_HEADER) {
              if (pool.pcpWords === null) throw new Error(`${where}: object ${idx} reserved in a pool without caches`);
              const loc = locationToObj(pfn, idx);
              if (pool.pcpWords[entryOf(phys.words[(addr >>> 2) + 1]!, c)] !== loc)
                throw new Error(`${where}: reserved object ${idx}'s magazine position does not name it`);
              reserved.add(loc);
              continue;
            }
            const h = w >>> 1;
            if (!pool.handles.inRange(h) || pool.handles.words[h] !== locationToObj(pfn, idx)) {
              throw new Error(`${where}: object ${idx}'s handle ${h} does not point back to it`);
            }
            const osize = phys.words[(addr >>> 2) + 1]!;
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
    if (used !== pool.objUsedOf(c)) throw new Error(`class ${c}: obj_used ${pool.objUsedOf(c)} but ${used} counted`);
    if (allocated !== pool.cls[cb + CL_OBJ_ALLOCATED])
      throw new Error(`class ${c}: obj_allocated ${pool.cls[cb + CL_OBJ_ALLOCATED]} but ${allocated} counted`);
    if (bytes !== pool.bytesOf(c)) throw new Error(`class ${c}: bytes stored ${pool.bytesOf(c)} but ${bytes} counted`);
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
