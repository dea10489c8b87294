// NBD protocol codec (pure: no sockets, no timers, no threads). Owns the wire
// constants of the nbd project's doc/proto.md, the fixed newstyle handshake
// (greeting, client flags, option haggling with NBD_OPT_EXPORT_NAME / ABORT /
// LIST / INFO / GO / STRUCTURED_REPLY), option replies (ACK, SERVER, INFO with
// NBD_INFO_EXPORT / NAME / DESCRIPTION / BLOCK_SIZE, errors), transmission
// requests, simple replies and structured reply chunks (OFFSET_DATA, NONE,
// ERROR), and an incremental server-side decoder that turns a stream of
// Buffers (split or pipelined across TCP packets) into events. A few
// client-side encoders and reply parsers serve tests and tools.
//
// All integers are big-endian ("network byte order"). 64-bit offsets and
// sizes are JavaScript numbers: values above 2^53 lose precision but stay
// above any device size, so range checks still reject them. Cookies
// (formerly "handles") are opaque 64-bit values kept as two 32-bit halves.

// ------------------------------------------------------------------ magics

/** 'NBDMAGIC', first 8 bytes of the server greeting. */
export const NBD_MAGIC = 0x4e42444d41474943n;
/** 'IHAVEOPT', second 8 bytes of the greeting and the magic of every option. */
export const NBD_IHAVEOPT = 0x49484156454f5054n;
/** Magic of every option reply in fixed newstyle negotiation. */
export const NBD_OPT_REPLY_MAGIC = 0x0003e889045565a9n;
export const NBD_REQUEST_MAGIC = 0x25609513;
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;

// ------------------------------------------------------------------ handshake flags

export const NBD_FLAG_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_NO_ZEROES = 1 << 1;
export const NBD_FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_C_NO_ZEROES = 1 << 1;

// ------------------------------------------------------------------ transmission flags

export const NBD_FLAG_HAS_FLAGS = 1 << 0;
export const NBD_FLAG_READ_ONLY = 1 << 1;
export const NBD_FLAG_SEND_FLUSH = 1 << 2;
export const NBD_FLAG_SEND_FUA = 1 << 3;
export const NBD_FLAG_ROTATIONAL = 1 << 4;
export const NBD_FLAG_SEND_TRIM = 1 << 5;
export const NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6;
export const NBD_FLAG_SEND_DF = 1 << 7;
export const NBD_FLAG_CAN_MULTI_CONN = 1 << 8;
export const NBD_FLAG_SEND_RESIZE = 1 << 9;
export const NBD_FLAG_SEND_CACHE = 1 << 10;
export const NBD_FLAG_SEND_FAST_ZERO = 1 << 11;

// ------------------------------------------------------------------ options

export const NBD_OPT_EXPORT_NAME = 1;
export const NBD_OPT_ABORT = 2;
export const NBD_OPT_LIST = 3;
export const NBD_OPT_PEEK_EXPORT = 4;
export const NBD_OPT_STARTTLS = 5;
export const NBD_OPT_INFO = 6;
export const NBD_OPT_GO = 7;
export const NBD_OPT_STRUCTURED_REPLY = 8;
export const NBD_OPT_LIST_META_CONTEXT = 9;
export const NBD_OPT_SET_META_CONTEXT = 10;
export const NBD_OPT_EXTENDED_HEADERS = 11;

// ------------------------------------------------------------------ option reply types

export const NBD_REP_ACK = 1;
export const NBD_REP_SERVER = 2;
export const NBD_REP_INFO = 3;
export const NBD_REP_META_CONTEXT = 4;
const REP_ERR = 0x80000000;
export const NBD_REP_ERR_UNSUP = REP_ERR + 1;
export const NBD_REP_ERR_POLICY = REP_ERR + 2;
export const NBD_REP_ERR_INVALID = REP_ERR + 3;
export const NBD_REP_ERR_PLATFORM = REP_ERR + 4;
export const NBD_REP_ERR_TLS_REQD = REP_ERR + 5;
export const NBD_REP_ERR_UNKNOWN = REP_ERR + 6;
export const NBD_REP_ERR_SHUTDOWN = REP_ERR + 7;
export const NBD_REP_ERR_BLOCK_SIZE_REQD = REP_ERR + 8;
export const NBD_REP_ERR_TOO_BIG = REP_ERR + 9;

/** True for the error reply types (bit 31 set). */
export function isOptionReplyError(type: number): boolean {
  return type >= REP_ERR;
}

