// The control block shared by the contended-lock benchmark (contended.ts) and
// its workers (contended-worker.ts): Int32 word indices in one SharedArrayBuffer,
// after the batch protocol's words (batch-threads.ts).
// Hot words sit on their own 64-byte lines so only the lock words bounce.

/** The pool mutex word. */
export const W_MUTEX = 16;
/** The bare spinlock word. */
export const W_SPIN = 32;
/** Counters incremented non-atomically inside each critical section (mutual exclusion check). */
export const W_MUTEX_COUNT = 48;
export const W_SPIN_COUNT = 64;
export const W_WORDS = 80;

/** Modes after the batch protocol's MODE_EXIT (0). */
export const MODE_MUTEX = 1;
export const MODE_SPIN = 2;

export const CONTENDED_THREADS = 2;
