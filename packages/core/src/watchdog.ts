// The watchdog: one small thread per process that learns of every thread's death
// without needing anyone's event loop but its own, and marks the dead thread's CPU
// slots dead in shared memory, where blocked lock waiters look (locks.ts).
//
// Why a thread of its own: a Worker's 'exit' event is delivered to the thread that
// created it, and only when that thread's event loop turns. If that thread (say the
// main thread) is blocked in Atomics.wait on a lock the dead worker held, the event
// never comes and the process hangs. The watchdog never takes a lock, so its loop
// always turns.
//
// How it learns: each watched thread holds one end of a MessageChannel (its
// "lifeline"); the watchdog holds the other. When a thread ends for any reason
// (returns, process.exit(), an uncaught throw, worker.terminate() from outside),
// Node closes the ports it owned and the watchdog's end gets 'close' within a
// millisecond or so, whatever the other threads are doing. The watched thread must
// keep its end referenced (workerData does, or openLifeline() keeps it).

import { MessageChannel, type MessagePort, Worker, isMainThread, parentPort, threadId } from 'node:worker_threads';
import { P_CPUS } from './pool-layout.js';
import type { ZsPoolShared } from './pool.js';

/** What the watchdog thread is told for each watched thread. */
export interface WatchRequest {
  port: MessagePort;
  threadId: number;
  ctl: SharedArrayBuffer;
  base: number;
}

/** The message a worker posts to its parent to offer its lifeline (see offerLifeline). */
export interface LifelineOffer {
  zsLifeline: MessagePort;
  threadId: number;
}

let instance: Watchdog | null = null;
const kept: MessagePort[] = [];

export class Watchdog {
  private readonly worker: Worker;

  private constructor() {
    this.worker = new Worker(new URL('./watchdog-worker.js', import.meta.url));
    this.worker.unref();
  }

  /** This thread's watchdog (started on first use; it never keeps the process alive). */
  static get(): Watchdog {
    instance ??= new Watchdog();
    return instance;
  }

  /** The watchdog thread's id. */
  get threadId(): number {
    return this.worker.threadId;
  }

  /**
   * Watches thread `threadId`: when the other end of `port` closes, its CPU slots in
   * `pool` are marked dead. The thread must hold the other end (see lifeline()).
   */
  watch(port: MessagePort, threadId: number, pool: ZsPoolShared): void {
    const req: WatchRequest = { port, threadId, ctl: pool.ctl, base: P_CPUS };
    this.worker.postMessage(req, [port]);
  }

  /**
   * A lifeline pair for a Worker about to be created: pass `theirs` to it in
   * workerData (with transferList), then call bind(worker.threadId) once it exists.
   */
  lifeline(pool: ZsPoolShared): { theirs: MessagePort; bind: (threadId: number) => void } {
    const ch = new MessageChannel();
    return { theirs: ch.port1, bind: (tid: number) => this.watch(ch.port2, tid, pool) };
  }

  /** Takes a lifeline a worker offered through its parent port (see offerLifeline); false if `msg` is none. */
  adopt(msg: unknown, pool: ZsPoolShared): boolean {
    if (!isLifelineOffer(msg)) return false;
    this.watch(msg.zsLifeline, msg.threadId, pool);
    return true;
  }

  /** Stops the watchdog thread (tests). */
  static async stop(): Promise<void> {
    const w = instance;
    instance = null;
    if (w) await w.worker.terminate();
  }
}

export function isLifelineOffer(msg: unknown): msg is LifelineOffer {
  return typeof msg === 'object' && msg !== null && 'zsLifeline' in msg && 'threadId' in msg;
}

/**
 * In a worker whose creator cannot hand it a lifeline (a thread pool's worker):
 * opens one, keeps this thread's end for the thread's lifetime, and posts the
 * other end to the parent, which passes it to Watchdog.adopt().
 */
export function offerLifeline(): void {
  if (isMainThread || !parentPort) return;
  const ch = new MessageChannel();
  kept.push(ch.port1);
  ch.port1.unref();
  const offer: LifelineOffer = { zsLifeline: ch.port2, threadId };
  parentPort.postMessage(offer, [ch.port2]);
}

/** Keeps a lifeline end this thread was handed (in workerData) referenced for its lifetime. */
export function holdLifeline(port: MessagePort | undefined): void {
  if (!port) return;
  kept.push(port);
  port.unref();
}
