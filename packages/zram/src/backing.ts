// The writeback backing device ("backing_dev" + its block bitmap): a plain
// file written and read in 4 KiB blocks with synchronous positional I/O.
// The file's path and the bitmap of used blocks live in shared memory, so
// every attached thread sees the same blocks; each thread opens its own file
// descriptor on first use (and again when the path changes). Block 0 is never
// handed out, as in the kernel, so a block index is never 0.

import fs from 'node:fs';
import { ZsError } from '@zsmalloc/core';
import { S } from './stats.js';

const PAGE = 4096;
export const MAX_PATH_BYTES = 4096;

export class BackingStore {
  private readonly bits: Int32Array; // length-tracking view over the growable bitmap
  private readonly pathBytes: Uint8Array;
  private fd = -1;
  private fdGen = -1;

  constructor(
    readonly bitmap: SharedArrayBuffer,
    readonly pathBuffer: SharedArrayBuffer,
    private readonly st: Int32Array,
  ) {
    this.bits = new Int32Array(bitmap);
    this.pathBytes = new Uint8Array(pathBuffer);
  }

  static allocateBitmap(maxBlocks: number): SharedArrayBuffer {
    return new SharedArrayBuffer(0, { maxByteLength: Math.ceil(maxBlocks / 32) * 4 });
  }

  configured(): boolean {
    return Atomics.load(this.st, S.BACKING_PATH_LEN) > 0;
  }

  path(): string {
    const n = Atomics.load(this.st, S.BACKING_PATH_LEN);
    if (n <= 0) return '';
    // TextDecoder refuses shared memory: copy out first.
    return Buffer.from(this.pathBytes.slice(0, n)).toString('utf8');
  }

  /**
   * Records `path` as the backing file (control plane). The file is created if
   * missing (so a bad path fails here); prepare() sizes it once disksize is known.
   */
  setPath(path: string): void {
    const enc = Buffer.from(path, 'utf8');
    if (enc.length === 0 || enc.length > MAX_PATH_BYTES)
      throw new ZsError('EINVAL', `backing file path must be 1..${MAX_PATH_BYTES} bytes`);
    fs.closeSync(fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600));
    this.pathBytes.set(enc);
    Atomics.store(this.st, S.BACKING_PATH_LEN, enc.length);
    Atomics.store(this.st, S.BACKING_BLOCKS, 0);
    Atomics.add(this.st, S.BACKING_GEN, 1);
  }

  /**
   * Makes the backing file usable for a device of `pages` pages (control plane):
   * at least (pages + 1) blocks long (sparse; block 0 unused) and an empty bitmap.
   */
  prepare(pages: number): void {
    const blocks = pages + 1;
    const fd = fs.openSync(this.path(), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    try {
      if (fs.fstatSync(fd).size < blocks * PAGE) fs.ftruncateSync(fd, blocks * PAGE);
    } finally {
      fs.closeSync(fd);
    }
    const needBytes = Math.ceil(blocks / 32) * 4;
    if (this.bitmap.byteLength < needBytes) this.bitmap.grow(needBytes);
    this.bits.fill(0);
    Atomics.store(this.st, S.BACKING_BLOCKS, blocks);
    Atomics.store(this.st, S.BACKING_HINT, 1);
    Atomics.add(this.st, S.BACKING_GEN, 1);
  }

  /** Forgets the backing file (control plane). */
  detach(): void {
    this.bits.fill(0);
    Atomics.store(this.st, S.BACKING_PATH_LEN, 0);
    Atomics.store(this.st, S.BACKING_BLOCKS, 0);
    Atomics.add(this.st, S.BACKING_GEN, 1);
    this.close();
  }

  /** Takes a free block (never 0); returns 0 when the backing file is full. */
  allocBlock(): number {
    const n = Atomics.load(this.st, S.BACKING_BLOCKS);
    const bits = this.bits;
    let start = Atomics.load(this.st, S.BACKING_HINT);
    if (start < 1 || start >= n) start = 1;
    for (let pass = 0; pass < 2; pass++) {
      const from = pass === 0 ? start : 1;
      const to = pass === 0 ? n : start;
      for (let b = from; b < to; b++) {
        const w = b >>> 5;
        const m = 1 << (b & 31);
        const old = Atomics.load(bits, w);
        if (old === -1) {
          b |= 31;
          continue;
        } // whole word taken
        if ((old & m) !== 0) continue;
        if ((Atomics.or(bits, w, m) & m) === 0) {
          Atomics.store(this.st, S.BACKING_HINT, b + 1);
          Atomics.add(this.st, S.BD_COUNT, 1);
          return b;
        }
      }
    }
    return 0;
  }

  freeBlock(block: number): void {
    const m = 1 << (block & 31);
    const old = Atomics.and(this.bits, block >>> 5, ~m);
    if ((old & m) === 0) throw new Error(`zram: backing block ${block} freed twice`);
    Atomics.sub(this.st, S.BD_COUNT, 1);
  }

  blockUsed(block: number): boolean {
    return (Atomics.load(this.bits, block >>> 5) & (1 << (block & 31))) !== 0;
  }

  writeBlock(block: number, page: Uint8Array): void {
    const fd = this.open();
    let done = 0;
    while (done < PAGE) done += fs.writeSync(fd, page, done, PAGE - done, block * PAGE + done);
  }

  readBlock(block: number, dst: Uint8Array): void {
    const fd = this.open();
    let done = 0;
    while (done < PAGE) {
      const n = fs.readSync(fd, dst, done, PAGE - done, block * PAGE + done);
      if (n === 0) throw new Error(`zram: short read of backing block ${block}`);
      done += n;
    }
  }

  /** This thread's descriptor on the current backing file. */
  private open(): number {
    const gen = Atomics.load(this.st, S.BACKING_GEN);
    if (this.fd >= 0 && gen === this.fdGen) return this.fd;
    this.close();
    if (!this.configured()) throw new Error('zram: no backing file');
    this.fd = fs.openSync(this.path(), fs.constants.O_RDWR);
    this.fdGen = gen;
    return this.fd;
  }

  close(): void {
    if (this.fd >= 0) {
      const fd = this.fd;
      this.fd = -1;
      fs.closeSync(fd);
    }
  }
}
