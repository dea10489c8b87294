// The zstd codec: levels and pre-trained dictionaries, and the loading and
// checking of dictionary files.
//
// Compression and decompression run on @toondepauw/node-zstd (a Node-API
// binding to libzstd whose linux-x64 binary ships inside its npm package).
// That binding aborts the whole process when libzstd refuses a dictionary,
// so a dictionary is first checked here with @bokuweb/zstd-wasm (libzstd
// built to WebAssembly, which reports the refusal as an error): a dictionary
// reaches the native binding only after the wasm build compressed and
// decompressed a probe page with it.
//
// The native binding does not tell libzstd the source size, so above level 9
// libzstd sizes its tables for an unknown (large) input and one 4 KiB page
// takes tens of milliseconds; the wasm build passes the size (as the kernel
// does with its per-page parameters). Levels above NATIVE_MAX_LEVEL
// therefore compress with the wasm build; decompression is always native.
// docs/zstd.md has the figures.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import zstdWasm from '@bokuweb/zstd-wasm';
import { ZsError } from '@zsmalloc/core';
import { ZramError } from '../errors.js';
import type { Codec } from './zcomp.js';

interface NativeEncoder {
  encodeSync(data: Buffer): Buffer;
}
interface NativeDecoder {
  decodeSync(data: Buffer): Buffer;
}
interface NativeZstd {
  Encoder: new (level: number, dictionary?: Buffer | null) => NativeEncoder;
  Decoder: new (dictionary?: Buffer | null) => NativeDecoder;
}
const native = createRequire(import.meta.url)('@toondepauw/node-zstd') as NativeZstd;

await zstdWasm.init();

const PAGE = 4096;
/** libzstd's ZSTD_minCLevel() and ZSTD_maxCLevel(). */
export const ZSTD_MIN_LEVEL = -131072;
export const ZSTD_MAX_LEVEL = 22;
/** ZSTD_CLEVEL_DEFAULT: the level used when none is set (the kernel's default too). */
export const ZSTD_DEFAULT_LEVEL = 3;
/** Largest dictionary file accepted (the device keeps every dictionary in shared memory). */
export const ZSTD_MAX_DICT_BYTES = 1 << 20;
/** Magic number of a zstd-format dictionary (little-endian 0xEC30A437); anything else is raw content. */
export const ZSTD_DICT_MAGIC = 0xec30a437;

/** Highest level compressed by the native binding; higher ones use the wasm build. */
export const NATIVE_MAX_LEVEL = 9;

export interface ZstdParams {
  level?: number;
  dict?: Uint8Array;
}

/** EINVAL unless level is an integer libzstd accepts. */
export function checkZstdLevel(level: number): void {
  if (!Number.isInteger(level) || level < ZSTD_MIN_LEVEL || level > ZSTD_MAX_LEVEL) {
    throw new ZsError('EINVAL', `zstd level must be an integer in ${ZSTD_MIN_LEVEL}..${ZSTD_MAX_LEVEL}, got ${level}`);
  }
}

/**
 * Checks dictionary bytes: non-empty, at most ZSTD_MAX_DICT_BYTES, and (for a
 * zstd-format dictionary) tables libzstd accepts, proven by a probe round trip.
 * A raw-content dictionary is any bytes; truncation inside the content part of
 * either kind cannot be told from a shorter dictionary (libzstd cannot either).
 */
