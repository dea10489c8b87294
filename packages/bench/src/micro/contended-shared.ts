// The control block shared by the contended-lock benchmark (contended.ts) and
// its workers (contended-worker.ts): Int32 word indices in one SharedArrayBuffer.
// Hot words sit on their own 64-byte lines so only the lock words bounce.

/** Bumped by the main thread to start a batch (workers Atomics.wait on it). */
export const W_SEQ = 0;
/** Acquisitions per worker in this batch. */
export const W_N = 1;
/** What to run: MODE_*. */
export const W_MODE = 2;
/** Workers that finished the batch (main waits on it). */
export const W_DONE = 3;
/** Start barrier: each worker adds 1, then spins until every worker is in. */
export const W_START = 4;
/** Set by a worker that failed (its message follows on parentPort). */
export const W_ERR = 5;
/** The pool mutex word. */
export const W_MUTEX = 16;
/** The bare spinlock word. */
export const W_SPIN = 32;
/** Counters incremented non-atomically inside each critical section (mutual exclusion check). */
export const W_MUTEX_COUNT = 48;
export const W_SPIN_COUNT = 64;
export const W_WORDS = 80;

export const MODE_EXIT = 0;
export const MODE_MUTEX = 1;
export const MODE_SPIN = 2;

export const CONTENDED_THREADS = 2;
