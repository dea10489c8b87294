// The lock classes of the stack and THE lock order, written once (as the kernel
// writes it once at the top of mm/zsmalloc.c). Every other module that needs a
// class name or a rank takes it from here; comments elsewhere point here instead
// of restating the order. Also the registry of lock call sites (the "contention
// points" of lock_stat and the sites lockdep names in its reports).
//
// Lock order, outermost first. A thread may only take a lock of a later rank
// than every lock it already holds (nesting within one class — class locks in
// index order, several zspage locks — is allowed, as the kernel allows it with
// its _nested annotations; trylocks cannot deadlock and are not checked):
//
//   1. zram slot lock   zram->table[index].lock (bit lock; zram takes pool locks under it)
//   2. pool lock        &pool->lock (rwlock "migrate lock" in class mode, the one mutex in pool mode)
//   3. class lock       &class->lock
//   4. zspage lock      &zspage->lock (rwlock; writers only trylock)
//   5. innermost, each taken alone: handle_cache_lock, zspage_cache_lock, &zone->lock

export const SLOT_LOCK = 'zram->table[index].lock';
export const POOL_LOCK = '&pool->lock';
export const CLASS_LOCK = '&class->lock';
export const ZSPAGE_LOCK = '&zspage->lock';
export const HANDLE_CACHE_LOCK = 'handle_cache_lock';
export const ZSPAGE_CACHE_LOCK = 'zspage_cache_lock';
export const ZONE_LOCK = '&zone->lock';

/** The one lock order: each entry is a rank, outermost first. */
export const LOCK_ORDER: readonly (readonly string[])[] = [
  [SLOT_LOCK],
  [POOL_LOCK],
  [CLASS_LOCK],
  [ZSPAGE_LOCK],
  [HANDLE_CACHE_LOCK, ZSPAGE_CACHE_LOCK, ZONE_LOCK],
];

/** Rank of a lock class name (1 = outermost), or 0 for a class outside the order (never checked). */
export function lockRank(name: string): number {
  for (let r = 0; r < LOCK_ORDER.length; r++) if (LOCK_ORDER[r]!.includes(name)) return r + 1;
  return 0;
}

/** The classes every pool registers, in registration order (their ids are these indexes). */
export const POOL_LOCK_CLASSES: readonly string[] = [
  POOL_LOCK,
  CLASS_LOCK,
  ZSPAGE_LOCK,
  ZONE_LOCK,
  HANDLE_CACHE_LOCK,
  ZSPAGE_CACHE_LOCK,
];
export const LC_POOL = POOL_LOCK_CLASSES.indexOf(POOL_LOCK);
export const LC_CLASS = POOL_LOCK_CLASSES.indexOf(CLASS_LOCK);
export const LC_ZSPAGE = POOL_LOCK_CLASSES.indexOf(ZSPAGE_LOCK);
export const LC_ZONE = POOL_LOCK_CLASSES.indexOf(ZONE_LOCK);
export const LC_HANDLE = POOL_LOCK_CLASSES.indexOf(HANDLE_CACHE_LOCK);
export const LC_ZSCACHE = POOL_LOCK_CLASSES.indexOf(ZSPAGE_CACHE_LOCK);

/**
 * Lock call sites: a small integer passed with each acquisition. lock_stat counts
 * contentions and wait time per (class, site); lockdep names the sites of both
 * locks when it reports an inversion. Index = site id.
 */
export const LOCK_SITES = [
  'unknown',
  'malloc',
  'free',
  'object access',
  'compaction isolate',
  'compaction migrate',
  'frame migration',
  'writeback',
  'zram slot access',
  'zram idle marking',
  'zram recompress',
  'handle alloc',
  'handle free',
  'zspage id alloc',
  'zspage id free',
  'zone alloc',
  'zone free',
  'lock all',
  'test',
  'bench',
] as const;
export type LockSiteName = (typeof LOCK_SITES)[number];
export const MAX_LOCK_SITES = 32;

const site = (n: LockSiteName): number => LOCK_SITES.indexOf(n);
export const SITE_UNKNOWN = site('unknown');
export const SITE_MALLOC = site('malloc');
export const SITE_FREE = site('free');
export const SITE_ACCESS = site('object access');
export const SITE_COMPACT_ISOLATE = site('compaction isolate');
export const SITE_COMPACT_MIGRATE = site('compaction migrate');
export const SITE_FRAME_MIGRATION = site('frame migration');
export const SITE_WRITEBACK = site('writeback');
export const SITE_SLOT_ACCESS = site('zram slot access');
export const SITE_IDLE = site('zram idle marking');
export const SITE_RECOMPRESS = site('zram recompress');
export const SITE_HANDLE_ALLOC = site('handle alloc');
export const SITE_HANDLE_FREE = site('handle free');
export const SITE_ZSPAGE_ID_ALLOC = site('zspage id alloc');
export const SITE_ZSPAGE_ID_FREE = site('zspage id free');
export const SITE_ZONE_ALLOC = site('zone alloc');
export const SITE_ZONE_FREE = site('zone free');
export const SITE_LOCK_ALL = site('lock all');
export const SITE_TEST = site('test');
export const SITE_BENCH = site('bench');

export function lockSiteName(id: number): string {
  return LOCK_SITES[id] ?? `site ${id}`;
}
