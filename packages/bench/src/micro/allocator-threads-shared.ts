// The control block shared by the two-thread allocator benchmark
// (allocator-threads.ts) and its workers (allocator-threads-worker.ts).

/** Bumped by the main thread to start a batch (workers Atomics.wait on it). */
export const A_SEQ = 0;
/** malloc+free pairs per worker in this batch. */
export const A_N = 1;
/** Which pool: MODE_*. */
export const A_MODE = 2;
/** Workers done with the batch. */
export const A_DONE = 3;
/** Start barrier. */
export const A_START = 4;
/** Set by a worker that failed. */
export const A_ERR = 5;
export const A_WORDS = 16;

export const MODE_EXIT = 0;
export const MODE_CACHES_OFF = 1;
export const MODE_CACHES_ON = 2;

export const ALLOC_THREADS = 2;
/** The size every pair allocates: both threads hit one size class. */
export const PAIR_SIZE = 1024;
/** Objects each worker keeps live in each pool, so the class's zspages stay. */
export const LIVE_PER_THREAD = 256;
