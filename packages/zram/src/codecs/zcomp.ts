// What every compression backend implements (the kernel's zcomp interface) and
// the per-algorithm parameters a backend is built with. Its own module so the
// registry (codec.ts) and the backends under codecs/ both depend on it and not
// on each other.

export interface Codec {
  readonly name: string;
  /** Compresses src; the returned bytes are valid until the next call on this instance. */
  compress(src: Uint8Array): Uint8Array;
  /** Decompresses src[0, srcLen) into dst; returns the number of bytes produced (throws on corrupt input). */
  decompress(src: Uint8Array, srcLen: number, dst: Uint8Array): number;
}

/** algorithm_params of one algorithm: a compression level and a dictionary (zstd only here). */
export interface CodecParams {
  level?: number;
  dict?: Uint8Array;
}
