// The control block shared by the two-thread allocator benchmark
// (allocator-threads.ts) and its workers (allocator-threads-worker.ts); the
// control block is the batch protocol's alone (batch-threads.ts); the modes follow MODE_EXIT.

export const MODE_CACHES_OFF = 1;
export const MODE_CACHES_ON = 2;

export const ALLOC_THREADS = 2;
/** The size every pair allocates: both threads hit one size class. */
export const PAIR_SIZE = 1024;
/** Objects each worker keeps live in each pool, so the class's zspages stay. */
export const LIVE_PER_THREAD = 256;
