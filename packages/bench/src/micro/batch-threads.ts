// The batch protocol shared by the multi-thread micro-benchmarks (contended.ts,
// allocator-threads.ts) and their workers: a control block of Int32 words in one
// SharedArrayBuffer. The main thread publishes a count and a mode and bumps SEQ;
// each worker wakes on SEQ, meets the others at a start barrier, runs its loop and
// counts itself DONE. No message per batch; messages carry only readiness and errors.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker, parentPort } from 'node:worker_threads';

/** Bumped by the main thread to start a batch (workers Atomics.wait on it). */
export const B_SEQ = 0;
/** Iterations per worker in this batch. */
export const B_N = 1;
/** What to run: the benchmark's MODE_* (MODE_EXIT ends the workers). */
export const B_MODE = 2;
/** Workers that finished the batch (the main thread waits on it). */
export const B_DONE = 3;
/** Start barrier: each worker adds 1, then spins until every worker is in. */
export const B_START = 4;
/** Set by a worker that failed (its message follows on parentPort). */
export const B_ERR = 5;
/** Words the protocol owns (one 64-byte line); a benchmark's own words start here or later. */
export const B_WORDS = 16;
export const MODE_EXIT = 0;

/** Longest a batch may take before the benchmark gives up (a worker died holding a lock). */
const BATCH_TIMEOUT_MS = 60_000;

/** A worker's JavaScript: next to the caller when built; from dist when the caller runs as TypeScript (vitest). */
export function builtWorkerUrl(callerUrl: string, file: string): URL {
  const here = new URL(`./${file}`, callerUrl);
  if (existsSync(fileURLToPath(here))) return here;
  const built = new URL(`../../dist/micro/${file}`, callerUrl);
  if (existsSync(fileURLToPath(built))) return built;
  throw new Error(`no built worker at ${fileURLToPath(here)} or ${fileURLToPath(built)} (run tsc -b first)`);
}

/** The main thread's side: starts the workers (their workerData gains `ctl`), runs batches, stops them. */
export class BatchThreads {
  readonly c: Int32Array;
  readonly errors: string[] = [];
  readonly ready: Promise<void>;
  private readonly workers: Worker[] = [];
  private readonly exited: Promise<void>[] = [];

  constructor(
    private readonly label: string,
    url: URL,
    private readonly threads: number,
    ctl: SharedArrayBuffer,
    workerData: object,
  ) {
    this.c = new Int32Array(ctl);
    const ready: Promise<void>[] = [];
    for (let t = 0; t < threads; t++) {
      const w = new Worker(url, { workerData: { ...workerData, ctl } });
      this.workers.push(w);
      ready.push(
        new Promise<void>((resolve, reject) => {
          w.on('message', (m: { ready?: boolean; error?: string }) => {
            if (m.ready === true) resolve();
            if (m.error !== undefined) this.errors.push(m.error);
          });
          w.once('error', reject);
        }),
      );
      this.exited.push(new Promise<void>((resolve) => w.once('exit', () => resolve())));
    }
    this.ready = Promise.all(ready).then(() => undefined);
  }

  /** One batch: every worker runs n iterations of the mode's loop. Returns the iterations done in all. */
  run(mode: number, n: number): number {
    const c = this.c;
    Atomics.store(c, B_N, n);
    Atomics.store(c, B_MODE, mode);
    Atomics.store(c, B_DONE, 0);
    Atomics.store(c, B_START, 0);
    Atomics.add(c, B_SEQ, 1);
    Atomics.notify(c, B_SEQ);
    const deadline = performance.now() + BATCH_TIMEOUT_MS;
    for (let d = Atomics.load(c, B_DONE); d < this.threads; d = Atomics.load(c, B_DONE)) {
      Atomics.wait(c, B_DONE, d, 100);
      if (performance.now() > deadline)
        throw new Error(`${this.label}: batch of ${n} x ${this.threads} did not finish in ${BATCH_TIMEOUT_MS} ms`);
    }
    if (Atomics.load(c, B_ERR) !== 0)
      throw new Error(`${this.label}: a worker failed${this.errors.length > 0 ? `: ${this.errors[0]}` : ''}`);
    return n * this.threads;
  }

  /** Tells the workers to exit, waits up to 5 s, then terminates what is left. */
  async stop(): Promise<void> {
    Atomics.store(this.c, B_MODE, MODE_EXIT);
    Atomics.add(this.c, B_SEQ, 1);
    Atomics.notify(this.c, B_SEQ);
    await Promise.race([Promise.all(this.exited), new Promise((r) => setTimeout(r, 5_000))]);
    for (const w of this.workers) await w.terminate();
  }
}

/** The worker's side: reports ready, then runs each batch until MODE_EXIT. */
export function serveBatches(
  c: Int32Array,
  threads: number,
  run: (mode: number, n: number) => void,
  readyInfo: object = {},
): void {
  let seen = 0;
  parentPort!.postMessage({ ready: true, ...readyInfo });
  for (;;) {
    Atomics.wait(c, B_SEQ, seen);
    seen = Atomics.load(c, B_SEQ);
    const mode = Atomics.load(c, B_MODE);
    if (mode === MODE_EXIT) return;
    try {
      const n = Atomics.load(c, B_N);
      Atomics.add(c, B_START, 1);
      while (Atomics.load(c, B_START) < threads) {
        /* start together */
      }
      run(mode, n);
    } catch (e) {
      Atomics.store(c, B_ERR, 1);
      parentPort!.postMessage({ error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
    }
    Atomics.add(c, B_DONE, 1);
    Atomics.notify(c, B_DONE);
  }
}
