// ServiceBackend: a BlockBackend over the threaded ZramService. Whole pages go to
// the compression workers in batches (writePages / readPages through shared
// staging slots); the partial pages at either end of an unaligned request are
// done here on the device itself, whose byte-range write is a read-modify-write
// under the slot lock, so neighbouring sub-page writes never lose each other.

import type { ZramService } from '../service.js';
import type { BlockBackend } from './backend.js';

const PAGE = 4096;

export class ServiceBackend implements BlockBackend {
  readonly service: ZramService;

  constructor(service: ZramService) {
    this.service = service;
  }

  get size(): number {
    return this.service.disksize;
  }

  private check(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`range [${offset}, +${length}) outside the device (${this.size} bytes)`);
    }
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    this.check(offset, length);
    const dev = this.service.device;
    const out = new Uint8Array(length);
    const firstFull = Math.ceil(offset / PAGE);
    const endFull = Math.floor((offset + length) / PAGE);
    if (endFull <= firstFull) {
      dev.read(offset, out);
      return out;
    }
    const head = firstFull * PAGE - offset;
    if (head > 0) dev.read(offset, out.subarray(0, head));
    const tailStart = endFull * PAGE;
    if (tailStart < offset + length) dev.read(tailStart, out.subarray(tailStart - offset));
    const mid = await this.service.readPages(firstFull, endFull - firstFull);
    out.set(mid, head);
    return out;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.check(offset, data.length);
    const dev = this.service.device;
    const length = data.length;
    const firstFull = Math.ceil(offset / PAGE);
    const endFull = Math.floor((offset + length) / PAGE);
    if (endFull <= firstFull) {
      dev.write(offset, data);
      return;
    }
    const head = firstFull * PAGE - offset;
    if (head > 0) dev.write(offset, data.subarray(0, head));
    const tailStart = endFull * PAGE;
    if (tailStart < offset + length) dev.write(tailStart, data.subarray(tailStart - offset));
    await this.service.writePages(firstFull, data.subarray(head, head + (endFull - firstFull) * PAGE));
  }

  async trim(offset: number, length: number): Promise<void> {
    this.check(offset, length);
    await this.service.discard(offset, length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.check(offset, length);
    const dev = this.service.device;
    const firstFull = Math.ceil(offset / PAGE);
    const endFull = Math.floor((offset + length) / PAGE);
    if (endFull <= firstFull) {
      dev.write(offset, new Uint8Array(length));
      return;
    }
    const head = firstFull * PAGE - offset;
    if (head > 0) dev.write(offset, new Uint8Array(head));
    const tailStart = endFull * PAGE;
    if (tailStart < offset + length) dev.write(tailStart, new Uint8Array(offset + length - tailStart));
    // a discarded slot reads as zeroes, as zram handles REQ_OP_WRITE_ZEROES
    dev.discard(firstFull * PAGE, (endFull - firstFull) * PAGE);
  }

  async flush(): Promise<void> {
    // Data is in shared memory once a write resolves; nothing is cached elsewhere.
  }
}
