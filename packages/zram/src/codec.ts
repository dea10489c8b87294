// Compression codecs for zram ("zcomp" in the kernel): the backends (lz4 from
// lz4-wasm-nodejs, deflate and brotli from node:zlib, zstd in codecs/zstd.ts;
// the interface they implement is codecs/zcomp.ts), the registry of known
// algorithm names, and the kernel-style listing text ("[lz4] deflate brotli zstd \n").
//
// A codec instance is thread-local (like a per-CPU zcomp stream): it may keep
// scratch state between calls. Devices keep the algorithm *id* (its index in
// ALGORITHMS) in shared memory, so every thread builds the same codec.

import lz4 from 'lz4-wasm-nodejs';
import zlib from 'node:zlib';
import { ZsError } from '@zsmalloc/core';
import { ZstdCodec } from './codecs/zstd.js';
import type { Codec, CodecParams } from './codecs/zcomp.js';

export type { Codec, CodecParams } from './codecs/zcomp.js';

/** The wasm exports of lz4-wasm-nodejs (its bindings expose them as `__wasm`). */
interface Lz4Wasm {
  memory: { buffer: ArrayBuffer };
  compress(retptr: number, ptr: number, len: number): void;
  decompress(retptr: number, ptr: number, len: number): void;
  __wbindgen_add_to_stack_pointer(delta: number): number;
  __wbindgen_malloc(size: number): number;
  __wbindgen_free(ptr: number, size: number): void;
}
const LZ4_WASM = (lz4 as unknown as { __wasm?: Lz4Wasm }).__wasm;

/**
 * lz4 through lz4-wasm-nodejs's wasm module, calling its exports directly: the
 * input is copied into wasm memory once and the output out of it once, into this
 * instance's buffer (compress) or straight into the caller's page (decompress).
 * The bindings' own wrappers copy the output a second time into a new array per
 * call. The module frames a plain LZ4 block with a 4-byte little-endian
 * uncompressed length; we store the bare block (as the kernel's lz4 backend does)
 * and write the prefix back into wasm memory to decompress.
 */
class Lz4Codec implements Codec {
  readonly name = 'lz4';
  private out = new Uint8Array(4 + 2 * 4096);
  // views over wasm memory, made again only when it grows
  private memBuf: ArrayBuffer | null = null;
  private u8 = new Uint8Array(0);
  private i32 = new Int32Array(0);

  private mem(w: Lz4Wasm): Uint8Array {
    if (w.memory.buffer !== this.memBuf) {
      this.memBuf = w.memory.buffer;
      this.u8 = new Uint8Array(this.memBuf);
      this.i32 = new Int32Array(this.memBuf);
    }
    return this.u8;
  }

  compress(src: Uint8Array): Uint8Array {
    const w = LZ4_WASM;
    if (w === undefined) return lz4.compress(src).subarray(4);
    const ret = w.__wbindgen_add_to_stack_pointer(-16);
    try {
      const ptr = w.__wbindgen_malloc(src.length);
      this.mem(w).set(src, ptr);
      w.compress(ret, ptr, src.length); // frees the input
      const mem = this.mem(w);
      const optr = this.i32[ret >>> 2]!;
      const olen = this.i32[(ret >>> 2) + 1]!;
      if (this.out.length < olen) this.out = new Uint8Array(olen);
      this.out.set(mem.subarray(optr + 4, optr + olen));
      w.__wbindgen_free(optr, olen);
      return this.out.subarray(0, olen - 4);
    } finally {
      w.__wbindgen_add_to_stack_pointer(16);
    }
  }

  decompress(src: Uint8Array, srcLen: number, dst: Uint8Array): number {
    const w = LZ4_WASM;
    const n = dst.length;
    if (w === undefined) return this.decompressBound(src, srcLen, dst);
    const ret = w.__wbindgen_add_to_stack_pointer(-16);
    try {
      const ptr = w.__wbindgen_malloc(srcLen + 4);
      let mem = this.mem(w);
      mem[ptr] = n & 0xff;
      mem[ptr + 1] = (n >>> 8) & 0xff;
      mem[ptr + 2] = (n >>> 16) & 0xff;
      mem[ptr + 3] = (n >>> 24) & 0xff;
      mem.set(src.length === srcLen ? src : src.subarray(0, srcLen), ptr + 4);
      w.decompress(ret, ptr, srcLen + 4); // frees the input
      mem = this.mem(w);
      const r = ret >>> 2;
      if (this.i32[r + 3] !== 0) throw new Error('lz4: corrupt compressed data');
      const optr = this.i32[r]!;
      const olen = this.i32[r + 1]!;
      if (olen === n) dst.set(mem.subarray(optr, optr + olen));
      w.__wbindgen_free(optr, olen);
      if (olen !== n) throw new Error(`lz4: decompressed ${olen} bytes, expected ${n}`);
      return olen;
    } finally {
      w.__wbindgen_add_to_stack_pointer(16);
    }
  }

