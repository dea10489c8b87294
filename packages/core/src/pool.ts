// ZsPool: the zsmalloc allocator over shared memory, the facade of this package.
// Owns the pool's options and creation, a thread's attach and detach, malloc and
// free, object access (read/write and map/unmap, one mapping per thread), and
// hands everything else to the modules cut along the kernel's concepts:
//   lock-policy.ts   class or pool lock mode, chosen once per pool object
//   fullness.ts      the fullness lists (insert, remove, fix, isolate, putback)
//   objects.ts       objects in zspages, handle resolution, copies across frames
//   zspage-alloc.ts  building and releasing zspages, the zspage id cache
//   pool-stats.ts    statistics and the "classes" text
//   verify.ts        the consistency check
//   compaction.ts, migrate.ts, percpu-cache.ts
// Those modules take this object through narrow interfaces (the views below).
//
// The lock order is written once, in lock-classes.ts (checked at run time by
// lockdep when the pool is created with `lockdep: true`). Why free needs no pool
// lock in class mode is written in lock-policy.ts.
//
// Per-CPU object caches (percpuCache, percpu-cache.ts) add one rule: whatever moves
// objects or reads the caches as a whole (compaction, migration, verify, draining)
// takes the pool lock for writing, which also waits until no CPU is inside a
// lock-free cache operation, and makes new ones take the locked path meanwhile.

import { threadId } from 'node:worker_threads';
import { compactPool } from './compaction.js';
import {
  NR_FULLNESS_GROUPS,
  PAGE_SIZE,
  ZS_DEFAULT_CHAIN,
  ZS_HANDLE_SIZE,
  ZS_MAX_CHAIN,
  ZS_SIZE_CLASSES,
} from './constants.js';
import {
  ARRAY_CLASSES,
  ARRAY_CTL,
  ARRAY_ID_FIRST_DYNAMIC,
  ARRAY_ZSPAGES,
  claimCpu,
  cpuHoldsRecords,
  deadCpus,
  deathCount,
  markThreadDead,
  releaseCpu,
  tagDead,
} from './cpu-registry.js';
import { ZsError } from './errors.js';
import { findZspage, fixFullness } from './fullness.js';
import { HANDLE_MAX, HandleTable, createHandleTable } from './handles.js';
import {
  LC_HANDLE,
  LC_POOL,
  LC_ZONE,
  LC_ZSPAGE,
  POOL_LOCK_CLASSES,
  SITE_ACCESS,
  SITE_LOCK_ALL,
  SITE_UNKNOWN,
} from './lock-classes.js';
import { type LockMode, type PoolLockPolicy, createLockPolicy } from './lock-policy.js';
import {
  LOCK_KIND_BIT,
  LOCK_KIND_MUTEX,
  LOCK_KIND_RW,
  type LockClassStats,
  collectLockStats,
  formatLockStat,
  lockClassNameBytes,
  lockStatWords,
  registerLockClass,
} from './lock-stat.js';
import { LockContext } from './locks.js';
import { objToOffset, objToPfn } from './location.js';
import { compactFrames } from './migrate.js';
import {
  copyIn,
  copyOut,
  objDataAddr,
  objDataLen,
  objFree,
  objMalloc,
  publishHandle,
  resolveHandle,
  zspageClass,
  zspageOfObj,
} from './objects.js';
import {
  PG_HUGE,
  PG_ISOLATED,
  PG_RESERVED,
  PG_TAIL,
  PG_ZSPAGE,
  frameByte,
  getFlags,
  getOrder,
  getZspageOf,
  offsetInFrame,
  setFlags,
  setOrder,
} from './page-desc.js';
import {
  CacheGates,
  MG_COUNT,
  MG_ENTRIES,
  MG_USED,
  PCP_CAPACITY,
  PCP_MAX_CPUS,
  PerCpuCache,
  type PerCpuCacheShared,
  backRef,
  createPerCpuCacheShared,
  drainAllCaches,
  flushMagazine,
  reclaimCpuCaches,
  refillMagazine,
} from './percpu-cache.js';
import {
  PHYS_MAX_FRAMES,
  PhysMem,
  type PhysMemShared,
  SEGMENT_MAX_BYTES,
  assertOrder,
  createPhysMemShared,
} from './phys-mem.js';
import {
  P_CHAIN,
  P_COMPACTING,
  P_CPUS,
  P_HANDLES,
  P_LOCK,
  P_LOCKREG,
  P_LOCK_ARRAY_IDS,
  P_LOCK_MODE,
  P_LOCK_STAT,
  P_MIG_SETTLED,
  P_PAGES_ALLOCATED,
  P_POOL_MUTEX,
  P_RULE,
  P_WORDS,
  P_ZS_FREE_HEAD,
  P_ZS_HIGH,
} from './pool-layout.js';
import {
  type ClassStat,
  type MigrationStats,
  type PoolStats,
  bytesOf,
  canCompact,
  classStats,
  classesText,
  migrationStats,
  objUsedOf,
  poolStats,
} from './pool-stats.js';
import { type ChainRule, type SizeClassTable, buildSizeClasses, classIndexFor } from './size-class.js';
import { verifyLocked } from './verify.js';
import type { AtomicMemory } from './wasm-atomics.js';
import {
  CLF_WORDS,
  CL_HEAD,
  CL_WORDS,
  RESERVED_HEADER,
  ZD_STATE,
  ZD_WORDS,
  ZS_STATE_LIVE,
  buildFullnessTable,
  encodeHeader,
  zspageReadLock,
  zspageReadUnlock,
  zspageWriteTrylock,
  zspageWriteUnlock,
} from './zspage.js';
import { freeEmptyZspage, newZspageLocked, zspageIdFree } from './zspage-alloc.js';
import { createIntentLog, deadIntents, intentBase, intentPending } from './intent-log.js';
import { repairPoolLocked, settleDeadMigration } from './pool-repair.js';