// ------------------------------------------------------------------ info types (NBD_REP_INFO payloads)

export const NBD_INFO_EXPORT = 0;
export const NBD_INFO_NAME = 1;
export const NBD_INFO_DESCRIPTION = 2;
export const NBD_INFO_BLOCK_SIZE = 3;

// ------------------------------------------------------------------ commands and command flags

export const NBD_CMD_READ = 0;
export const NBD_CMD_WRITE = 1;
export const NBD_CMD_DISC = 2;
export const NBD_CMD_FLUSH = 3;
export const NBD_CMD_TRIM = 4;
export const NBD_CMD_CACHE = 5;
export const NBD_CMD_WRITE_ZEROES = 6;
export const NBD_CMD_BLOCK_STATUS = 7;

export const NBD_CMD_FLAG_FUA = 1 << 0;
export const NBD_CMD_FLAG_NO_HOLE = 1 << 1;
export const NBD_CMD_FLAG_DF = 1 << 2;
export const NBD_CMD_FLAG_REQ_ONE = 1 << 3;
export const NBD_CMD_FLAG_FAST_ZERO = 1 << 4;

// ------------------------------------------------------------------ structured replies

export const NBD_REPLY_FLAG_DONE = 1 << 0;
export const NBD_REPLY_TYPE_NONE = 0;
export const NBD_REPLY_TYPE_OFFSET_DATA = 1;
export const NBD_REPLY_TYPE_OFFSET_HOLE = 2;
export const NBD_REPLY_TYPE_BLOCK_STATUS = 5;
export const NBD_REPLY_TYPE_ERROR = (1 << 15) + 1;
export const NBD_REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2;

// ------------------------------------------------------------------ error values

export const NBD_EPERM = 1;
export const NBD_EIO = 5;
export const NBD_ENOMEM = 12;
export const NBD_EINVAL = 22;
export const NBD_ENOSPC = 28;
export const NBD_EOVERFLOW = 75;
export const NBD_ENOTSUP = 95;
export const NBD_ESHUTDOWN = 108;

// ------------------------------------------------------------------ sizes

/** Server greeting: NBDMAGIC, IHAVEOPT, 16-bit handshake flags. */
export const GREETING_SIZE = 18;
export const CLIENT_FLAGS_SIZE = 4;
export const OPTION_HEADER_SIZE = 16;
export const OPTION_REPLY_HEADER_SIZE = 20;
export const REQUEST_SIZE = 28;
export const SIMPLE_REPLY_SIZE = 16;
export const STRUCTURED_REPLY_HEADER_SIZE = 20;
/** Longest string the protocol allows (export names, messages). */
export const MAX_STRING = 4096;

const TWO32 = 4294967296;
const IHAVEOPT_BYTES = Buffer.from('IHAVEOPT', 'latin1');

function u64(buf: Uint8Array, off: number): number {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return v.getUint32(off) * TWO32 + v.getUint32(off + 4);
}

function putU64(buf: Buffer, value: number, off: number): void {
  const hi = Math.floor(value / TWO32);
  buf.writeUInt32BE(hi >>> 0, off);
  buf.writeUInt32BE(value - hi * TWO32, off + 4);
}

/** Protocol violation found while decoding (the caller decides: error reply or hard disconnect). */
export class NbdProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NbdProtocolError';
  }
}

// ================================================================== handshake (server side)

/** The fixed newstyle greeting: NBDMAGIC, IHAVEOPT, handshake flags. */
export function encodeGreeting(handshakeFlags = NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES): Buffer {
  const b = Buffer.alloc(GREETING_SIZE);
  b.writeBigUInt64BE(NBD_MAGIC, 0);
  b.writeBigUInt64BE(NBD_IHAVEOPT, 8);
  b.writeUInt16BE(handshakeFlags, 16);
  return b;
}

/**
 * Checks the client flags against what the server advertised. Returns an
 * error message for flags the server must drop the connection over (unknown
 * bits, or NO_ZEROES when the server did not offer it), or null.
 */
export function checkClientFlags(clientFlags: number, handshakeFlags: number): string | null {
  const known = NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES;
  if ((clientFlags & ~known) !== 0) return `unknown client flags 0x${(clientFlags >>> 0).toString(16)}`;
  if ((clientFlags & NBD_FLAG_C_NO_ZEROES) !== 0 && (handshakeFlags & NBD_FLAG_NO_ZEROES) === 0) {
    return 'client set NO_ZEROES, which the server did not offer';
  }
  return null;
}

