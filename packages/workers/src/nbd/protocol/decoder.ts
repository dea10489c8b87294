// Incremental server-side input: ByteQueue (a FIFO of received Buffers that
// hands out views where it can) and ServerDecoder, which turns a byte stream
// split or pipelined across TCP packets into events (client flags, options,
// requests with their WRITE payloads, fatal violations) through the
// client-flags, options and transmission phases. In the transmission phase
// decodeRequest() fills one reused RequestRecord instead of building an event,
// so a request costs no allocation beyond the view of a WRITE's payload.

import { CLIENT_FLAGS_SIZE, NBD_CMD_WRITE, NBD_REQUEST_MAGIC, OPTION_HEADER_SIZE, REQUEST_SIZE } from './constants.js';
import type { NbdRequest } from './transmission.js';
import { TWO32 } from './wire.js';

const IHAVEOPT_BYTES = Buffer.from('IHAVEOPT', 'latin1');

/**
 * A FIFO of received Buffers. take(n) hands out exactly n bytes: a view into a
 * received chunk when they lie in one (no copy), else a fresh copy.
 */
export class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0; // bytes of chunks[0] already consumed
  private total = 0;

  get length(): number {
    return this.total;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.total += chunk.length;
  }

  /** Byte at position i from the front (i < length). */
  byteAt(i: number): number {
    let k = 0;
    let pos = i + this.head;
    while (pos >= this.chunks[k]!.length) pos -= this.chunks[k++]!.length;
    return this.chunks[k]![pos]!;
  }

  /** Removes and returns the first n bytes (n <= length). */
  take(n: number): Buffer {
    if (n > this.total) throw new RangeError(`ByteQueue.take(${n}) with ${this.total} bytes queued`);
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.head += n;
      this.total -= n;
      if (this.head === first.length) {
        this.chunks.shift();
        this.head = 0;
      }
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const m = Math.min(c.length - this.head, n - filled);
      c.copy(out, filled, this.head, this.head + m);
      filled += m;
      this.head += m;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    this.total -= n;
    return out;
  }

  /**
   * The big-endian u32 at position i from the front (i + 4 <= length), read
   * in place when it lies in the first chunk.
   */
  u32At(i: number): number {
    const first = this.chunks[0]!;
    const at = this.head + i;
    if (at + 4 <= first.length) return first.readUInt32BE(at);
    return ((this.byteAt(i) << 24) | (this.byteAt(i + 1) << 16) | (this.byteAt(i + 2) << 8) | this.byteAt(i + 3)) >>> 0;
  }

  /** The big-endian u16 at position i from the front (i + 2 <= length). */
  u16At(i: number): number {
    const first = this.chunks[0]!;
    const at = this.head + i;
    if (at + 2 <= first.length) return first.readUInt16BE(at);
    return (this.byteAt(i) << 8) | this.byteAt(i + 1);
  }

  /** Drops the first n bytes (n <= length) without handing them out. */
  skip(n: number): void {
    if (n > this.total) throw new RangeError(`ByteQueue.skip(${n}) with ${this.total} bytes queued`);
    this.total -= n;
    while (n > 0) {
      const c = this.chunks[0]!;
      const m = Math.min(c.length - this.head, n);
      n -= m;
      this.head += m;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
  }

  /** Drops everything queued. */
  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.total = 0;
  }
}

/**
 * A transmission request as the decoder fills it: the header fields, a
 * WRITE's payload, and whether it was oversized. One record is reused for
 * every request; whoever keeps a request past the next decode copies it.
 */
export class RequestRecord implements NbdRequest {
  flags = 0;
  type = 0;
  cookieHi = 0;
  cookieLo = 0;
  offset = 0;
  length = 0;
  /** A WRITE's data (exactly `length` bytes), else null. */
  payload: Buffer | null = null;
  /**
   * A WRITE longer than maxPayload: its data was not read and the stream
   * cannot be resynchronized; the decoder is dead after it.
   */
  oversized = false;

  copyFrom(r: RequestRecord): void {
    this.flags = r.flags;
    this.type = r.type;
    this.cookieHi = r.cookieHi;
    this.cookieLo = r.cookieLo;
    this.offset = r.offset;
    this.length = r.length;
    this.payload = r.payload;
    this.oversized = r.oversized;
  }
}

/** What decodeRequest() found: more bytes needed, a request in `request`, or a fatal violation (`fatalReason`). */
export const DECODE_MORE = 0;
export const DECODE_REQUEST = 1;
export const DECODE_FATAL = 2;

/** What the server-side decoder yields. */
export type ServerEvent =
  | { kind: 'client-flags'; flags: number }
  | { kind: 'option'; option: number; data: Buffer }
  | {
      kind: 'request';
      request: NbdRequest;
      /** A WRITE's data (exactly request.length bytes). */
      payload?: Buffer;
      /**
       * A WRITE longer than maxPayload: its data was not read and the stream
       * cannot be resynchronized; the decoder is dead after this event.
       */
      oversized?: boolean;
    }
  /** A violation after which the stream cannot be trusted: hard disconnect. The decoder is dead. */
  | { kind: 'fatal'; reason: string };

export type DecoderPhase = 'client-flags' | 'options' | 'transmission' | 'dead';

export interface ServerDecoderOptions {
  /** Largest option data accepted (default 64 KiB); longer is fatal. */
  maxOptionLength?: number;
  /** Largest WRITE payload accepted (default 32 MiB). */
  maxPayload?: number;
}

/**
 * Incremental server-side decoder. push() received bytes, then call next()
 * until it returns null (more bytes needed). The phase moves from
 * 'client-flags' to 'options' by itself; the server calls
 * enterTransmission() once it has answered NBD_OPT_GO or EXPORT_NAME (the
 * client may not send requests before that reply, but bytes already queued
 * are then decoded as requests).
 */
