// Incremental server-side input: ByteQueue (a FIFO of received Buffers that
// hands out views where it can) and ServerDecoder, which turns a byte stream
// split or pipelined across TCP packets into events (client flags, options,
// requests with their WRITE payloads, fatal violations) through the
// client-flags, options and transmission phases.

import { CLIENT_FLAGS_SIZE, NBD_CMD_WRITE, NBD_REQUEST_MAGIC, OPTION_HEADER_SIZE, REQUEST_SIZE } from './constants.js';
import { decodeRequest, type NbdRequest } from './transmission.js';

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

  /** Drops everything queued. */
  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.total = 0;
  }
}

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
  /** A request header whose WRITE payload has not fully arrived yet. */
  private pending: NbdRequest | null = null;

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
    this.pending = null;
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
        return this.nextRequest();
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

  private nextRequest(): ServerEvent | null {
    const q = this.q;
    let req = this.pending;
    if (req === null) {
      if (q.length < 4) return null;
      const magic = ((q.byteAt(0) << 24) | (q.byteAt(1) << 16) | (q.byteAt(2) << 8) | q.byteAt(3)) >>> 0;
      if (magic !== NBD_REQUEST_MAGIC) return this.fatal(`bad request magic 0x${magic.toString(16).padStart(8, '0')}`);
      if (q.length < REQUEST_SIZE) return null;
      req = decodeRequest(q.take(REQUEST_SIZE));
      if (req.type !== NBD_CMD_WRITE) return { kind: 'request', request: req };
      if (req.length > this.maxPayload) {
        this.kill();
        return { kind: 'request', request: req, oversized: true };
      }
      this.pending = req;
    }
    if (q.length < req.length) return null;
    this.pending = null;
    return { kind: 'request', request: req, payload: q.take(req.length) };
  }
}
