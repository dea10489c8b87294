// @zsmalloc/core: physical memory, locks and the zsmalloc allocator in shared memory.

export * from './constants.js';
export { ZsError, type ZsErrorCode } from './errors.js';
export {
  ZsPool,
  type PoolOptions,
  type ZsPoolShared,
  type PoolStats,
  type ClassStat,
  type MigrationStats,
  type LockMode,
  type MapMode,
} from './pool.js';
export { buildSizeClasses, classIndexFor, chainLength, type SizeClassTable, type ChainRule } from './size-class.js';
export {
  FAULT_EXIT_CODE,
  FP_COMPACT_ALLOCATED,
  FP_COMPACT_COPIED,
  FP_COMPACT_FREED,
  FP_COMPACT_PUBLISHED,
  FP_MIGRATE_COPIED,
  FP_MIGRATE_HANDLE,
  LockContext,
  LockOrderError,
  type LockdepRegistry,
} from './locks.js';
export { formatLockStat, type LockClassStats, type ContentionPoint } from './lock-stat.js';
export * from './lock-classes.js';
export { MAX_CPUS } from './cpu-registry.js';
export { INTENT_DEVICE, INTENT_DEVICE_HOLD, INTENT_PART_WORDS, clearDeadIntent, intentBase } from './intent-log.js';
export {
  Watchdog,
  offerLifeline,
  holdLifeline,
  isLifelineOffer,
  type LifelineOffer,
} from './watchdog.js';
export {
  compactFrames,
  migratePage,
  isolateFrame,
  migrateFrame,
  putbackFrame,
  isMovable,
  MIGRATE_OK,
  MIGRATE_EBUSY,
  MIGRATE_ENOMEM,
  MIGRATE_GONE,
  type FrameCompactResult,
} from './migrate.js';
export { LOCATION_PFN_LIMIT, objToOffset, objToPfn } from './location.js';
export { getNextPfn } from './page-desc.js';
export { PHYS_MAX_FRAMES, SEGMENT_MAX_BYTES, SEGMENT_MIN_BYTES } from './phys-mem.js';
export { type AtomicMemory, type AtomicOps, WASM_PAGE, atomicOps, createAtomicMemory } from './wasm-atomics.js';