/** A decoded option (its data already checked for the options this server knows). */
export type ParsedOption =
  | { kind: 'export-name'; name: string }
  | { kind: 'abort' }
  | { kind: 'list' }
  | { kind: 'info' | 'go'; name: string; requests: number[] }
  | { kind: 'structured-reply' }
  | { kind: 'starttls' }
  | { kind: 'unsupported'; option: number }
  | { kind: 'invalid'; option: number; message: string };

function decodeString(data: Uint8Array, what: string): string {
  if (data.length > MAX_STRING) throw new NbdProtocolError(`${what} longer than ${MAX_STRING} bytes`);
  if (data.includes(0)) throw new NbdProtocolError(`${what} contains NUL`);
  const s = new TextDecoder('utf-8', { fatal: true });
  try {
    return s.decode(data);
  } catch {
    throw new NbdProtocolError(`${what} is not valid UTF-8`);
  }
}

/** Decodes the data of NBD_OPT_INFO / NBD_OPT_GO: name length, name, request count, info types. */
export function parseInfoRequest(data: Uint8Array): { name: string; requests: number[] } {
  if (data.length < 6) throw new NbdProtocolError('INFO/GO data shorter than 6 bytes');
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const nameLen = v.getUint32(0);
  if (nameLen > data.length - 6) throw new NbdProtocolError(`INFO/GO name length ${nameLen} exceeds the option data`);
  const name = decodeString(data.subarray(4, 4 + nameLen), 'export name');
  const count = v.getUint16(4 + nameLen);
  const rest = data.length - 6 - nameLen;
  if (rest !== count * 2)
    throw new NbdProtocolError(`INFO/GO: ${count} information requests need ${count * 2} bytes, got ${rest}`);
  const requests: number[] = [];
  for (let i = 0; i < count; i++) requests.push(v.getUint16(6 + nameLen + 2 * i));
  return { name, requests };
}

/** Decodes one option's data. Malformed data of a known option gives { kind: 'invalid' }. */
export function parseOption(option: number, data: Uint8Array): ParsedOption {
  try {
    switch (option) {
      case NBD_OPT_EXPORT_NAME:
        return { kind: 'export-name', name: decodeString(data, 'export name') };
      case NBD_OPT_ABORT:
        // The spec has no data for ABORT; a client sending some still wants out.
        return { kind: 'abort' };
      case NBD_OPT_LIST:
        if (data.length !== 0) return { kind: 'invalid', option, message: 'NBD_OPT_LIST takes no data' };
        return { kind: 'list' };
      case NBD_OPT_INFO:
      case NBD_OPT_GO: {
        const r = parseInfoRequest(data);
        return { kind: option === NBD_OPT_GO ? 'go' : 'info', name: r.name, requests: r.requests };
      }
      case NBD_OPT_STRUCTURED_REPLY:
        if (data.length !== 0) return { kind: 'invalid', option, message: 'NBD_OPT_STRUCTURED_REPLY takes no data' };
        return { kind: 'structured-reply' };
      case NBD_OPT_STARTTLS:
        if (data.length !== 0) return { kind: 'invalid', option, message: 'NBD_OPT_STARTTLS takes no data' };
        return { kind: 'starttls' };
      default:
        return { kind: 'unsupported', option };
    }
  } catch (e) {
    if (e instanceof NbdProtocolError) return { kind: 'invalid', option, message: e.message };
    throw e;
  }
}

/** One option reply: magic, option, reply type, length, data. */
export function encodeOptionReply(option: number, type: number, data?: Uint8Array | string): Buffer {
  const payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const len = payload ? payload.length : 0;
  const b = Buffer.allocUnsafe(OPTION_REPLY_HEADER_SIZE + len);
  b.writeBigUInt64BE(NBD_OPT_REPLY_MAGIC, 0);
  b.writeUInt32BE(option >>> 0, 8);
  b.writeUInt32BE(type >>> 0, 12);
  b.writeUInt32BE(len, 16);
  if (payload) b.set(payload, OPTION_REPLY_HEADER_SIZE);
  return b;
}

/** NBD_REP_SERVER reply to NBD_OPT_LIST: name length, name, optional human-readable details. */
export function encodeServerReply(name: string, details = ''): Buffer {
  const n = Buffer.from(name, 'utf8');
  const d = Buffer.from(details, 'utf8');
  const data = Buffer.allocUnsafe(4 + n.length + d.length);
  data.writeUInt32BE(n.length, 0);
  data.set(n, 4);
  data.set(d, 4 + n.length);
  return encodeOptionReply(NBD_OPT_LIST, NBD_REP_SERVER, data);
}

