// Client side of the codec, for tests and tools: option and request
// encoders, and parsers for option replies, NBD_REP_INFO payloads, simple
// replies and structured reply chunks.

import {
  NBD_IHAVEOPT,
  NBD_INFO_BLOCK_SIZE,
  NBD_INFO_DESCRIPTION,
  NBD_INFO_EXPORT,
  NBD_INFO_NAME,
  NBD_OPT_REPLY_MAGIC,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
  OPTION_HEADER_SIZE,
  OPTION_REPLY_HEADER_SIZE,
  REQUEST_SIZE,
  SIMPLE_REPLY_SIZE,
  STRUCTURED_REPLY_HEADER_SIZE,
} from './constants.js';
import { NbdProtocolError, putU64, readU64 } from './wire.js';

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
      return { info, size: readU64(data, 2), flags: v.getUint16(10) };
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
