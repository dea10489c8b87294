// Supervision of the dedicated workers (swap I/O, compaction): each runs in a Worker
// watched by the process watchdog (so its death frees the locks it held even while
// the creating thread is blocked), every call routed to it is tracked, and when it
// dies every pending call rejects with WorkerFailedError at once, later calls reject
// at once until it is back, and it is restarted after the device has been repaired,
// unless the device is fenced or the service is closing. Stats count deaths and
// restarts.

import { type MessagePort, Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import { Watchdog, type ZsPoolShared } from '@zsmalloc/core';
import { nodeEndpoint } from './comlink-node.js';
import { WorkerFailedError, type WorkerFailure } from './worker-failure.js';

export type SupervisedWorker = WorkerFailure['worker'];

export interface SupervisorStats {
  alive: boolean;
  threadId: number;
  deaths: number;
  restarts: number;
}

export interface SupervisorOptions {
  name: 'swap-io' | 'compaction';
  url: URL;
  /** workerData for each start; the lifeline port is added as `lifeline`. */
  data: () => Record<string, unknown>;
  pool: ZsPoolShared;
  /** Called on the creating thread when the worker died (after pending calls were rejected). */
  onDeath: (threadId: number, reason: string) => void;
  /** Whether a restart is safe now (false: the device is fenced or closing). */
  mayRestart: () => boolean;
  /** Called once a dead worker has been started again (calls may be routed to it). */
  onRestart?: () => void;
}

interface Pending {
  reject: (e: Error) => void;
}

export class Supervisor<Api> {
  private worker!: Worker;
  private remote!: Comlink.Remote<Api>;
  private tid = -1;
  private alive = false;
  private closing = false;
  private deaths = 0;
  private restarts = 0;
  private readonly pending = new Set<Pending>();

  constructor(private readonly opts: SupervisorOptions) {
    this.spawn();
  }

  private spawn(): void {
    const line = Watchdog.get().lifeline(this.opts.pool);
    const w = new Worker(this.opts.url, {
      workerData: { ...this.opts.data(), lifeline: line.theirs },
      transferList: [line.theirs as MessagePort],
    });
    line.bind(w.threadId);
    this.worker = w;
    this.tid = w.threadId;
    this.alive = true;
    this.remote = Comlink.wrap<Api>(nodeEndpoint(w));
    const tid = w.threadId;
    let reason = '';
    w.on('error', (e) => {
      reason = e instanceof Error ? e.message : String(e);
    });
    w.on('exit', (code) => this.onExit(w, tid, reason || `exited with code ${code}`));
  }

  private onExit(w: Worker, tid: number, reason: string): void {
    if (w !== this.worker) return;
    this.alive = false;
    const err = new WorkerFailedError(this.opts.name, reason);
    for (const p of this.pending) p.reject(err);
    this.pending.clear();
    this.remote[Comlink.releaseProxy]();
    if (this.closing) return;
    this.deaths++;
    this.opts.onDeath(tid, reason);
    if (this.opts.mayRestart()) {
      this.restarts++;
      this.spawn();
      this.opts.onRestart?.();
    }
  }

  /** Waits until the worker answers (after a start or restart). */
  async started(): Promise<void> {
    await this.call((api) => (api as unknown as { threadInfo(): Promise<unknown> }).threadInfo());
  }

  /**
   * Calls the worker. Rejects with WorkerFailedError when it is dead, or dies
   * before it answers; never waits on a dead worker.
   */
  call<R>(fn: (api: Comlink.Remote<Api>) => Promise<R>): Promise<R> {
    if (!this.alive) return Promise.reject(new WorkerFailedError(this.opts.name, 'the worker is not running'));
    return new Promise<R>((resolve, reject) => {
      const p: Pending = { reject };
      this.pending.add(p);
      fn(this.remote).then(
        (v) => {
          this.pending.delete(p);
          resolve(v);
        },
        (e: unknown) => {
          this.pending.delete(p);
          reject(e);
        },
      );
    });
  }

  get isAlive(): boolean {
    return this.alive;
  }

  get threadId(): number {
    return this.tid;
  }

  /** Kills the worker (fault injection and the soak's --kill-every). */
  kill(): Promise<number> {
    return this.worker.terminate();
  }

  stats(): SupervisorStats {
    return { alive: this.alive, threadId: this.tid, deaths: this.deaths, restarts: this.restarts };
  }

  /** Stops the worker: a graceful close call (bounded), then terminate. Always resolves. */
  async close(graceful: (api: Comlink.Remote<Api>) => Promise<unknown>): Promise<void> {
    this.closing = true;
    if (this.alive) {
      await Promise.race([this.call(graceful).catch(() => undefined), new Promise((r) => setTimeout(r, 2000).unref())]);
    }
    await this.worker.terminate();
  }
}
