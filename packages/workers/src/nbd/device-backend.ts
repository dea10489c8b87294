// ZramDeviceBackend: a BlockBackend over a ZramDevice used in this thread.
// Every call does the device's synchronous I/O at once and returns a settled
// promise (errors become rejections), so the server treats it like any other
// async backend. TRIM is zram's discard (whole pages only, as the kernel);
// WRITE_ZEROES is handled as the kernel's zram handles REQ_OP_WRITE_ZEROES —
// whole pages are discarded (a free slot reads as zeroes) — plus explicit
// zero writes for the partial pages at either end. FLUSH has nothing to do:
// data lives in (shared) memory once a write returns.

import { checkRange, newPageSpan, pageSpan, type ZramDevice } from '@zsmalloc/zram';
import type { BlockBackend } from './backend.js';

const PAGE = 4096;
const ZERO_CHUNK = 1 << 20;

export class ZramDeviceBackend implements BlockBackend {
  readonly device: ZramDevice;
  private zeroes: Uint8Array | null = null;
  private readonly span = newPageSpan();

  constructor(device: ZramDevice) {
    this.device = device;
  }

  get size(): number {
    return this.device.disksize;
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    try {
      const buf = new Uint8Array(length);
      this.device.read(offset, buf);
      return Promise.resolve(buf);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    try {
      this.device.write(offset, data);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  trim(offset: number, length: number): Promise<void> {
    try {
      this.device.discard(offset, length);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  writeZeroes(offset: number, length: number): Promise<void> {
    try {
      this.zeroRange(offset, length);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  private zeroRange(offset: number, length: number): void {
    const dev = this.device;
    checkRange(offset, length, this.size, 'writeZeroes');
    const { head, first, pages, tail } = pageSpan(offset, length, this.span);
    if (pages === 0) {
      this.writeZeroBytes(offset, length); // inside one page, or two partial pages
      return;
    }
    if (head > 0) this.writeZeroBytes(offset, head);
    dev.discard(first * PAGE, pages * PAGE);
    if (tail > 0) this.writeZeroBytes((first + pages) * PAGE, tail);
  }

  private writeZeroBytes(offset: number, length: number): void {
    if (this.zeroes === null) this.zeroes = new Uint8Array(ZERO_CHUNK);
    let pos = 0;
    while (pos < length) {
      const n = Math.min(ZERO_CHUNK, length - pos);
      this.device.write(offset + pos, this.zeroes.subarray(0, n));
      pos += n;
    }
  }
}
