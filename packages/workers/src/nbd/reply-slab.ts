// Reply memory for the NBD server's fast path: reply headers (and a read
// reply's data right after its header) are written one after another into a
// reused slab, and every reply built since the last flush leaves in one
// socket write of that contiguous run (flushed()). Nothing is allocated per
// reply: the slab starts over once the socket has sent everything queued, and
// a slab that fills up while some of it is still queued is left to the socket
// and a fresh one is taken.

import * as nbd from './protocol.js';

const SLAB = 1 << 20;
const OFFSET_DATA_HEADER = nbd.STRUCTURED_REPLY_HEADER_SIZE + 8;

export class ReplySlab {
  private buf = Buffer.allocUnsafe(SLAB);
  /** Start of the replies not yet handed out by flushed(). */
  private start = 0;
  private at = 0;

  /** Replies built and not yet handed out. */
  replies = 0;

  /**
   * Makes room for a reply of n bytes. `idle` says the socket has nothing
   * queued (so, with nothing pending, the slab may start over). Returns false
   * when replies are pending and the slab is full: flush them first.
   */
  reserve(n: number, idle: boolean): boolean {
    if (this.at === this.start && idle) this.start = this.at = 0;
    if (this.at + n <= this.buf.length) return true;
    if (this.at !== this.start) return false;
    this.buf = Buffer.allocUnsafe(Math.max(SLAB, n));
    this.start = this.at = 0;
    return true;
  }

  /** The replies built since the last call, as one view (to write to the socket), or null when none. */
  flushed(): Buffer | null {
    if (this.at === this.start) return null;
    const b = this.buf.subarray(this.start, this.at);
    this.start = this.at;
    this.replies = 0;
    return b;
  }

  /** A simple reply with no data (16 bytes); reserve() first. */
  simple(error: number, cookieHi: number, cookieLo: number): void {
    const b = this.buf;
    const at = this.at;
    b.writeUInt32BE(nbd.NBD_SIMPLE_REPLY_MAGIC, at);
    b.writeUInt32BE(error >>> 0, at + 4);
    b.writeUInt32BE(cookieHi >>> 0, at + 8);
    b.writeUInt32BE(cookieLo >>> 0, at + 12);
    this.at = at + nbd.SIMPLE_REPLY_SIZE;
    this.replies++;
  }

  /** Bytes readData() needs for `length` bytes of data. */
  static readSize(structured: boolean, length: number): number {
    return (structured ? OFFSET_DATA_HEADER : nbd.SIMPLE_REPLY_SIZE) + length;
  }

  /**
   * A successful READ reply with its data copied in behind the header: a simple
   * reply, or one NBD_REPLY_TYPE_OFFSET_DATA chunk flagged DONE when
   * structured. reserve(readSize()) first.
   */
  readData(structured: boolean, cookieHi: number, cookieLo: number, offset: number, data: Uint8Array): void {
    const b = this.buf;
    const at = this.at;
    if (!structured) {
      b.writeUInt32BE(nbd.NBD_SIMPLE_REPLY_MAGIC, at);
      b.writeUInt32BE(0, at + 4);
      b.writeUInt32BE(cookieHi >>> 0, at + 8);
      b.writeUInt32BE(cookieLo >>> 0, at + 12);
      b.set(data, at + nbd.SIMPLE_REPLY_SIZE);
      this.at = at + nbd.SIMPLE_REPLY_SIZE + data.length;
      this.replies++;
      return;
    }
    b.writeUInt32BE(nbd.NBD_STRUCTURED_REPLY_MAGIC, at);
    b.writeUInt16BE(nbd.NBD_REPLY_FLAG_DONE, at + 4);
    b.writeUInt16BE(nbd.NBD_REPLY_TYPE_OFFSET_DATA, at + 6);
    b.writeUInt32BE(cookieHi >>> 0, at + 8);
    b.writeUInt32BE(cookieLo >>> 0, at + 12);
    b.writeUInt32BE(8 + data.length, at + 16);
    b.writeUInt32BE(Math.floor(offset / 2 ** 32), at + 20);
    b.writeUInt32BE(offset >>> 0, at + 24);
    b.set(data, at + OFFSET_DATA_HEADER);
    this.at = at + OFFSET_DATA_HEADER + data.length;
    this.replies++;
  }
}
