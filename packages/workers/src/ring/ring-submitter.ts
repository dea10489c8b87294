// The submitting side of the page rings, on the thread that calls the
// service: cuts page requests into ring entries (at most batchPages pages
// each), copies write data into the arena once, reaps completions from every
// consumer's completion ring itself (no message per batch; an idle submitter
// waits with Atomics.waitAsync, which consumers signal only when it waits) and
// settles each request exactly once. It also decides, per pump, where work
// runs (run-to-completion, as a kernel CPU runs the zram path for its own I/O):
//   - a lone small request with nothing in flight and every worker asleep runs
//     here at once, straight from/to the caller's buffer (a wake-up would cost
//     more than the page);
//   - while more entries wait than there are workers, this thread claims the
//     oldest one and runs it too, a bounded number per turn of the event loop.
// Requests waiting for a free entry are served round-robin, one entry each, so
// a small request behind large ones waits for a bounded number of entries.
// A caller that submits a burst (the NBD server, per socket read) plugs the
// submitter around it: the burst is decided on at unplug(), with no
// scheduling per request; callback completions delivered in one pump are
// followed by one call of each completion-batch hook, told whether more
// completions are still to come (the server then writes its replies now or
// lets a few more join them). The callback path allocates nothing per
// request once warm.

import { PAGE_SIZE, ZsError } from '@zsmalloc/core';
import { ZramError, type ZramDevice } from '@zsmalloc/zram';
import type { PageArena } from './page-arena.js';
import { OP_READ, OP_WRITE, ST_CLAIMED, type OwnerCounters, type PageRing } from './page-ring.js';
import { runEntry } from './run-entry.js';
import { WorkerFailedError } from '../worker-failure.js';

/**
 * Completion of a callback request (no promise): `err` is null on success; for
 * a read, `data` is the pages read, valid only during the call (it is the
 * arena entry, or this thread's scratch page buffer), so the caller copies it
 * where it must go — the one copy a read needs.
 */
export type PageDone = (ctx: unknown, err: Error | null, data: Uint8Array | null) => void;

/** Where page work may run: adaptive (default), only in workers, or always on the submitting thread. */
export type RunToCompletion = 'adaptive' | 'never' | 'always';

/** Owner id of the submitting thread in the ring; workers are 1..workers. */
export const SUBMITTER_OWNER = 0;

/** Entries the submitting thread runs itself before yielding to the event loop. */
const HELP_BUDGET = 4;

export interface SubmitterOptions {
  workers: number;
  policy: RunToCompletion;
  /** A lone request of at most this many pages may run inline (default 4). */
  inlinePages: number;
}

export interface RingStats {
  /** Ring entries, pages per entry, the run-to-completion policy. */
  entries: number;
  batchPages: number;
  policy: RunToCompletion;
  requests: number;
  /** Entries settled so far (a clock for fairness: "completed within N entries"). */
  entriesCompleted: number;
  /** Pages run inline on the submitting thread without touching the ring. */
  inlinePages: number;
  /** Ring entries' pages run by the submitting thread while workers were busy. */
  helpedPages: number;
  /** Pages done by workers. */
  workerPages: number;
  /** (inline + helped) / all pages. */
  runToCompletionShare: number;
  /** Requests waiting for a free entry now. */
  queued: number;
  /** Entries on the ring now. */
  inflightEntries: number;
  /** Times the submitting thread waited for a completion (each costs it an event-loop wake-up). */
  completionWaits: number;
  /** Wake-ups of sleeping workers the submitting thread asked for (Atomics.notify calls that woke one). */
  workerWakes: number;
  /** Per worker (owner 1..): pages, entries, busy and idle milliseconds, wake-ups, thread id. */
  workers: OwnerCounters[];
}

class PageRequest {
  op: number;
  first: number;
  count: number;
  buf: Uint8Array;
  /** Next page to put on the ring. */
  next = 0;
  /** Pages not yet settled. */
  pending: number;
  error: Error | null = null;
  resolve: (() => void) | null = null;
  reject: ((e: Error) => void) | null = null;
  /** Callback requests: settled through `done(ctx, ...)`; a read's `buf` is null until it completes. */
  done: PageDone | null = null;
  ctx: unknown = null;