export type { ClassStat, LockMode, MigrationStats, PoolStats };
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
  /**
   * Testing knob: bytes per segment of physical memory (phys-mem.ts), a power of two
   * from 4 MiB to 4 GiB (default 4 GiB, the largest). Small segments put segment
   * boundaries inside a small pool, so tests cover what a pool past 4 GiB does at
   * them; a real pool gains nothing from them.
   */
  segmentBytes?: number;
}

// The per-CPU cache hit paths (mallocObject, mallocCached, freeCached) read
// module-local copies of the constants they use: the engine folds a module's own
// constants into its compiled code, but loads and checks an imported one at
// every use (docs/design.md).
const COUNT = MG_COUNT;
const ENTRIES = MG_ENTRIES;
const USED = MG_USED;
const CAPACITY = PCP_CAPACITY;
const ZSPAGE_FRAME = PG_ZSPAGE;
const RESERVED = RESERVED_HEADER;
const HANDLE_SIZE = ZS_HANDLE_SIZE;
const PAGE = PAGE_SIZE;

export interface ZsPoolShared {
  name: string;
  phys: PhysMemShared;
  ctl: SharedArrayBuffer;
  classes: SharedArrayBuffer;
  classBytes: SharedArrayBuffer;
  zspages: SharedArrayBuffer;
  /** The handle table's words (a shared WebAssembly memory). */
  handles: AtomicMemory;
  lockStats: SharedArrayBuffer;
  lockNames: SharedArrayBuffer;
  /** Per-CPU intent records (intent-log.ts): what a thread is in the middle of, for the repair after its death. */
  intents: SharedArrayBuffer;
  /** The per-CPU object caches, when the pool was created with percpuCache. */
  percpu?: PerCpuCacheShared;
}

function mallocSizeError(size: number): ZsError {
  if (!Number.isInteger(size) || size <= 0)
    return new ZsError('EINVAL', `malloc size must be a positive integer, got ${String(size)}`);
  return new ZsError('ENOSPC', `malloc size ${size} is larger than a page (${PAGE_SIZE})`);
}

