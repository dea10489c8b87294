// The block backend the NBD server drives: an async byte-addressed device
// (BlockBackend), the mapping from backend errors to NBD error values, and the
// server-wide tracker of write-type operations in flight that NBD_CMD_FLUSH
// waits for.

import * as nbd from './protocol.js';

/** An async block device: what an NBD export reads from and writes to. */
export interface BlockBackend {
  /** Export size in bytes. */
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  write(offset: number, data: Uint8Array): Promise<void>;
  /** A hint that the range is no longer needed (may free whole pages only). */
  trim(offset: number, length: number): Promise<void>;
  /** The range reads as zeroes afterwards. */
  writeZeroes(offset: number, length: number): Promise<void>;
  /** Every write completed before the call is durable when it resolves. */
  flush(): Promise<void>;
}

/**
 * A backend that also serves whole-page requests with a completion callback
 * instead of a promise (the server's 4 KiB fast path). `done(ctx, err, data)`
 * is called exactly once; a read's `data` is valid only during the call. A
 * synchronous throw means the request was not started.
 */
export interface PageCallbackBackend extends BlockBackend {
  /** Largest read the callback path takes, in bytes (whole pages). */
  readonly callbackReadMax: number;
  writePagesCb(offset: number, data: Uint8Array, done: PageCallback, ctx: unknown): void;
  readPagesCb(offset: number, length: number, done: PageCallback, ctx: unknown): void;
  /**
   * Plugging (as the kernel's blk_start_plug/blk_finish_plug): requests
   * submitted between plug() and the matching unplug() are held and started
   * together at unplug(), so a burst decoded from one socket read costs one
   * dispatch decision and no scheduling per request. Plugs nest.
   */
  plug?(): void;
  unplug?(): void;
  /**
   * Registers `fn(more)` to run after each batch of callbacks the backend
   * delivers together; `more` says other requests are still in flight, and
   * fn is then called again when some of them complete (so the server may
   * hold its replies for the next batch). Returns the unregister function.
   */
  onCompletionBatch?(fn: (more: boolean) => void): () => void;
}

export type PageCallback = (ctx: unknown, err: Error | null, data: Uint8Array | null) => void;

export function hasPageCallbacks(b: BlockBackend): b is PageCallbackBackend {
  return typeof (b as Partial<PageCallbackBackend>).writePagesCb === 'function';
}

/**
 * NBD error value for an error a backend threw: RangeError (offset outside the
 * device) and code 'EINVAL' → EINVAL; codes 'ENOMEM', 'ENOSPC' (a full
 * mem_limit or pool), 'EDQUOT', 'EFBIG' → ENOSPC (the spec asks servers to
 * avoid ENOMEM); 'EPERM'/'EROFS' → EPERM; 'ESHUTDOWN' → ESHUTDOWN; anything
 * else (ZramError 'EIO', unexpected exceptions) → EIO. Errors are recognized
 * by their `code`, so errors rebuilt after crossing a thread boundary map the
 * same way.
 */
export function nbdErrorOf(err: unknown): number {
  if (err instanceof RangeError) return nbd.NBD_EINVAL;
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  switch (code) {
    case 'EINVAL':
      return nbd.NBD_EINVAL;
    case 'ENOMEM':
    case 'ENOSPC':
    case 'EDQUOT':
    case 'EFBIG':
      return nbd.NBD_ENOSPC;
    case 'EPERM':
    case 'EROFS':
      return nbd.NBD_EPERM;
    case 'ESHUTDOWN':
      return nbd.NBD_ESHUTDOWN;
    default:
      return nbd.NBD_EIO;
  }
}

/** Short name of an NBD error value, for messages. */
export function nbdErrorName(error: number): string {
  switch (error) {
    case nbd.NBD_EPERM:
      return 'EPERM';
    case nbd.NBD_EIO:
      return 'EIO';
    case nbd.NBD_ENOMEM:
      return 'ENOMEM';
    case nbd.NBD_EINVAL:
      return 'EINVAL';
    case nbd.NBD_ENOSPC:
      return 'ENOSPC';
    case nbd.NBD_EOVERFLOW:
      return 'EOVERFLOW';
    case nbd.NBD_ENOTSUP:
      return 'ENOTSUP';
    case nbd.NBD_ESHUTDOWN:
      return 'ESHUTDOWN';
    default:
      return `error ${error}`;
  }
}

/**
 * Write-type operations (WRITE, TRIM, WRITE_ZEROES) in flight on any
 * connection of a server. A FLUSH waits for the ones in flight when it
 * arrives (a snapshot, so a steady stream of new writes cannot starve it),
 * then calls backend.flush(). Shared by all connections, which is what makes
 * NBD_FLAG_CAN_MULTI_CONN truthful.
 */
export class WriteTracker {
  private readonly inflight = new Set<Promise<unknown>>();
  /**
   * Callback-path writes in flight, counted per epoch (a FLUSH starts a new
   * epoch): those of the current epoch in `current` (no allocation per
   * write), those of older epochs a FLUSH waits for in `counts`.
   */
  private epoch = 0;
  private current = 0;
  private readonly counts = new Map<number, number>();
  private epochWaiters: { epoch: number; resolve: () => void }[] = [];

  get size(): number {
    let n = this.inflight.size + this.current;
    for (const c of this.counts.values()) n += c;
    return n;
  }

  /** A callback-path write starts; pass the returned epoch to end(). No allocation. */
  begin(): number {
    this.current++;
    return this.epoch;
  }

  end(epoch: number): void {
    if (epoch === this.epoch) {
      this.current--;
      return;
    }
    const left = (this.counts.get(epoch) ?? 1) - 1;
    if (left > 0) {
      this.counts.set(epoch, left);
      return;
    }
    this.counts.delete(epoch);
    if (this.epochWaiters.length === 0) return;
    const oldest = this.counts.size === 0 ? Number.POSITIVE_INFINITY : Math.min(...this.counts.keys());
    const ready = this.epochWaiters.filter((w) => w.epoch < oldest);
    if (ready.length === 0) return;
    this.epochWaiters = this.epochWaiters.filter((w) => w.epoch >= oldest);
    for (const w of ready) w.resolve();
  }

  /** Resolves once every callback-path write begun before the call has ended. */
  private drainCallbacks(): Promise<void> {
    const e = this.epoch++;
    if (this.current > 0) this.counts.set(e, this.current);
    this.current = 0;
    let pending = false;
    for (const k of this.counts.keys()) if (k <= e) pending = true;
    if (!pending) return Promise.resolve();
    return new Promise((resolve) => this.epochWaiters.push({ epoch: e, resolve }));
  }

  /** Registers an operation; returns it unchanged. */
  track<T>(op: Promise<T>): Promise<T> {
    const settled = op.then(
      () => undefined,
      () => undefined,
    );
    this.inflight.add(settled);
    void settled.then(() => this.inflight.delete(settled));
    return op;
  }

  /** Resolves once every operation in flight now has settled. */
  async drain(): Promise<void> {
    const callbacks = this.drainCallbacks();
    if (this.inflight.size > 0) await Promise.all([...this.inflight]);
    await callbacks;
  }
}
