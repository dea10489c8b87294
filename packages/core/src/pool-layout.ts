// The layout of a pool's control block (Int32 words in shared memory): the pool
// lock, counters, the zspage-descriptor cache, options, migration statistics, the
// handle-cache control words, the CPU registry and the lock-class registry.

import { cpuRegistryWords } from './cpu-registry.js';
import { HANDLE_CTL_WORDS } from './handles.js';
import { lockClassRegistryWords } from './lock-stat.js';

export const P_LOCK = 0; // rwlock (class mode) [0,1]
export const P_POOL_MUTEX = 2; // mutex (pool mode)
export const P_COMPACTING = 4;
export const P_PAGES_ALLOCATED = 5;
export const P_PAGES_COMPACTED = 6;
export const P_ZS_LOCK = 8;
export const P_ZS_FREE_HEAD = 10;
export const P_ZS_HIGH = 11;
export const P_CHAIN = 12;
export const P_LOCK_MODE = 13; // 0 class, 1 pool
export const P_LOCK_STAT = 14;
export const P_RULE = 15; // 0 waste, 1 percent
export const P_MIGRATED = 16;
export const P_MIG_EBUSY = 17;
export const P_MIG_ENOMEM = 18;
export const P_MIG_GONE = 19;
export const P_KC_RUNS = 20;
export const P_KC_SUCCESS = 21;
export const P_KC_FAIL = 22;
export const P_ZS_COMPACT_RUNS = 23;
/** Counter handing out lock-array ids (held-lock records name the array they hold a word of). */
export const P_LOCK_ARRAY_IDS = 24;
/** Dead threads' frame migrations settled by the thread that took over one of their locks. */
export const P_MIG_SETTLED = 25;
export const P_HANDLES = 32;
export const P_CPUS = P_HANDLES + HANDLE_CTL_WORDS + 2;
export const P_LOCKREG = P_CPUS + cpuRegistryWords();
export const P_WORDS = P_LOCKREG + lockClassRegistryWords();