export class ZsPool {
  readonly shared: ZsPoolShared;
  readonly name: string;
  readonly table: SizeClassTable;
  readonly hugeClassSize: number;
  readonly lockMode: LockMode;
  // This thread's views over the shared state; the pool's modules read them
  // through their narrow interfaces (CompactionSpace, MigrationSpace, ...).
  readonly ctl: Int32Array;
  readonly cls: Int32Array;
  readonly clsBytes: Float64Array;
  readonly zd: Int32Array;
  readonly phys: PhysMem;
  readonly handles: HandleTable;
  readonly locks: LockContext;
  /** The lock policy of the pool's lock mode (lock-policy.ts). */
  readonly lock: PoolLockPolicy;
  readonly maxFrames: number;
  /** This thread's per-CPU object caches (null when off, or for a CPU id past PCP_MAX_CPUS). */
  readonly pcp: PerCpuCache | null;
  /** Every CPU's caches (null when the pool has none). */
  readonly pcpWords: Int32Array | null;
  readonly pcpBytes: Float64Array | null;
  /** Whether the pool was created with percpuCache. */
  readonly percpuCache: boolean;
  /** Fullness group of every in-use count of every class, no division (fullness.ts). */
  readonly fgBase: Int32Array;
  readonly fgGroups: Uint8Array;
  /** Per-thread scratch for a zspage's frame numbers (allocated and freed as one batch). */
  readonly chainScratch = new Int32Array(ZS_MAX_CHAIN);
  /** @internal the intent records (intent-log.ts) and this CPU's first word in them */
  readonly intent: Int32Array;
  readonly intentAt: number;
  /** Per-thread copy area for objects that straddle two frames (the per-CPU mapping area). */
  private readonly area = new Uint8Array(PAGE_SIZE);
  /** The distinct classes in ascending order: the order lockAll takes their locks in. */
  private readonly classesAscending: readonly number[];
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
    this.classesAscending = this.table.distinct.slice().sort((a, b) => a - b);
    this.intent = new Int32Array(shared.intents);
    // a dead thread's slot is reused only once its intent records were repaired
    const cpu = claimCpu(this.ctl, P_CPUS, threadId, (c) => intentPending(this.intent, c));
    this.intentAt = intentBase(cpu);
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
    this.pcpWords = shared.percpu !== undefined ? new Int32Array(shared.percpu.words.buffer) : null;
    this.pcpBytes = shared.percpu !== undefined ? new Float64Array(shared.percpu.bytes) : null;
    this.pcp = shared.percpu !== undefined && cpu < PCP_MAX_CPUS ? new PerCpuCache(shared.percpu, cpu) : null;
    const gate = this.pcpWords !== null ? new CacheGates(this.pcpWords, this.ctl, P_CPUS) : null;
    this.lock = createLockPolicy(this.lockMode, this.locks, this.ctl, this.cls, gate);
    this.locks.nameArray(shared.ctl, ARRAY_CTL);
    this.locks.nameArray(shared.zspages, ARRAY_ZSPAGES);
    this.locks.nameArray(shared.classes, ARRAY_CLASSES);
    // whoever takes over a lock a dead migrator held settles its migration first
    const settle = (cpu: number, gen: number): void => {
      if (settleDeadMigration(this, cpu, gen, this.locks.tag, this.isDeadTag)) Atomics.add(this.ctl, P_MIG_SETTLED, 1);
    };
    this.locks.onDeadHolder(ARRAY_CTL, (cpu, gen, i) => {
      if (i === P_LOCK || i === P_POOL_MUTEX) settle(cpu, gen);
    });
    this.locks.onDeadHolder(ARRAY_CLASSES, settle);
    this.locks.onDeadHolder(ARRAY_ZSPAGES, settle);
  }

  private readonly isDeadTag = (tag: number): boolean => tagDead(this.ctl, P_CPUS, tag);

  static create(opts: PoolOptions): ZsPool {
    if (opts === null || typeof opts !== 'object') throw new ZsError('EINVAL', 'pool options required');
    const maxFrames = Math.floor(Number(opts.maxBytes) / PAGE_SIZE);
    if (!Number.isFinite(maxFrames) || maxFrames < 1)
      throw new ZsError('EINVAL', `maxBytes must be at least ${PAGE_SIZE}, got ${opts.maxBytes}`);
    if (maxFrames > PHYS_MAX_FRAMES)
      throw new ZsError(
        'EINVAL',
        `maxBytes must be at most ${PHYS_MAX_FRAMES * PAGE_SIZE} bytes, got ${opts.maxBytes}`,
      );
    const chain = opts.chainSize ?? ZS_DEFAULT_CHAIN;
    buildSizeClasses(chain, opts.chainRule ?? 'waste'); // validates chainSize
    const lockMode = opts.lockMode ?? 'class';
    if (lockMode !== 'class' && lockMode !== 'pool')
      throw new ZsError('EINVAL', `lockMode must be 'class' or 'pool', got ${String(lockMode)}`);
    const cmaFrames = Math.floor((opts.cmaBytes ?? 0) / PAGE_SIZE);
    if (cmaFrames < 0 || cmaFrames > maxFrames) throw new ZsError('EINVAL', 'cmaBytes must be within maxBytes');
    const maxHandles = Math.min(maxFrames * (PAGE_SIZE / 32), HANDLE_MAX);
    const shared: ZsPoolShared = {
      name: opts.name ?? 'zs_pool',
      phys: createPhysMemShared(maxFrames, cmaFrames, opts.segmentBytes ?? SEGMENT_MAX_BYTES),
      ctl: new SharedArrayBuffer(P_WORDS * 4),
      classes: new SharedArrayBuffer(ZS_SIZE_CLASSES * CL_WORDS * 4),
      classBytes: new SharedArrayBuffer(ZS_SIZE_CLASSES * CLF_WORDS * 8),
      zspages: new SharedArrayBuffer((maxFrames + 1) * ZD_WORDS * 4),
      handles: createHandleTable(maxHandles),
      lockStats: new SharedArrayBuffer(lockStatWords() * 8),
      lockNames: new SharedArrayBuffer(lockClassNameBytes()),
      intents: createIntentLog(),
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
   * @internal what this thread does when it takes a bit lock of array `id` over from
   * a dead holder, before releasing it (locks.ts onDeadHolder): zram settles the
   * slot update the dead thread was making, so no live thread ever sees it half done.
   */
  onDeadBitHolder(id: number, fn: (cpu: number, index: number) => void): void {
    this.locks.onDeadHolder(id, (cpu, _gen, index) => fn(cpu, index));
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

  /**
   * The pool's part of the check after a thread's death (takes every pool lock; run it
   * on a thread that may block): rolls the dead threads' intent records forward or
   * back, then checks every structure and, where the check fails, rebuilds the
   * allocator state from the objects themselves (pool-repair.ts). Returns what was
   * repaired (empty: nothing); throws when the damage cannot be repaired.
   */
  repairStructures(): string {
    if (this.mapHandle !== 0) throw new Error('repairStructures() while this thread holds a mapping');
    const freeIds = new Set<number>();
    let done: string;
    this.lockAll();
    try {
      done = repairPoolLocked(this, verifyLocked, freeIds);
    } finally {
      this.unlockAll();
      // descriptors of zspages the repair released (their cache lock ranks with the zone lock)
      for (const id of freeIds) if (this.zd[id * ZD_WORDS + ZD_STATE] === ZS_STATE_LIVE) zspageIdFree(this, id);
    }
    const h = this.handles.repairFreeList();
    return h === '' ? done : done === '' ? h : `${done}; ${h}`;
  }

  /**
   * @internal calls fn for every record part `part` (intent-log.ts) that a dead
   * thread left; fn gets the part's first word and a snapshot of it.
   */
  forEachDeadIntent(part: number, fn: (at: number, snapshot: Int32Array) => void): number {
    return deadIntents(this.intent, this.ctl, P_CPUS, part, fn);
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
      if (cpuHoldsRecords(this.ctl, P_CPUS, cpu) || intentPending(this.intent, cpu)) continue;
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

  /** @internal the word of `ctl` that guards the lock-class registry (held by a thread registering a class) */
  get lockRegistryGuard(): number {
    return P_LOCKREG;
  }

  lockClassId(name: string): number {
    return registerLockClass(
      this.ctl.subarray(P_LOCKREG),
      this.lockNames,
      name,
      LOCK_KIND_BIT,
      this.locks.tag,
      this.isDeadTag,
    );
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

  /** The pool lock for reading (class mode) or the pool mutex (pool mode). */
  poolReadLock(site = SITE_UNKNOWN): void {
    this.lock.poolReadLock(site);
  }
  poolReadUnlock(): void {
    this.lock.poolReadUnlock();
  }
  /** The pool lock for writing; in pool mode this one lock also covers every class. */
  poolWriteLock(site = SITE_UNKNOWN): void {
    this.lock.poolWriteLock(site);
  }
  poolWriteUnlock(): void {
    this.lock.poolWriteUnlock();
  }
  /** The class lock (class mode only; in pool mode the pool mutex covers it). */
  classLock(c: number, site = SITE_UNKNOWN): void {
    this.lock.classLock(c, site);
  }
  classUnlock(c: number): void {
    this.lock.classUnlock(c);
  }
  /** Does a thread wait for class c's lock (in pool mode, the pool mutex)? */
  classLockContended(c: number): boolean {
    return this.lock.classContended(c);
  }

  /** The zspage lock: readers are object access and mapping; compaction and migration only trylock it for writing. */
  zspageReadLock(zs: number, site = SITE_UNKNOWN): void {
    zspageReadLock(this.locks, this.zd, zs, site);
  }
  zspageReadUnlock(zs: number): void {
    zspageReadUnlock(this.locks, this.zd, zs);
  }
  zspageWriteTrylock(zs: number, site = SITE_UNKNOWN): boolean {
    return zspageWriteTrylock(this.locks, this.zd, zs, site);
  }
  zspageWriteUnlock(zs: number): void {
    zspageWriteUnlock(this.locks, this.zd, zs);
  }

  /** Takes every lock of the pool, in order. */
  lockAll(): void {
    this.lock.lockAllClasses(this.classesAscending, SITE_LOCK_ALL);
    this.phys.zoneLock(SITE_LOCK_ALL);
  }

  unlockAll(): void {
    this.phys.zoneUnlock();
    this.lock.unlockAllClasses(this.classesAscending);
  }

  /** Merged class index for an allocation of `size` bytes. */
  classIndexFor(size: number): number {
    return classIndexFor(this.table, size);
  }

  private badHandle(h: number, what: string): ZsError {
    return new ZsError('EINVAL', `${what}: ${String(h)} is not a live handle`);
  }

  // ================================================================ malloc and free

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

  // Kept small (V8 inlines a function of up to 460 bytecodes, and up to 920 in all
  // into one caller): the checks, the per-CPU cache's hit path, and everything
  // else (errors, the locked path) out of line.
  private mallocObject(size: number, src: Uint8Array | null): number {
    if (!Number.isInteger(size) || size <= 0 || size > PAGE) throw mallocSizeError(size);
    const c = this.table.bySize[size]!;
    const h = this.handles.alloc();
    if (h === 0) throw new ZsError('ENOMEM', 'handle table exhausted');
    if (this.pcp !== null && this.mallocCached(c, h, size, src)) return h;
    this.mallocLocked(c, h, size, src);
    return h;
  }

  /** malloc's path under the class lock (the kernel's): handle h gets an object of class c. */
  private mallocLocked(c: number, h: number, size: number, src: Uint8Array | null): void {
    const lock = this.lock;
    lock.mallocLock(c);
    let zs = findZspage(this, c);
    if (zs === 0) {
      lock.mallocUnlock(c);
      zs = this.newZspageForMalloc(c, h);
    }
    const loc = objMalloc(this, zs, c, h, size, true);
    if (src !== null) copyIn(this.phys, objDataAddr(this, c, loc), src, size);
    fixFullness(this, c, zs);
    lock.mallocUnlock(c);
  }

  /** A new zspage of class c, returned with the malloc lock held; ENOMEM (handle h given back) when none. */
  private newZspageForMalloc(c: number, h: number): number {
    const zs = newZspageLocked(this, c);
    if (zs !== 0) return zs;
    this.handles.release(h);
    throw new ZsError('ENOMEM', `pool '${this.name}' is out of memory (cap ${this.maxFrames} frames)`);
  }

  /**
   * malloc from this CPU's magazine of class c, without locks: refills it first if
   * empty. False when it cannot (a mover is at work, or no memory to refill): the
   * caller takes the locked path.
   */
  private mallocCached(c: number, h: number, size: number, src: Uint8Array | null): boolean {
    const pcp = this.pcp!;
    const w = pcp.words;
    const m = pcp.slot(c);
    if (w[m + COUNT] === 0 && (this.table.huge[c] !== 0 || !refillMagazine(this, c))) return false;
    if (!pcp.enter()) return false;
    const n = w[m + COUNT]!;
    if (n === 0) {
      pcp.exit(); // drained between the refill and now
      return false;
    }
    const loc = w[m + ENTRIES + n - 1]!;
    // the object's header, found once (a magazine holds no huge objects)
    const phys = this.phys;
    const pfn = objToPfn(loc);
    phys.ensure(pfn);
    const off = objToOffset(loc);
    const a = phys.wordIndex(pfn, off);
    const words = phys.wordsOf(pfn);
    words[a] = encodeHeader(h);
    words[a + 1] = size;
    if (src !== null) copyIn(phys, frameByte(pfn, off) + HANDLE_SIZE, src, size);
    publishHandle(this.handles, h, loc);
    w[m + COUNT] = n - 1;
    w[m + USED]!++;
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
      if (loc < 0 || pfn >= this.phys.viewFrames || (getFlags(fd, pfn) & ZSPAGE_FRAME) === 0) {
        pcp.exit();
        return false;
      }
      const c = zspageClass(this.zd, getZspageOf(fd, pfn));
      const a = this.phys.wordIndex(pfn, objToOffset(loc));
      const words = this.phys.wordsOf(pfn);
      if (this.table.huge[c] !== 0 || words[a] !== encodeHeader(handle)) {
        pcp.exit();
        return false;
      }
      const w = pcp.words;
      const m = pcp.slot(c);
      const n = w[m + COUNT]!;
      if (n === CAPACITY) {
        pcp.exit();
        flushMagazine(this, c);
        continue;
      }
      // claim the handle: a racing free of the same handle loses here
      if (hw.ops.cas(handle, loc, -1) !== loc) {
        pcp.exit();
        return false;
      }
      const osize = words[a + 1]!;
      words[a] = RESERVED;
      words[a + 1] = backRef(pcp.cpu, n);
      w[m + ENTRIES + n] = loc;
      w[m + COUNT] = n + 1;
      w[m + USED]!--;
      pcp.addBytes(c, -osize);
      pcp.exit();
      hw.release(handle);
      return true;
    }
  }

  free(handle: number): void {
    if (this.pcp !== null && this.freeCached(handle)) return;
    const lock = this.lock;
    const loc = lock.lockForFree(this, handle);
    if (loc < 0) throw this.badHandle(handle, 'free');
    const zs = getZspageOf(this.phys.fd, objToPfn(loc));
    const c = zspageClass(this.zd, zs);
    objFree(this, zs, c, loc);
    if (fixFullness(this, c, zs) === 0) freeEmptyZspage(this, c, zs);
    lock.unlockAfterFree(c);
    this.handles.release(handle);
  }

  // ================================================================ object access

  /**
   * Resolves `handle` and read-locks the zspage holding it (pool lock for reading
   * only while turning the handle into a zspage). Returns the object's location.
   * Throws EINVAL for a bad handle.
   */
  private beginAccess(handle: number, what: string): number {
    const lock = this.lock;
    lock.poolReadLock(SITE_ACCESS);
    const loc = resolveHandle(this, handle);
    if (loc < 0) {
      lock.poolReadUnlock();
      throw this.badHandle(handle, what);
    }
    zspageReadLock(this.locks, this.zd, zspageOfObj(this.phys.fd, loc), SITE_ACCESS);
    lock.poolReadUnlock();
    return loc;
  }

  objSize(handle: number): number {
    const loc = this.beginAccess(handle, 'objSize');
    const zs = zspageOfObj(this.phys.fd, loc);
    const c = zspageClass(this.zd, zs);
    const len = objDataLen(this, zs, c, objDataAddr(this, c, loc));
    zspageReadUnlock(this.locks, this.zd, zs);
    return len;
  }

  /**
   * objSize without locks, for a caller that owns the object and only confirms its
   * size (zram, under its slot lock, before replacing it): -1 when this look finds
   * no live object, which may be a move in progress (ask objSize then). A size it
   * returns is read from a header that names the handle (a moved object keeps its
   * size); a caller that needs the answer for a handle it does not own uses objSize.
   */
  objSizeUnlocked(handle: number): number {
    const loc = resolveHandle(this, handle);
    if (loc < 0) return -1;
    const zs = zspageOfObj(this.phys.fd, loc);
    const c = zspageClass(this.zd, zs);
    if (!(c >= 0 && c < ZS_SIZE_CLASSES)) return -1;
    return objDataLen(this, zs, c, objDataAddr(this, c, loc));
  }

  /** Copies src into the object (src.length <= objSize), straight into the frames. */
  write(handle: number, src: Uint8Array): void {
    const loc = this.beginAccess(handle, 'write');
    const zs = zspageOfObj(this.phys.fd, loc);
    try {
      const c = zspageClass(this.zd, zs);
      const addr = objDataAddr(this, c, loc);
      const len = objDataLen(this, zs, c, addr);
      if (src.length > len) throw new ZsError('EINVAL', `write of ${src.length} bytes into an object of ${len}`);
      copyIn(this.phys, addr, src, src.length);
    } finally {
      zspageReadUnlock(this.locks, this.zd, zs);
    }
  }

  /** Copies the object into dst (dst.length >= objSize); returns objSize. */
  read(handle: number, dst: Uint8Array): number {
    const loc = this.beginAccess(handle, 'read');
    const zs = zspageOfObj(this.phys.fd, loc);
    try {
      const c = zspageClass(this.zd, zs);
      const addr = objDataAddr(this, c, loc);
      const len = objDataLen(this, zs, c, addr);
      if (dst.length < len) throw new ZsError('EINVAL', `read of an object of ${len} bytes into ${dst.length}`);
      copyOut(this.phys, addr, dst, len);
      return len;
    } finally {
      zspageReadUnlock(this.locks, this.zd, zs);
    }
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
    const loc = this.beginAccess(handle, 'map');
    const zs = zspageOfObj(this.phys.fd, loc);
    const c = zspageClass(this.zd, zs);
    const addr = objDataAddr(this, c, loc);
    const len = objDataLen(this, zs, c, addr);
    this.mapHandle = handle;
    this.mapZspage = zs;
    this.mapOff = addr;
    this.mapLen = len;
    this.mapMode = mode;
    const room = PAGE_SIZE - offsetInFrame(addr);
    if (len <= room) {
      this.mapCopied = false;
      const at = this.phys.byteIndex(addr);
      return this.phys.bytesAt(addr).subarray(at, at + len);
    }
    this.mapCopied = true;
    if (mode !== 'wo') copyOut(this.phys, addr, this.area, len);
    return this.area.subarray(0, len);
  }

  unmap(handle: number): void {
    if (this.mapHandle === 0 || this.mapHandle !== handle) {
      throw new ZsError('EINVAL', `unmap of handle ${String(handle)} which this thread has not mapped`);
    }
    const zs = this.mapZspage;
    if (this.mapCopied && this.mapMode !== 'ro') copyIn(this.phys, this.mapOff, this.area, this.mapLen);
    this.mapHandle = 0;
    zspageReadUnlock(this.locks, this.zd, zs);
  }

  // ================================================================ compaction and statistics

  /** Pages compaction could free in class c (zs_can_compact). */
  canCompact(c: number): number {
    return canCompact(this, c);
  }

  /** The shrinker's count: pages compaction could free over all classes. */
  compactable(): number {
    let n = 0;
    for (const c of this.table.distinct) n += canCompact(this, c);
    return n;
  }

  compact(): number {
    return compactPool(this);
  }

  /** Objects in use in class c: the class counter plus every CPU cache's unfolded count. */
  objUsedOf(c: number): number {
    return objUsedOf(this, c);
  }

  /** Bytes stored in class c (class counter plus the CPU caches' unfolded bytes). */
  bytesOf(c: number): number {
    return bytesOf(this, c);
  }

  stats(): PoolStats {
    return poolStats(this);
  }

  migrationStats(): MigrationStats {
    return migrationStats(this);
  }

  classStats(): ClassStat[] {
    return classStats(this);
  }

  /** The debugfs "classes" file of the pool. */
  classesText(): string {
    return classesText(classStats(this));
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

  // ================================================================ other users of physical memory

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
}