  /** Through the bindings' wrapper (when the wasm exports are not reachable). */
  private decompressBound(src: Uint8Array, srcLen: number, dst: Uint8Array): number {
    const n = dst.length;
    const f = new Uint8Array(srcLen + 4);
    f[0] = n & 0xff;
    f[1] = (n >>> 8) & 0xff;
    f[2] = (n >>> 16) & 0xff;
    f[3] = (n >>> 24) & 0xff;
    f.set(src.subarray(0, srcLen), 4);
    const out = lz4.decompress(f);
    if (out.length !== n) throw new Error(`lz4: decompressed ${out.length} bytes, expected ${n}`);
    dst.set(out);
    return n;
  }
}

/** A codec over a pair of node:zlib sync functions; the output is checked to be one page. */
class ZlibCodec implements Codec {
  constructor(
    readonly name: string,
    private readonly compressFn: (src: Uint8Array) => Uint8Array,
    private readonly decompressFn: (src: Uint8Array) => Uint8Array,
  ) {}

  compress(src: Uint8Array): Uint8Array {
    return this.compressFn(src);
  }

  decompress(src: Uint8Array, srcLen: number, dst: Uint8Array): number {
    const out = this.decompressFn(src.length === srcLen ? src : src.subarray(0, srcLen));
    if (out.length !== dst.length)
      throw new Error(`${this.name}: decompressed ${out.length} bytes, expected ${dst.length}`);
    dst.set(out);
    return out.length;
  }
}

/** Raw deflate, level 6 (zlib's default, as the kernel's deflate backend), 4 KiB window. */
const DEFLATE_COMPRESS: zlib.ZlibOptions = { level: 6, windowBits: 12, memLevel: 8 };
const DEFLATE_DECOMPRESS: zlib.ZlibOptions = { windowBits: 15, maxOutputLength: 64 * 1024 };

/** Brotli, quality 6, a 4 KiB window and a page-size hint: the strong (and slow) secondary. */
const BROTLI_COMPRESS: zlib.BrotliOptions = {
  params: {
    [zlib.constants.BROTLI_PARAM_QUALITY]: 6,
    [zlib.constants.BROTLI_PARAM_LGWIN]: 12,
    [zlib.constants.BROTLI_PARAM_SIZE_HINT]: 4096,
  },
};
const BROTLI_DECOMPRESS: zlib.BrotliOptions = { maxOutputLength: 64 * 1024 };

function deflateCodec(): Codec {
  return new ZlibCodec(
    'deflate',
    (s) => zlib.deflateRawSync(s, DEFLATE_COMPRESS),
    (s) => zlib.inflateRawSync(s, DEFLATE_DECOMPRESS),
  );
}

function brotliCodec(): Codec {
  return new ZlibCodec(
    'brotli',
    (s) => zlib.brotliCompressSync(s, BROTLI_COMPRESS),
    (s) => zlib.brotliDecompressSync(s, BROTLI_DECOMPRESS),
  );
}

/** Known algorithms, in listing order. The index is the id kept in shared memory. */
export const ALGORITHMS: readonly string[] = Object.freeze(['lz4', 'deflate', 'brotli', 'zstd']);
export const DEFAULT_ALGORITHM = 'lz4';

const FACTORIES: ReadonlyArray<(p: CodecParams) => Codec> = [
  () => new Lz4Codec(),
  deflateCodec,
  brotliCodec,
  (p) => new ZstdCodec(p),
];

/** Algorithms that take a level and a dictionary; the others take neither (EINVAL). */
export function algorithmTakesParams(name: string): boolean {
  return name === 'zstd';
}

/** The id of a known algorithm; an unknown name throws ZsError('EINVAL') naming the known ones. */
export function algorithmId(name: string): number {
  const id = typeof name === 'string' ? ALGORITHMS.indexOf(name) : -1;
  if (id < 0) {
    throw new ZsError(
      'EINVAL',
      `unknown compression algorithm ${JSON.stringify(name)}; known algorithms: ${ALGORITHMS.join(', ')}`,
    );
  }
  return id;
}

export function algorithmName(id: number): string {
  const name = ALGORITHMS[id];
  if (name === undefined) throw new RangeError(`no compression algorithm with id ${id}`);
  return name;
}

/** A new thread-local codec instance for a known algorithm (by name or id), with its parameters. */
export function createCodec(nameOrId: string | number, params: CodecParams = {}): Codec {
  const id = typeof nameOrId === 'number' ? nameOrId : algorithmId(nameOrId);
  const make = FACTORIES[id];
  if (make === undefined) throw new RangeError(`no compression algorithm with id ${id}`);
  return make(params);
}

/** The kernel's comp_algorithm layout: every known name followed by a space, the current one in brackets, then "\n". */
export function algorithmListing(current: string): string {
  let s = '';
  for (const name of ALGORITHMS) s += name === current ? `[${name}] ` : `${name} `;
  return `${s}\n`;
}
