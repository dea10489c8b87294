// ZramService: a zram device in shared memory driven by real threads — a piscina
// pool of compression workers (batches of pages through shared staging slots), a
// swap I/O worker (writeback and swap-in) and a compaction/migration worker
// (threshold compaction, frame compaction) — with async page-batch I/O, stats,
// triggers and failure handling. The control plane to the dedicated workers is
// comlink; the data plane is shared memory, one task per batch, never per page.

import { availableParallelism } from 'node:os';
import { Worker, type MessagePort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import { Piscina } from 'piscina';
import { PAGE_SIZE, ZsError, type LockMode } from '@zsmalloc/core';
import { ZramDevice, ZramError, type RecompressRequest } from '@zsmalloc/zram';
import type { CompactionApi } from './compaction-worker.js';
import { nodeEndpoint } from './comlink-node.js';
import type { BatchResult, BatchTask, CompressionWorkerData, PageError } from './compression-worker.js';
import { StagingArea } from './staging.js';
import type { SwapIoApi } from './swap-io-worker.js';

export interface CompactionOptions {
  /** Compact when the pages compaction could free reach this many (default 256). */
  thresholdPages?: number;
  /** How often the worker checks (default 100 ms). */
  intervalMs?: number;
}

export interface ServiceOptions {
  disksize?: number;
  algorithm?: string;
  /** Compression workers (default: available cores). */
  compressionWorkers?: number;
  memLimit?: number;
  backingFile?: string;
  lockMode?: LockMode;
  lockStat?: boolean;
  chainSize?: number;
  /** Pool cap in bytes (default: 1.25 x disksize + 1 MiB, at least 64 MiB). */
  maxBytes?: number;
  /** Background compaction; false turns it off (on-demand compaction still works). */
  compaction?: CompactionOptions | false;
  /** Pages per compression task (default 64). */
  batchPages?: number;
}

export interface WorkerFailure {
  worker: 'compression' | 'swap-io' | 'compaction';
  threadId: number;
  reason: string;
  at: number;
}

/** Thrown for requests that failed because a worker thread died or threw. */
export class WorkerFailedError extends Error {
  readonly worker: WorkerFailure['worker'];
  constructor(worker: WorkerFailure['worker'], message: string, cause?: unknown) {
    super(`${worker} worker failed: ${message}`, { cause });
    this.name = 'WorkerFailedError';
    this.worker = worker;
  }
}

/** What exposeControl() offers over comlink. */
export interface ServiceControl {
  stats(): Promise<ServiceStats>;
  compact(): Promise<number>;
  frameCompact(order: number): Promise<{ migrated: number; success: boolean }>;
  idle(arg: 'all' | number): Promise<number>;
  writeback(mode: string): Promise<number>;
  readback(first: number, count: number): Promise<number>;
  recompress(req: RecompressRequest): Promise<number>;
  setMemLimit(bytes: number): Promise<void>;
  configureCompaction(opts: { thresholdPages?: number; intervalMs?: number; enabled?: boolean }): Promise<void>;
}

export interface ServiceStats {
  mmStat: string;
  ioStat: string;
  bdStat: string;
  debugStat: string;
  lockStat: string;
  compAlgorithm: string;
  buddyinfo: number[];
  classes: string;
  compactable: number;
  pool: ReturnType<ZramDevice['pool']['stats']>;
  migration: ReturnType<ZramDevice['pool']['migrationStats']>;
  compaction: Awaited<ReturnType<CompactionApi['stats']>> | null;
  swapIo: Awaited<ReturnType<SwapIoApi['stats']>> | null;
  failures: WorkerFailure[];
  inFlight: number;
  compressionWorkers: number;
  batchPages: number;
}

// 64 pages (256 KiB) per task: a piscina round trip costs ~46 us (docs/kernel-facts.md) and
// 150-230 us per task on a busy 2-core machine (bench:service), while 64 pages take
// ~1 ms to compress; in bench:service batch 8 wrote at 0.72x and batch 128 at 1.11x
// the rate of batch 32, and larger batches add latency.
const DEFAULT_BATCH = 64;

export class ZramService {
  readonly device: ZramDevice;
  readonly staging: StagingArea;
  readonly piscina: Piscina;
  readonly failures: WorkerFailure[] = [];
  readonly compressionWorkers: number;
  private readonly swapWorker: Worker;
  private readonly compactionWorker: Worker;
  private readonly swapApi: Comlink.Remote<SwapIoApi>;
  private readonly compactionApi: Comlink.Remote<CompactionApi>;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly compressionThreads = new Set<number>();
  private readonly writeQ: PageRequest[] = [];
  private readonly readQ: PageRequest[] = [];
  /** The runs staged in each slot: request, its first page, length (no allocation per page). */
  private readonly runReq: (PageRequest | null)[];
  private readonly runPage: Int32Array;
  private readonly runLen: Int32Array;
  private closed = false;
  private swapAlive = true;
  private compactionAlive = true;

  private constructor(opts: ServiceOptions) {
    const disksize = opts.disksize ?? 256 << 20;
    this.compressionWorkers = opts.compressionWorkers ?? Math.max(1, availableParallelism());
    if (!Number.isInteger(this.compressionWorkers) || this.compressionWorkers < 1) {
      throw new ZsError(
        'EINVAL',
        `compressionWorkers must be a positive integer, got ${String(opts.compressionWorkers)}`,
      );
    }
    const batchPages = opts.batchPages ?? DEFAULT_BATCH;
    if (!Number.isInteger(batchPages) || batchPages < 1 || batchPages > 1024)
      throw new ZsError('EINVAL', 'batchPages must be 1..1024');
    this.device = ZramDevice.create({
      disksize,
      algorithm: opts.algorithm ?? 'lz4',
      memLimit: opts.memLimit ?? 0,
      backingFile: opts.backingFile,
      pool: {
        // room above disksize: zram allocates a page's new object before freeing the old one
        maxBytes: opts.maxBytes ?? Math.max(Math.ceil(disksize * 1.25) + (1 << 20), 64 << 20),
        chainSize: opts.chainSize ?? 8,
        lockMode: opts.lockMode ?? 'class',
        lockStat: opts.lockStat ?? false,
        name: 'zram0',
      },
    });
    // two slots per worker: one compressing, one being filled by the next batch
    this.staging = new StagingArea(this.compressionWorkers * 2, batchPages);
    this.runReq = new Array<PageRequest | null>(this.staging.slots * batchPages).fill(null);
    this.runPage = new Int32Array(this.staging.slots * batchPages);
    this.runLen = new Int32Array(this.staging.slots * batchPages);
    this.piscina = new Piscina({
      filename: new URL('./compression-worker.js', import.meta.url).href,
      minThreads: this.compressionWorkers,
      maxThreads: this.compressionWorkers,
      idleTimeout: 60_000,
      concurrentTasksPerWorker: 1,
      // the device, staging buffers and page-index table go to each worker once
      workerData: {
        device: this.device.shared,
        staging: this.staging.sab,
        indices: this.staging.indexSab,
        batchPages,
      } satisfies CompressionWorkerData,
    });
    // A Worker's threadId reads -1 once it has exited, so remember ids at creation
    // and, when one is destroyed, find which known thread is gone.
    this.piscina.on('workerCreate', (w: { id: number }) => {
      this.compressionThreads.add(w.id);
    });
    this.piscina.on('workerDestroy', () => {
      setImmediate(() => {
        if (this.closed) return;
        const alive = new Set(this.piscina.threads.map((t) => t.threadId));
        for (const id of this.compressionThreads) {
          if (alive.has(id)) continue;
          this.compressionThreads.delete(id);
          this.onThreadDeath('compression', id, 'worker thread exited while the service was running');
        }
      });
    });
    this.piscina.on('error', (e: unknown) => this.onThreadDeath('compression', -1, String(e)));
    const comp = opts.compaction === false ? { enabled: false } : { enabled: true, ...opts.compaction };
    this.compactionWorker = new Worker(new URL('./compaction-worker.js', import.meta.url), {
      workerData: {
        device: this.device.shared,
        thresholdPages: comp.thresholdPages ?? 256,
        intervalMs: comp.intervalMs ?? 100,
        enabled: comp.enabled,
      },
    });
    this.swapWorker = new Worker(new URL('./swap-io-worker.js', import.meta.url), {
      workerData: { device: this.device.shared },
    });
    this.watchDedicated(this.compactionWorker, 'compaction');
    this.watchDedicated(this.swapWorker, 'swap-io');
    this.compactionApi = Comlink.wrap<CompactionApi>(nodeEndpoint(this.compactionWorker));
    this.swapApi = Comlink.wrap<SwapIoApi>(nodeEndpoint(this.swapWorker));
  }

  static async start(opts: ServiceOptions = {}): Promise<ZramService> {
    const s = new ZramService(opts);
    // make sure the dedicated workers are up (attached) before returning
    await Promise.all([s.compactionApi.threadInfo(), s.swapApi.threadInfo()]);
    return s;
  }

  get pool() {
    return this.device.pool;
  }
  get disksize(): number {
    return this.device.disksize;
  }
  get batchPages(): number {
    return this.staging.batchPages;
  }

  private watchDedicated(w: Worker, name: 'swap-io' | 'compaction'): void {
    const tid = w.threadId;
    w.on('error', (e) => this.onThreadDeath(name, tid, e instanceof Error ? e.message : String(e)));
    w.on('exit', (code) => {
      if (name === 'swap-io') this.swapAlive = false;
      else this.compactionAlive = false;
      if (!this.closed) this.onThreadDeath(name, tid, `exited with code ${code}`);
    });
  }

  /**
   * A thread died: record which and why, mark its CPU dead so the locks it held
   * can be taken over (mutex and rwlock waiters do so through the owner id; slot
   * bit locks are released here).
   */
  private onThreadDeath(worker: WorkerFailure['worker'], threadId: number, reason: string): void {
    if (this.failures.some((f) => f.threadId === threadId && f.worker === worker && threadId !== -1)) return;
    this.failures.push({ worker, threadId, reason, at: Date.now() });
    if (threadId >= 0) {
      this.pool.markThreadDead(threadId);
      this.device.recoverDeadLocks();
    }
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    const done = () => this.inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  private checkOpen(): void {
    if (this.closed) throw new ZsError('EINVAL', 'the service is closed');
  }

  private checkRange(firstIndex: number, count: number): void {
    if (
      !Number.isInteger(firstIndex) ||
      !Number.isInteger(count) ||
      firstIndex < 0 ||
      count < 0 ||
      firstIndex + count > this.device.pages
    ) {
      throw new RangeError(`pages [${firstIndex}, +${count}) outside the device (${this.device.pages} pages)`);
    }
  }

  /**
   * Queues a page request. Requests are cut into batches by pump(): a batch takes
   * pages from the head of the queue, possibly from several small requests, so a
   * queue of 4 KiB requests (an NBD client at queue depth 16) shares tasks.
   */
  private submit(op: 'write' | 'read', first: number, count: number, buf: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      const req: PageRequest = { op, first, count, buf, next: 0, pending: count, error: null, resolve, reject };
      if (count === 0) {
        resolve();
        return;
      }
      (op === 'write' ? this.writeQ : this.readQ).push(req);
      this.pump();
    });
  }

  /**
   * Fills free staging slots from the queues and hands each to a worker. A slot
   * holds runs: consecutive pages of one request, copied in (and out) at once.
   * The number of slots (two per worker) bounds the tasks in flight, so requests
   * that arrive meanwhile queue up and share the next batch.
   */
  private pump(): void {
    const st = this.staging;
    const bp = st.batchPages;
    while (this.writeQ.length > 0 || this.readQ.length > 0) {
      const slot = st.tryAcquire();
      if (slot < 0) return;
      // the longer queue goes first; within a queue, first come first served
      const q = this.readQ.length > this.writeQ.length ? this.readQ : this.writeQ;
      const op = q === this.readQ ? 'read' : 'write';
      const base = slot * bp;
      let n = 0;
      let runs = 0;
      while (n < bp && q.length > 0) {
        const req = q[0]!;
        const take = Math.min(bp - n, req.count - req.next);
        for (let k = 0; k < take; k++) st.indices[base + n + k] = req.first + req.next + k;
        if (op === 'write')
          st.bytes.set(
            req.buf.subarray(req.next * PAGE_SIZE, (req.next + take) * PAGE_SIZE),
            st.offset(slot) + n * PAGE_SIZE,
          );
        this.runReq[base + runs] = req;
        this.runPage[base + runs] = req.next;
        this.runLen[base + runs] = take;
        runs++;
        req.next += take;
        n += take;
        if (req.next === req.count) q.shift();
      }
      const task: BatchTask = { op, slot, count: n };
      this.piscina.run(task).then(
        (r: BatchResult) => this.complete(slot, runs, op, r.errors, null),
        (e: unknown) =>
          this.complete(
            slot,
            runs,
            op,
            [],
            new WorkerFailedError('compression', e instanceof Error ? e.message : String(e), e),
          ),
      );
    }
  }

  /** Settles the pages of a finished batch, run by run; errors are per page, in slot order. */
  private complete(slot: number, runs: number, op: 'write' | 'read', errors: PageError[], failure: Error | null): void {
    const st = this.staging;
    const base = slot * st.batchPages;
    const off = st.offset(slot);
    let at = 0; // position in the slot
    let e = 0; // next error
    for (let r = 0; r < runs; r++) {
      const req = this.runReq[base + r]!;
      const page = this.runPage[base + r]!;
      const len = this.runLen[base + r]!;
      this.runReq[base + r] = null;
      if (failure) req.error ??= failure;
      if (e < errors.length && errors[e]!.k < at + len) {
        req.error ??= rebuildError(errors[e]!);
        while (e < errors.length && errors[e]!.k < at + len) e++;
      }
      // a request that failed anywhere rejects as a whole; its read data is not copied
      if (op === 'read' && !req.error) {
        req.buf.set(st.bytes.subarray(off + at * PAGE_SIZE, off + (at + len) * PAGE_SIZE), page * PAGE_SIZE);
      }
      at += len;
      req.pending -= len;
      if (req.pending === 0) {
        if (req.error) req.reject(req.error);
        else req.resolve();
      }
    }
    st.release(slot);
    this.pump();
  }

  /** Writes whole pages starting at page `firstIndex`; bytes.length is a multiple of 4096. */
  async writePages(firstIndex: number, bytes: Uint8Array): Promise<void> {
    this.checkOpen();
    if (!(bytes instanceof Uint8Array) || bytes.length % PAGE_SIZE !== 0)
      throw new RangeError('writePages needs a Uint8Array of whole 4096-byte pages');
    const count = bytes.length / PAGE_SIZE;
    this.checkRange(firstIndex, count);
    return this.track(this.submit('write', firstIndex, count, bytes));
  }

  /** Reads `count` pages starting at page `firstIndex`. */
  async readPages(firstIndex: number, count: number): Promise<Uint8Array> {
    this.checkOpen();
    this.checkRange(firstIndex, count);
    const out = new Uint8Array(count * PAGE_SIZE);
    await this.track(this.submit('read', firstIndex, count, out));
    return out;
  }

  /** Frees whole pages in [offset, offset+length) (bytes); cheap, done on this thread. */
  async discard(offset: number, length: number): Promise<void> {
    this.checkOpen();
    this.device.discard(offset, length);
  }

  setMemLimit(bytes: number): void {
    this.device.setMemLimit(bytes);
  }

  /** Compacts now, in the compaction worker; returns pages freed. */
  async compact(): Promise<number> {
    this.checkOpen();
    return this.track(this.compactionApi.compact());
  }

  async frameCompact(order: number): Promise<{ migrated: number; success: boolean }> {
    this.checkOpen();
    return this.track(this.compactionApi.frameCompact(order));
  }

  configureCompaction(opts: { thresholdPages?: number; intervalMs?: number; enabled?: boolean }): Promise<void> {
    return this.compactionApi.configure(opts);
  }

  idle(arg: 'all' | number): number {
    this.checkOpen();
    return this.device.markIdle(arg);
  }

  async writeback(mode: string): Promise<number> {
    this.checkOpen();
    return this.track(this.swapApi.writeback(mode));
  }

  /** Swap-in: brings written-back pages of a range back into memory, in the swap I/O worker. */
  async readback(firstIndex: number, count: number): Promise<number> {
    this.checkOpen();
    this.checkRange(firstIndex, count);
    return this.track(this.swapApi.readback(firstIndex, count));
  }

  async recompress(req: RecompressRequest = {}): Promise<number> {
    this.checkOpen();
    return this.track(this.swapApi.recompress(req));
  }

  async stats(): Promise<ServiceStats> {
    const dev = this.device;
    const [compaction, swapIo] = await Promise.all([
      this.compactionAlive ? withTimeout(this.compactionApi.stats(), 2000) : null,
      this.swapAlive ? withTimeout(this.swapApi.stats(), 2000) : null,
    ]);
    return {
      mmStat: dev.mmStat(),
      ioStat: dev.ioStat(),
      bdStat: dev.bdStat(),
      debugStat: dev.debugStat(),
      lockStat: dev.pool.lockStatText(),
      compAlgorithm: dev.compAlgorithm(),
      buddyinfo: dev.pool.buddyinfo(),
      classes: dev.pool.classesText(),
      compactable: dev.pool.compactable(),
      pool: dev.pool.stats(),
      migration: dev.pool.migrationStats(),
      compaction,
      swapIo,
      failures: [...this.failures],
      inFlight: this.inFlight.size,
      compressionWorkers: this.compressionWorkers,
      batchPages: this.staging.batchPages,
    };
  }

  /**
   * The control plane for other threads: exposes stats, triggers and configuration
   * over comlink on `port` (a MessagePort or Worker). Page data never goes this way.
   */
  exposeControl(port: MessagePort | Worker): void {
    const api: ServiceControl = {
      stats: () => this.stats(),
      compact: () => this.compact(),
      frameCompact: (order: number) => this.frameCompact(order),
      idle: async (arg: 'all' | number) => this.idle(arg),
      writeback: (mode: string) => this.writeback(mode),
      readback: (first: number, count: number) => this.readback(first, count),
      recompress: (req: RecompressRequest) => this.recompress(req),
      setMemLimit: async (bytes: number) => this.setMemLimit(bytes),
      configureCompaction: (opts) => this.configureCompaction(opts),
    };
    Comlink.expose(api, nodeEndpoint(port));
  }

  /** Drains in-flight work, stops every thread and releases the device. */
  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.allSettled([...this.inFlight]);
    this.closed = true;
    const stopDedicated = async (
      api: Comlink.Remote<SwapIoApi> | Comlink.Remote<CompactionApi>,
      w: Worker,
      alive: boolean,
    ) => {
      if (alive) await withTimeout(api.close(), 2000).catch(() => undefined);
      api[Comlink.releaseProxy]();
      await w.terminate();
    };
    await Promise.all([
      this.piscina.destroy(),
      stopDedicated(this.compactionApi, this.compactionWorker, this.compactionAlive),
      stopDedicated(this.swapApi, this.swapWorker, this.swapAlive),
    ]);
    this.device.close();
  }
}

/** The other end of exposeControl(): a comlink proxy of the service's control plane. */
export function wrapControl(port: MessagePort | Worker): Comlink.Remote<ServiceControl> {
  return Comlink.wrap<ServiceControl>(nodeEndpoint(port));
}

interface PageRequest {
  op: 'write' | 'read';
  first: number;
  count: number;
  buf: Uint8Array;
  /** Next page to stage. */
  next: number;
  /** Pages not yet completed. */
  pending: number;
  error: Error | null;
  resolve: () => void;
  reject: (e: Error) => void;
}

/** Turns a page error reported by a worker back into the typed error it was. */
function rebuildError(e: PageError): Error {
  if (e.code === 'ERANGE') return new RangeError(e.message);
  if (e.code === 'EIO' || e.code === 'ENODEV') return new ZramError(e.code, e.message);
  return new ZsError(e.code as ZsError['code'], e.message);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | null> {
  return Promise.race([
    p,
    new Promise<null>((r) => {
      const t = setTimeout(() => r(null), ms);
      t.unref();
    }),
  ]);
}