  constructor(op: number, first: number, count: number, buf: Uint8Array) {
    this.op = op;
    this.first = first;
    this.count = count;
    this.buf = buf;
    this.pending = count;
  }
}

const NO_BYTES = new Uint8Array(0);

/** A FIFO of requests in a circular array that grows by doubling: push and shift allocate nothing once grown. */
class RequestFifo {
  private items: (PageRequest | null)[] = new Array<PageRequest | null>(16).fill(null);
  private head = 0;
  length = 0;

  push(r: PageRequest): void {
    if (this.length === this.items.length) {
      const old = this.items;
      this.items = new Array<PageRequest | null>(old.length * 2).fill(null);
      for (let i = 0; i < this.length; i++) this.items[i] = old[(this.head + i) % old.length]!;
      this.head = 0;
    }
    this.items[(this.head + this.length) % this.items.length] = r;
    this.length++;
  }

  /** Removes and returns the oldest (length > 0). */
  shift(): PageRequest {
    const r = this.items[this.head]!;
    this.items[this.head] = null;
    this.head = (this.head + 1) % this.items.length;
    this.length--;
    return r;
  }

  /** The oldest (length > 0). */
  first(): PageRequest {
    return this.items[this.head]!;
  }
}

export class RingSubmitter {
  readonly ring: PageRing;
  readonly arena: PageArena;
  private readonly dev: ZramDevice;
  private readonly opts: SubmitterOptions;
  /** The request and its page offset of each ring entry in flight. */
  private readonly entryReq: (PageRequest | null)[];
  private readonly entryPos: Int32Array;
  /** Requests with pages not yet on the ring, round-robin. */
  private readonly queue = new RequestFifo();
  private inflight = 0;
  private tag = 0;
  private pumping = false;
  private scheduled = false;
  private waiting = false;
  private requests = 0;
  private entriesCompleted = 0;
  private inlinePages = 0;
  private completionWaits = 0;
  private workerWakes = 0;
  /** Callback requests for reuse (the 4 KiB path allocates none). */
  private readonly spare: PageRequest[] = [];
  /** Where an inline callback read lands before its callback copies it out. */
  private readonly scratch: Uint8Array;
  private readonly scratchPage: Uint8Array;
  private drainWaiters: (() => void)[] = [];
  /** plug() depth: while > 0, enqueue() schedules nothing and unplug() pumps. */
  private plugged = 0;
  /** A callback completion was delivered since the hooks last ran. */
  private delivered = false;
  /** The hooks last heard `more`: they are owed a call once the work in flight settles. */
  private owed = false;
  private batchHooks: ((more: boolean) => void)[] = [];

  constructor(ring: PageRing, arena: PageArena, dev: ZramDevice, opts: SubmitterOptions) {
    this.ring = ring;
    this.arena = arena;
    this.dev = dev;
    this.opts = opts;
    this.entryReq = new Array<PageRequest | null>(ring.entries).fill(null);
    this.entryPos = new Int32Array(ring.entries);
    this.scratch = new Uint8Array(arena.batchPages * PAGE_SIZE);
    this.scratchPage = this.scratch.subarray(0, PAGE_SIZE);
  }

  /** Entries on the ring plus requests waiting for one. */
  get busy(): boolean {
    return this.inflight > 0 || this.queue.length > 0;
  }

  writePages(first: number, src: Uint8Array): Promise<void> {
    return this.submit(OP_WRITE, first, src.length / PAGE_SIZE, src);
  }

  /** Reads whole pages into `dst` (its length a multiple of 4096). */
  readPagesInto(first: number, dst: Uint8Array): Promise<void> {
    return this.submit(OP_READ, first, dst.length / PAGE_SIZE, dst);
  }