/** NBD_REP_INFO with NBD_INFO_EXPORT: size and transmission flags. */
export function encodeInfoExport(option: number, size: number, transmissionFlags: number): Buffer {
  const data = Buffer.allocUnsafe(12);
  data.writeUInt16BE(NBD_INFO_EXPORT, 0);
  putU64(data, size, 2);
  data.writeUInt16BE(transmissionFlags, 10);
  return encodeOptionReply(option, NBD_REP_INFO, data);
}

/** NBD_REP_INFO with NBD_INFO_NAME or NBD_INFO_DESCRIPTION (a string). */
export function encodeInfoString(
  option: number,
  info: typeof NBD_INFO_NAME | typeof NBD_INFO_DESCRIPTION,
  text: string,
): Buffer {
  const s = Buffer.from(text, 'utf8');
  const data = Buffer.allocUnsafe(2 + s.length);
  data.writeUInt16BE(info, 0);
  data.set(s, 2);
  return encodeOptionReply(option, NBD_REP_INFO, data);
}

/** NBD_REP_INFO with NBD_INFO_BLOCK_SIZE: minimum, preferred and maximum block sizes. */
export function encodeInfoBlockSize(option: number, minimum: number, preferred: number, maximum: number): Buffer {
  const data = Buffer.allocUnsafe(14);
  data.writeUInt16BE(NBD_INFO_BLOCK_SIZE, 0);
  data.writeUInt32BE(minimum, 2);
  data.writeUInt32BE(preferred, 6);
  data.writeUInt32BE(maximum, 10);
  return encodeOptionReply(option, NBD_REP_INFO, data);
}

/** Reply to NBD_OPT_EXPORT_NAME: size, transmission flags, 124 zero bytes unless NO_ZEROES was agreed. */
export function encodeExportNameReply(size: number, transmissionFlags: number, noZeroes: boolean): Buffer {
  const b = Buffer.alloc(noZeroes ? 10 : 134);
  putU64(b, size, 0);
  b.writeUInt16BE(transmissionFlags, 8);
  return b;
}

// ================================================================== transmission

/** A decoded transmission request header. */
export interface NbdRequest {
  flags: number;
  type: number;
  /** The 64-bit cookie as two halves, echoed verbatim in the reply. */
  cookieHi: number;
  cookieLo: number;
  offset: number;
  length: number;
}

/** Decodes a 28-byte request header at `off` (the magic is checked by the caller or by `decodeRequest`). */
export function decodeRequest(buf: Uint8Array, off = 0): NbdRequest {
  if (buf.length - off < REQUEST_SIZE) throw new NbdProtocolError(`request header needs ${REQUEST_SIZE} bytes`);
  const v = new DataView(buf.buffer, buf.byteOffset + off, REQUEST_SIZE);
  const magic = v.getUint32(0);
  if (magic !== NBD_REQUEST_MAGIC)
    throw new NbdProtocolError(`bad request magic 0x${magic.toString(16).padStart(8, '0')}`);
  return {
    flags: v.getUint16(4),
    type: v.getUint16(6),
    cookieHi: v.getUint32(8),
    cookieLo: v.getUint32(12),
    offset: v.getUint32(16) * TWO32 + v.getUint32(20),
    length: v.getUint32(24),
  };
}

/** The 16-byte simple reply header (a READ's data follows it on the wire when error is 0). */
export function encodeSimpleReply(error: number, cookieHi: number, cookieLo: number): Buffer {
  const b = Buffer.allocUnsafe(SIMPLE_REPLY_SIZE);
  b.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(error >>> 0, 4);
  b.writeUInt32BE(cookieHi >>> 0, 8);
  b.writeUInt32BE(cookieLo >>> 0, 12);
  return b;
}

/** A structured reply chunk header: magic, flags, type, cookie, payload length. */
export function encodeStructuredHeader(
  flags: number,
  type: number,
  cookieHi: number,
  cookieLo: number,
  length: number,
): Buffer {
  const b = Buffer.allocUnsafe(STRUCTURED_REPLY_HEADER_SIZE);
  writeStructuredHeader(b, 0, flags, type, cookieHi, cookieLo, length);
  return b;
}