export function checkZstdDictionary(dict: Uint8Array, what = 'zstd dictionary'): void {
  if (dict.length === 0) throw new ZramError('EINVAL', `${what} is empty`);
  if (dict.length > ZSTD_MAX_DICT_BYTES)
    throw new ZramError('EINVAL', `${what} is ${dict.length} bytes; at most ${ZSTD_MAX_DICT_BYTES} are accepted`);
  const formatted =
    dict.length >= 4 && new DataView(dict.buffer, dict.byteOffset, 4).getUint32(0, true) === ZSTD_DICT_MAGIC;
  if (formatted && dict.length < 8 + 12) throw new ZramError('EINVAL', `${what} is truncated (${dict.length} bytes)`);
  const probe = new Uint8Array(PAGE);
  for (let i = 0; i < PAGE; i++) probe[i] = (i * 31) & 0x3f;
  const copy = Uint8Array.from(dict);
  let ok = false;
  let reason = '';
  const cctx = zstdWasm.createCCtx();
  const dctx = zstdWasm.createDCtx();
  try {
    const c = zstdWasm.compressUsingDict(cctx, probe, copy, ZSTD_DEFAULT_LEVEL);
    const d = zstdWasm.decompressUsingDict(dctx, c, copy);
    ok = d.length === PAGE && Buffer.compare(Buffer.from(d), Buffer.from(probe)) === 0;
    if (!ok) reason = 'probe page did not round-trip';
  } catch (e) {
    reason = (e as Error).message;
  } finally {
    zstdWasm.freeCCtx(cctx);
    zstdWasm.freeDCtx(dctx);
  }
  if (!ok) {
    throw new ZramError(
      'EINVAL',
      `${what} is corrupt or truncated: libzstd refuses its ${formatted ? 'entropy tables' : 'content'} (${reason})`,
    );
  }
}

/** Reads and checks a dictionary file. ENOENT if missing; EINVAL if empty, too large, not a file, or refused. */
export function loadZstdDictionary(path: string): Uint8Array {
  if (typeof path !== 'string' || path.length === 0)
    throw new ZsError('EINVAL', 'dictionary path must be a non-empty string');
  let bytes: Uint8Array;
  try {
    const st = fs.statSync(path);
    if (!st.isFile()) throw new ZramError('EINVAL', `zstd dictionary ${path} is not a regular file`);
    if (st.size > ZSTD_MAX_DICT_BYTES)
      throw new ZramError(
        'EINVAL',
        `zstd dictionary ${path} is ${st.size} bytes; at most ${ZSTD_MAX_DICT_BYTES} are accepted`,
      );
    bytes = fs.readFileSync(path);
  } catch (e) {
    if (e instanceof ZramError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ZramError('ENOENT', `zstd dictionary ${path} does not exist`);
    throw new ZramError('EINVAL', `zstd dictionary ${path} cannot be read: ${(e as Error).message}`);
  }
  checkZstdDictionary(bytes, `zstd dictionary ${path}`);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** A thread-local zstd compressor/decompressor pair at one level, with an optional dictionary. */
export class ZstdCodec implements Codec {
  readonly name = 'zstd';
  readonly level: number;
  private readonly enc: NativeEncoder | undefined;
  private readonly dec: NativeDecoder;
  private readonly wasmDict: Uint8Array | undefined;
  private readonly cctx: number;

  /** `dict` must have passed checkZstdDictionary (loadZstdDictionary does that). */
  constructor(params: ZstdParams = {}) {
    const level = params.level ?? ZSTD_DEFAULT_LEVEL;
    checkZstdLevel(level);
    this.level = level;
    const dict = params.dict && params.dict.length > 0 ? Buffer.from(params.dict) : null;
    this.dec = new native.Decoder(dict);
    if (level <= NATIVE_MAX_LEVEL) {
      this.enc = new native.Encoder(level, dict);
      this.cctx = 0;
    } else {
      this.wasmDict = dict ?? undefined;
      this.cctx = this.wasmDict ? zstdWasm.createCCtx() : 0;
    }
  }

  compress(src: Uint8Array): Uint8Array {
    if (this.enc) return this.enc.encodeSync(Buffer.from(src.buffer, src.byteOffset, src.length));
    const view = src.buffer instanceof ArrayBuffer ? src : Uint8Array.from(src);
    return this.wasmDict
      ? zstdWasm.compressUsingDict(this.cctx, view, this.wasmDict, this.level)
      : zstdWasm.compress(view, this.level);
  }

  decompress(src: Uint8Array, srcLen: number, dst: Uint8Array): number {
    const out = this.dec.decodeSync(Buffer.from(src.buffer, src.byteOffset, srcLen));
    if (out.length !== dst.length) throw new Error(`zstd: decompressed ${out.length} bytes, expected ${dst.length}`);
    dst.set(out);
    return out.length;
  }
}
