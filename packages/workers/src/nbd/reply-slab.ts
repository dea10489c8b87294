// Reply memory for the NBD server's fast path: reply headers (and a read
// reply's data right after its header) are written into one reused slab
// instead of a new buffer per reply. The connection starts the slab over
// whenever its socket has sent everything queued, so in steady state no reply
// allocates; a slab that fills up while replies are still queued is left to
// the socket and a fresh one is taken.

import * as nbd from './protocol.js';

const SLAB = 1 << 20;

export class ReplySlab {
  private buf = Buffer.allocUnsafe(SLAB);
  private at = 0;

  /** Reuse the slab from the start: only when no region handed out is still queued in the socket. */
  reset(): void {
    this.at = 0;
  }

  private take(n: number): Buffer {
    if (this.at + n > this.buf.length) {
      this.buf = Buffer.allocUnsafe(Math.max(SLAB, n));
      this.at = 0;
    }
    const b = this.buf.subarray(this.at, this.at + n);
    this.at += (n + 7) & ~7;
    return b;
  }

  /** A simple reply with no data (16 bytes). */
  simple(error: number, cookieHi: number, cookieLo: number): Buffer {
    const b = this.take(nbd.SIMPLE_REPLY_SIZE);
    b.writeUInt32BE(nbd.NBD_SIMPLE_REPLY_MAGIC, 0);
    b.writeUInt32BE(error >>> 0, 4);
    b.writeUInt32BE(cookieHi >>> 0, 8);
    b.writeUInt32BE(cookieLo >>> 0, 12);
    return b;
  }

  /**
   * A successful READ reply with its data copied in behind the header: a simple
   * reply, or one NBD_REPLY_TYPE_OFFSET_DATA chunk flagged DONE when structured.
   */
  readData(structured: boolean, cookieHi: number, cookieLo: number, offset: number, data: Uint8Array): Buffer {
    if (!structured) {
      const b = this.take(nbd.SIMPLE_REPLY_SIZE + data.length);
      b.writeUInt32BE(nbd.NBD_SIMPLE_REPLY_MAGIC, 0);
      b.writeUInt32BE(0, 4);
      b.writeUInt32BE(cookieHi >>> 0, 8);
      b.writeUInt32BE(cookieLo >>> 0, 12);
      b.set(data, nbd.SIMPLE_REPLY_SIZE);
      return b;
    }
    const h = nbd.STRUCTURED_REPLY_HEADER_SIZE + 8;
    const b = this.take(h + data.length);
    b.writeUInt32BE(nbd.NBD_STRUCTURED_REPLY_MAGIC, 0);
    b.writeUInt16BE(nbd.NBD_REPLY_FLAG_DONE, 4);
    b.writeUInt16BE(nbd.NBD_REPLY_TYPE_OFFSET_DATA, 6);
    b.writeUInt32BE(cookieHi >>> 0, 8);
    b.writeUInt32BE(cookieLo >>> 0, 12);
    b.writeUInt32BE(8 + data.length, 16);
    b.writeUInt32BE(Math.floor(offset / 2 ** 32), 20);
    b.writeUInt32BE(offset >>> 0, 24);
    b.set(data, h);
    return b;
  }
}