export class ServerDecoder {
  readonly maxOptionLength: number;
  readonly maxPayload: number;
  private readonly q = new ByteQueue();
  private _phase: DecoderPhase = 'client-flags';
  /** The transmission request decodeRequest() filled last (reused). */
  readonly request = new RequestRecord();
  /** Why decodeRequest() returned DECODE_FATAL. */
  fatalReason = '';
  /** `request` holds a WRITE header whose payload has not fully arrived yet. */
  private pending = false;

  constructor(opts: ServerDecoderOptions = {}) {
    this.maxOptionLength = opts.maxOptionLength ?? 65536;
    this.maxPayload = opts.maxPayload ?? 32 * 1024 * 1024;
  }

  get phase(): DecoderPhase {
    return this._phase;
  }

  /** Bytes received and not yet decoded. */
  get buffered(): number {
    return this.q.length;
  }

  push(chunk: Uint8Array): void {
    if (this._phase !== 'dead') this.q.push(chunk);
  }

  enterTransmission(): void {
    if (this._phase !== 'options') throw new Error(`enterTransmission() in phase ${this._phase}`);
    this._phase = 'transmission';
  }

  /** Stops decoding (after a fatal event, an abort or a disconnect). */
  kill(): void {
    this._phase = 'dead';
    this.pending = false;
    this.request.payload = null;
    this.q.clear();
  }

  next(): ServerEvent | null {
    switch (this._phase) {
      case 'client-flags': {
        if (this.q.length < CLIENT_FLAGS_SIZE) return null;
        const flags = this.q.take(CLIENT_FLAGS_SIZE).readUInt32BE(0);
        this._phase = 'options';
        return { kind: 'client-flags', flags };
      }
      case 'options':
        return this.nextOption();
      case 'transmission':
        return this.requestEvent(this.decodeRequest());
      case 'dead':
        return null;
    }
  }

  private fatal(reason: string): ServerEvent {
    this.kill();
    return { kind: 'fatal', reason };
  }

  private nextOption(): ServerEvent | null {
    const q = this.q;
    if (q.length < OPTION_HEADER_SIZE) {
      // Reject a bad magic as soon as its 8 bytes are in.
      if (q.length >= 8 && !this.optionMagicOk()) return this.fatal('bad option magic (expected IHAVEOPT)');
      return null;
    }
    if (!this.optionMagicOk()) return this.fatal('bad option magic (expected IHAVEOPT)');
    const len = ((q.byteAt(12) << 24) | (q.byteAt(13) << 16) | (q.byteAt(14) << 8) | q.byteAt(15)) >>> 0;
    if (len > this.maxOptionLength) return this.fatal(`option data of ${len} bytes exceeds ${this.maxOptionLength}`);
    if (q.length < OPTION_HEADER_SIZE + len) return null;
    const header = q.take(OPTION_HEADER_SIZE);
    const option = header.readUInt32BE(8);
    const data = Buffer.from(q.take(len)); // own copy: option data is small and kept briefly
    return { kind: 'option', option, data };
  }

  private optionMagicOk(): boolean {
    for (let i = 0; i < 8; i++) if (this.q.byteAt(i) !== IHAVEOPT_BYTES[i]) return false;
    return true;
  }

  /** The event form of a transmission decode (allocates: for tests and tools; the server uses decodeRequest()). */
  private requestEvent(r: number): ServerEvent | null {
    if (r === DECODE_MORE) return null;
    if (r === DECODE_FATAL) return { kind: 'fatal', reason: this.fatalReason };
    const q = this.request;
    const request: NbdRequest = {
      flags: q.flags,
      type: q.type,
      cookieHi: q.cookieHi,
      cookieLo: q.cookieLo,
      offset: q.offset,
      length: q.length,
    };
    if (q.oversized) return { kind: 'request', request, oversized: true };
    return q.payload === null ? { kind: 'request', request } : { kind: 'request', request, payload: q.payload };
  }

  /**
   * Transmission phase: decodes the next request into `request` (reused; no
   * allocation but a WRITE payload's view, or its copy when it spans
   * received chunks). Returns DECODE_MORE, DECODE_REQUEST or DECODE_FATAL
   * (then the decoder is dead and `fatalReason` says why).
   */
  decodeRequest(): number {
    if (this._phase !== 'transmission') return DECODE_MORE;
    const q = this.q;
    const req = this.request;
    if (!this.pending) {
      if (q.length < 4) return DECODE_MORE;
      const magic = q.u32At(0);
      if (magic !== NBD_REQUEST_MAGIC) {
        this.kill();
        this.fatalReason = `bad request magic 0x${magic.toString(16).padStart(8, '0')}`;
        return DECODE_FATAL;
      }
      if (q.length < REQUEST_SIZE) return DECODE_MORE;
      req.flags = q.u16At(4);
      req.type = q.u16At(6);
      req.cookieHi = q.u32At(8);
      req.cookieLo = q.u32At(12);
      req.offset = q.u32At(16) * TWO32 + q.u32At(20);
      req.length = q.u32At(24);
      req.payload = null;
      req.oversized = false;
      q.skip(REQUEST_SIZE);
      if (req.type !== NBD_CMD_WRITE) return DECODE_REQUEST;
      if (req.length > this.maxPayload) {
        this.kill();
        req.oversized = true;
        return DECODE_REQUEST;
      }
      this.pending = true;
    }
    if (q.length < req.length) return DECODE_MORE;
    this.pending = false;
    req.payload = q.take(req.length);
    return DECODE_REQUEST;
  }
}
