// Wire primitives shared by the codec's encoders and decoders: 64-bit
// big-endian integers carried as JavaScript numbers, and the error a decoder
// throws on a protocol violation.
//
// All integers are big-endian ("network byte order"). 64-bit offsets and
// sizes are JavaScript numbers: values above 2^53 lose precision but stay
// above any device size, so range checks still reject them.

/** 2^32, to split and join 64-bit values as two 32-bit halves. */
export const TWO32 = 4294967296;

/** Reads the 64-bit big-endian value at `off` as a number (exact below 2^53). */
export function readU64(buf: Uint8Array, off: number): number {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return v.getUint32(off) * TWO32 + v.getUint32(off + 4);
}

/** Writes `value` as a 64-bit big-endian integer at `off`. */
export function putU64(buf: Buffer, value: number, off: number): void {
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