  private submit(op: number, first: number, count: number, buf: Uint8Array): Promise<void> {
    this.requests++;
    if (count === 0) return Promise.resolve();
    const req = new PageRequest(op, first, count, buf);
    const p = new Promise<void>((resolve, reject) => {
      req.resolve = resolve;
      req.reject = reject;
    });
    this.enqueue(req);
    return p;
  }

  /** Writes whole pages and calls done(ctx, err, null); no promise, no allocation once warm. */
  writePagesCb(first: number, src: Uint8Array, done: PageDone, ctx: unknown): void {
    this.enqueue(this.callbackRequest(OP_WRITE, first, src.length / PAGE_SIZE, src, done, ctx));
  }

  /**
   * Reads 1..batchPages pages and calls done(ctx, err, data) with the bytes
   * (valid only during the call): one ring entry, no promise, no allocation once warm.
   */
  readPagesCb(first: number, count: number, done: PageDone, ctx: unknown): void {
    if (!(count >= 1 && count <= this.arena.batchPages))
      throw new RangeError(`readPagesCb reads 1..${this.arena.batchPages} pages, got ${count}`);
    this.enqueue(this.callbackRequest(OP_READ, first, count, NO_BYTES, done, ctx));
  }

  private callbackRequest(
    op: number,
    first: number,
    count: number,
    buf: Uint8Array,
    done: PageDone,
    ctx: unknown,
  ): PageRequest {
    this.requests++;
    const req = this.spare.pop() ?? new PageRequest(op, first, count, buf);
    req.op = op;
    req.first = first;
    req.count = count;
    req.buf = buf;
    req.next = 0;
    req.pending = count;
    req.error = null;
    req.done = done;
    req.ctx = ctx;
    return req;
  }

  /** Holds requests submitted until the matching unplug() (plugs nest). */
  plug(): void {
    this.plugged++;
  }

  /** Ends a plug; the outermost one starts the held burst now, on this thread. */
  unplug(): void {
    if (this.plugged === 0) throw new Error('unplug() without plug()');
    if (--this.plugged > 0 || this.queue.length === 0) return;
    if (this.pumping) {
      // submitted from a completion callback inside pump(): pump runs again
      this.kick();
      return;
    }
    this.pump();
  }

  /**
   * Runs `fn(more)` after each pump that delivered callback completions;
   * `more` says requests are still queued or on the ring, and fn is then
   * called again once some of them settle. Returns the unregister function.
   */
  onCompletionBatch(fn: (more: boolean) => void): () => void {
    this.batchHooks = [...this.batchHooks, fn];
    return () => {
      this.batchHooks = this.batchHooks.filter((f) => f !== fn);
    };
  }

  private runBatchHooks(): void {
    if (!this.delivered && !this.owed) return;
    this.delivered = false;
    const more = this.busy;
    this.owed = more;
    const hooks = this.batchHooks;
    for (let i = 0; i < hooks.length; i++) hooks[i]!(more);
  }

