// Transmission phase on the server side: the request header decoder and the
// reply encoders (simple replies, and structured reply chunks OFFSET_DATA,
// NONE and ERROR). Cookies (formerly "handles") are opaque 64-bit values kept
// as two 32-bit halves and echoed verbatim.

import {
  MAX_STRING,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_ERROR,
  NBD_REPLY_TYPE_NONE,
  NBD_REPLY_TYPE_OFFSET_DATA,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
  REQUEST_SIZE,
  SIMPLE_REPLY_SIZE,
  STRUCTURED_REPLY_HEADER_SIZE,
} from './constants.js';
import { NbdProtocolError, putU64, TWO32 } from './wire.js';

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