function writeStructuredHeader(
  b: Buffer,
  at: number,
  flags: number,
  type: number,
  cookieHi: number,
  cookieLo: number,
  length: number,
): void {
  b.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, at);
  b.writeUInt16BE(flags, at + 4);
  b.writeUInt16BE(type, at + 6);
  b.writeUInt32BE(cookieHi >>> 0, at + 8);
  b.writeUInt32BE(cookieLo >>> 0, at + 12);
  b.writeUInt32BE(length >>> 0, at + 16);
}

/**
 * Header of an NBD_REPLY_TYPE_OFFSET_DATA chunk for `dataLength` bytes at
 * `offset` (28 bytes: chunk header plus the 64-bit offset); the data follows it.
 */
export function encodeOffsetDataHeader(
  done: boolean,
  cookieHi: number,
  cookieLo: number,
  offset: number,
  dataLength: number,
): Buffer {
  if (dataLength < 1 || dataLength > TWO32 - 1 - 8)
    throw new RangeError(`OFFSET_DATA chunk must carry 1..2^32-9 bytes, got ${dataLength}`);
  const b = Buffer.allocUnsafe(STRUCTURED_REPLY_HEADER_SIZE + 8);
  writeStructuredHeader(
    b,
    0,
    done ? NBD_REPLY_FLAG_DONE : 0,
    NBD_REPLY_TYPE_OFFSET_DATA,
    cookieHi,
    cookieLo,
    8 + dataLength,
  );
  putU64(b, offset, STRUCTURED_REPLY_HEADER_SIZE);
  return b;
}

/** The final NBD_REPLY_TYPE_NONE chunk (always with NBD_REPLY_FLAG_DONE). */
export function encodeNoneChunk(cookieHi: number, cookieLo: number): Buffer {
  return encodeStructuredHeader(NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, cookieHi, cookieLo, 0);
}

/** An NBD_REPLY_TYPE_ERROR chunk: error, message length, message (truncated to fit 16 bits). */
export function encodeErrorChunk(
  done: boolean,
  cookieHi: number,
  cookieLo: number,
  error: number,
  message = '',
): Buffer {
  if (error === 0) throw new RangeError('an error chunk needs a nonzero error');
  let msg = Buffer.from(message, 'utf8');
  if (msg.length > MAX_STRING) msg = msg.subarray(0, MAX_STRING);
  const b = Buffer.allocUnsafe(STRUCTURED_REPLY_HEADER_SIZE + 6 + msg.length);
  writeStructuredHeader(b, 0, done ? NBD_REPLY_FLAG_DONE : 0, NBD_REPLY_TYPE_ERROR, cookieHi, cookieLo, 6 + msg.length);
  b.writeUInt32BE(error >>> 0, STRUCTURED_REPLY_HEADER_SIZE);
  b.writeUInt16BE(msg.length, STRUCTURED_REPLY_HEADER_SIZE + 4);
  b.set(msg, STRUCTURED_REPLY_HEADER_SIZE + 6);
  return b;
}

// ================================================================== incremental input

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

// ================================================================== client side (tests, tools)

/** A client option: IHAVEOPT, option, length, data. */
export function encodeClientOption(option: number, data: Uint8Array = new Uint8Array(0)): Buffer {
  const b = Buffer.allocUnsafe(OPTION_HEADER_SIZE + data.length);
  b.writeBigUInt64BE(NBD_IHAVEOPT, 0);
  b.writeUInt32BE(option >>> 0, 8);
  b.writeUInt32BE(data.length, 12);
  b.set(data, OPTION_HEADER_SIZE);
  return b;
}

/** Data of NBD_OPT_INFO / NBD_OPT_GO. */
export function encodeInfoRequestData(name: string, requests: number[] = []): Buffer {
  const n = Buffer.from(name, 'utf8');
  const b = Buffer.allocUnsafe(6 + n.length + 2 * requests.length);
  b.writeUInt32BE(n.length, 0);
  b.set(n, 4);
  b.writeUInt16BE(requests.length, 4 + n.length);
  for (const [i, r] of requests.entries()) b.writeUInt16BE(r, 6 + n.length + 2 * i);
  return b;
}

/** A 28-byte request header (a WRITE's data follows it). */
export function encodeRequest(r: {
  flags?: number;
  type: number;
  cookieHi?: number;
  cookieLo?: number;
  offset: number;
  length: number;
  magic?: number;
}): Buffer {
  const b = Buffer.allocUnsafe(REQUEST_SIZE);
  b.writeUInt32BE((r.magic ?? NBD_REQUEST_MAGIC) >>> 0, 0);
  b.writeUInt16BE(r.flags ?? 0, 4);
  b.writeUInt16BE(r.type, 6);
  b.writeUInt32BE((r.cookieHi ?? 0) >>> 0, 8);
  b.writeUInt32BE((r.cookieLo ?? 0) >>> 0, 12);
  putU64(b, r.offset, 16);
  b.writeUInt32BE(r.length >>> 0, 24);
  return b;
}