  private enqueue(req: PageRequest): void {
    this.queue.push(req);
    if (this.plugged > 0) return;
    // Decide in a microtask, once the caller's burst of requests is queued: a
    // burst goes to the workers (and to this thread), a lone request may run here.
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.pump);
    }
  }

  /** Resolves once nothing is queued or on the ring (for close()). */
  drained(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((r) => this.drainWaiters.push(r));
  }

  /** Settles a request whose pages are all done. */
  private finishRequest(req: PageRequest, data: Uint8Array | null): void {
    const done = req.done;
    if (done !== null) {
      const ctx = req.ctx;
      const err = req.error;
      req.done = null;
      req.ctx = null;
      req.buf = NO_BYTES;
      this.spare.push(req);
      this.delivered = true;
      done(ctx, err, err === null ? data : null);
    } else if (req.error) req.reject!(req.error);
    else req.resolve!();
    if (this.drainWaiters.length > 0 && !this.busy) {
      const w = this.drainWaiters;
      this.drainWaiters = [];
      for (const r of w) r();
    }
  }

  /** Reaps, fills the ring, runs work here when the policy says so, then waits for completions. */
  private readonly pump = (): void => {
    this.scheduled = false;
    if (this.pumping) return;
    this.pumping = true;
    let budget = HELP_BUDGET;
    const policy = this.opts.policy;
    try {
      for (;;) {
        this.reapAll();
        if (policy === 'always') {
          while (this.queue.length > 0) this.runInline(this.queue.shift());
          break;
        }
        if (policy === 'adaptive' && this.loneSmallRequest()) {
          this.runInline(this.queue.shift());
          continue;
        }
        this.fill();
        if (policy === 'adaptive' && budget > 0 && this.ring.unclaimed() > this.opts.workers) {
          const slot = this.ring.claim(SUBMITTER_OWNER);
          if (slot >= 0) {
            const t0 = performance.now();
            const n = runEntry(this.dev, this.ring, this.arena, slot);
            this.ring.account(SUBMITTER_OWNER, n, performance.now() - t0);
            this.settle(slot);
            budget--;
            continue;
          }
        }
        break;
      }
    } finally {
      this.pumping = false;
    }
    this.runBatchHooks();
    if (budget === 0 && this.busy) {
      // let the event loop run (sockets, timers), then carry on
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.pump);
      }
    } else {
      this.waitForCompletions();
    }
  };

  private loneSmallRequest(): boolean {
    return (
      this.queue.length === 1 &&
      this.inflight === 0 &&
      this.queue.first().count <= this.opts.inlinePages &&
      this.ring.sleepers() >= this.opts.workers
    );
  }

  /** Puts queued requests on the ring, one entry per request in turn, and wakes a sleeper for them. */
  private fill(): void {
    const q = this.queue;
    const ring = this.ring;
    const bp = this.arena.batchPages;
    let published = 0;
    while (q.length > 0) {
      const slot = ring.nextFree();
      if (slot < 0) break;
      const req = q.shift();
      const take = Math.min(bp, req.count - req.next);
      if (req.op === OP_WRITE) {
        const whole = req.next === 0 && take === req.count;
        const src = whole ? req.buf : req.buf.subarray(req.next * PAGE_SIZE, (req.next + take) * PAGE_SIZE);
        this.arena.bytes.set(src, this.arena.pageOf(slot) * PAGE_SIZE);
      }
      this.entryReq[slot] = req;
      this.entryPos[slot] = req.next;
      ring.submit(slot, req.op, req.first + req.next, take, this.arena.pageOf(slot), this.tag);
      this.tag = (this.tag + 1) | 0;
      this.inflight++;
      published++;
      req.next += take;
      if (req.next < req.count) q.push(req);
    }
    // one wake-up per burst: a woken worker that finds more wakes the next one
    if (published > 0) this.workerWakes += ring.wake(1);
  }

  /** Settles every entry the consumers have published; returns how many. */
  private reapAll(): number {
    let n = 0;
    for (let o = 1; o < this.ring.owners; o++) {
      for (let slot = this.ring.reap(o); slot >= 0; slot = this.ring.reap(o)) {
        this.settle(slot);
        n++;
      }
    }
    return n;
  }

  private waitForCompletions(): void {
    if (this.waiting || this.inflight === 0) return;
    const seen = this.ring.completionSeq();
    if (this.reapAll() > 0) return this.kick();
    const p = this.ring.waitCompletion(seen);
    if (p === null) return this.kick();
    this.waiting = true;
    this.completionWaits++;
    p.then(this.woken, this.woken);
  }

  private readonly woken = (): void => {
    this.waiting = false;
    this.pump();
  };

  private kick(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(this.pump);
  }

  /** Runs a whole request on this thread, straight between the caller's buffer and the device. */
  private runInline(req: PageRequest): void {
    const write = req.op === OP_WRITE;
    // a callback read has no buffer of its own: it lands in the scratch pages
    const buf = !write && req.done !== null ? this.scratchView(req.count) : req.buf;
    for (let k = 0; k < req.count; k++) {
      const page = req.count === 1 ? buf : buf.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE);
      try {
        if (write) this.dev.writePage(req.first + k, page);
        else this.dev.readPage(req.first + k, page);
      } catch (e) {
        req.error ??= e instanceof Error ? e : new ZramError('EIO', String(e));
      }
    }
    this.inlinePages += req.count;
    req.pending = 0;
    this.finishRequest(req, write ? null : buf);
  }

  /** The first `count` pages of the scratch buffer (one page without allocating). */
  private scratchView(count: number): Uint8Array {
    if (count === 1) return this.scratchPage;
    return count === this.arena.batchPages ? this.scratch : this.scratch.subarray(0, count * PAGE_SIZE);
  }

  /** Settles one finished entry: its failure or its read data goes to the request. */
  private settle(slot: number): void {
    const req = this.entryReq[slot]!;
    const count = this.ring.count(slot);
    const f = this.ring.failure(slot);
    let data: Uint8Array | null = null;
    if (f) req.error ??= rebuildError(f.code, f.message);
    else if (req.op === OP_READ && !req.error) {
      // a callback read copies out of the arena in its callback, before the entry is reused
      if (req.done !== null) data = this.arena.entryView(slot, count);
      else req.buf.set(this.arena.view(slot, count), this.entryPos[slot]! * PAGE_SIZE);
    }
    this.finishEntry(slot, req, count, data);
  }

  private finishEntry(slot: number, req: PageRequest, count: number, data: Uint8Array | null): void {
    this.entryReq[slot] = null;
    this.inflight--;
    this.entriesCompleted++;
    req.pending -= count;
    if (req.pending === 0) this.finishRequest(req, data);
    this.ring.release(slot);
  }

  /**
   * A worker thread died. What it published still settles normally; entries it
   * had claimed and not finished fail with WorkerFailedError (only those), and
   * the ring goes on serving. Returns how many entries failed.
   */
  ownerDied(owner: number, reason: string): number {
    for (let slot = this.ring.reap(owner); slot >= 0; slot = this.ring.reap(owner)) this.settle(slot);
    let failed = 0;
    for (let slot = 0; slot < this.ring.entries; slot++) {
      const req = this.entryReq[slot];
      if (req === null || req === undefined || this.ring.stateOf(slot) !== ST_CLAIMED + owner) continue;
      req.error ??= new WorkerFailedError(
        'compression',
        `thread died holding pages [${this.ring.first(slot)}, +${this.ring.count(slot)}): ${reason}`,
      );
      this.finishEntry(slot, req, this.ring.count(slot), null);
      failed++;
    }
    this.runBatchHooks();
    // the entries it would have taken: wake sleepers for them (it is no longer counted awake)
    this.ring.wake(this.ring.unclaimed());
    this.kick();
    return failed;
  }

  stats(): RingStats {
    const workers: OwnerCounters[] = [];
    let workerPages = 0;
    for (let o = 1; o < this.ring.owners; o++) {
      const c = this.ring.counters(o);
      workers.push(c);
      workerPages += c.pages;
    }
    const helpedPages = this.ring.counters(SUBMITTER_OWNER).pages;
    const all = workerPages + helpedPages + this.inlinePages;
    return {
      entries: this.ring.entries,
      batchPages: this.arena.batchPages,
      policy: this.opts.policy,
      requests: this.requests,
      entriesCompleted: this.entriesCompleted,
      inlinePages: this.inlinePages,
      helpedPages,
      workerPages,
      runToCompletionShare: all === 0 ? 0 : (helpedPages + this.inlinePages) / all,
      queued: this.queue.length,
      inflightEntries: this.inflight,
      completionWaits: this.completionWaits,
      workerWakes: this.workerWakes,
      workers,
    };
  }
}

/** Turns an error code and message that crossed a thread back into the typed error it was. */
export function rebuildError(code: string, message: string): Error {
  if (code === 'ERANGE') return new RangeError(message);
  if (code === 'EIO' || code === 'ENODEV') return new ZramError(code, message);
  return new ZsError(code as ZsError['code'], message);
}
