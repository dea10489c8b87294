// Server side of the fixed newstyle handshake: the greeting, the client
// flags check, option parsing (NBD_OPT_EXPORT_NAME / ABORT / LIST / INFO / GO
// / STRUCTURED_REPLY / STARTTLS) and the option replies (ACK, SERVER, INFO
// with NBD_INFO_EXPORT / NAME / DESCRIPTION / BLOCK_SIZE, errors), plus the
// old-style reply to NBD_OPT_EXPORT_NAME.

import {
  GREETING_SIZE,
  MAX_STRING,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_NO_ZEROES,
  NBD_IHAVEOPT,
  NBD_INFO_BLOCK_SIZE,
  type NBD_INFO_DESCRIPTION,
  NBD_INFO_EXPORT,
  type NBD_INFO_NAME,
  NBD_MAGIC,
  NBD_OPT_ABORT,
  NBD_OPT_EXPORT_NAME,
  NBD_OPT_GO,
  NBD_OPT_INFO,
  NBD_OPT_LIST,
  NBD_OPT_REPLY_MAGIC,
  NBD_OPT_STARTTLS,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_REP_INFO,
  NBD_REP_SERVER,
  OPTION_REPLY_HEADER_SIZE,
} from './constants.js';
import { NbdProtocolError, putU64 } from './wire.js';

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