/** A decoded option reply header plus its data (`total` bytes consumed), or null if incomplete. */
export function decodeOptionReply(
  buf: Uint8Array,
): { option: number; type: number; data: Uint8Array; total: number } | null {
  if (buf.length < OPTION_REPLY_HEADER_SIZE) return null;
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (v.getBigUint64(0) !== NBD_OPT_REPLY_MAGIC) throw new NbdProtocolError('bad option reply magic');
  const len = v.getUint32(16);
  if (buf.length < OPTION_REPLY_HEADER_SIZE + len) return null;
  return {
    option: v.getUint32(8),
    type: v.getUint32(12),
    data: buf.subarray(OPTION_REPLY_HEADER_SIZE, OPTION_REPLY_HEADER_SIZE + len),
    total: OPTION_REPLY_HEADER_SIZE + len,
  };
}

/** Decodes an NBD_REP_INFO payload. */
export function decodeInfo(
  data: Uint8Array,
):
  | { info: typeof NBD_INFO_EXPORT; size: number; flags: number }
  | { info: typeof NBD_INFO_NAME | typeof NBD_INFO_DESCRIPTION; text: string }
  | { info: typeof NBD_INFO_BLOCK_SIZE; minimum: number; preferred: number; maximum: number }
  | { info: number } {
  if (data.length < 2) throw new NbdProtocolError('NBD_REP_INFO shorter than 2 bytes');
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const info = v.getUint16(0);
  switch (info) {
    case NBD_INFO_EXPORT:
      if (data.length !== 12) throw new NbdProtocolError('NBD_INFO_EXPORT must be 12 bytes');
      return { info, size: u64(data, 2), flags: v.getUint16(10) };
    case NBD_INFO_NAME:
    case NBD_INFO_DESCRIPTION:
      return { info, text: Buffer.from(data.subarray(2)).toString('utf8') };
    case NBD_INFO_BLOCK_SIZE:
      if (data.length !== 14) throw new NbdProtocolError('NBD_INFO_BLOCK_SIZE must be 14 bytes');
      return { info, minimum: v.getUint32(2), preferred: v.getUint32(6), maximum: v.getUint32(10) };
    default:
      return { info };
  }
}

/** A simple reply header, or null if fewer than 16 bytes. Throws on a magic that is not the simple reply's. */
export function decodeSimpleReply(buf: Uint8Array): { error: number; cookieHi: number; cookieLo: number } | null {
  if (buf.length < SIMPLE_REPLY_SIZE) return null;
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = v.getUint32(0);
  if (magic !== NBD_SIMPLE_REPLY_MAGIC) throw new NbdProtocolError(`bad simple reply magic 0x${magic.toString(16)}`);
  return { error: v.getUint32(4), cookieHi: v.getUint32(8), cookieLo: v.getUint32(12) };
}

/** A structured reply chunk (header and payload), or null if incomplete. */
export function decodeStructuredChunk(
  buf: Uint8Array,
): { flags: number; type: number; cookieHi: number; cookieLo: number; payload: Uint8Array; total: number } | null {
  if (buf.length < STRUCTURED_REPLY_HEADER_SIZE) return null;
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = v.getUint32(0);
  if (magic !== NBD_STRUCTURED_REPLY_MAGIC)
    throw new NbdProtocolError(`bad structured reply magic 0x${magic.toString(16)}`);
  const len = v.getUint32(16);
  if (buf.length < STRUCTURED_REPLY_HEADER_SIZE + len) return null;
  return {
    flags: v.getUint16(4),
    type: v.getUint16(6),
    cookieHi: v.getUint32(8),
    cookieLo: v.getUint32(12),
    payload: buf.subarray(STRUCTURED_REPLY_HEADER_SIZE, STRUCTURED_REPLY_HEADER_SIZE + len),
    total: STRUCTURED_REPLY_HEADER_SIZE + len,
  };
}

/** Reads the 64-bit big-endian value at `off` as a number (exact below 2^53). */
export function readU64(buf: Uint8Array, off: number): number {
  return u64(buf, off);
}
