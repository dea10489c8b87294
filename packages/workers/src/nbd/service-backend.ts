// ServiceBackend: a BlockBackend over the threaded ZramService. Whole pages go
// through the service's page rings (a write payload is copied into the arena
// once, or not at all when it runs inline; a read lands in the reply buffer
// straight from the arena); the partial pages at either end of an unaligned request are
// done here on the device itself, whose byte-range write is a read-modify-write
// under the slot lock, so neighbouring sub-page writes never lose each other.

import type { ZramService } from '../service.js';
import type { PageCallback, PageCallbackBackend } from './backend.js';

const PAGE = 4096;

export class ServiceBackend implements PageCallbackBackend {
  readonly service: ZramService;

  constructor(service: ZramService) {
    this.service = service;
  }

  get size(): number {
    return this.service.disksize;
  }

  get callbackReadMax(): number {
    return this.service.batchPages * PAGE;
  }

  /** Page-aligned whole pages only (the server checks); through the rings without a promise. */
  writePagesCb(offset: number, data: Uint8Array, done: PageCallback, ctx: unknown): void {
    this.service.writePagesCb(offset / PAGE, data, done, ctx);
  }

  readPagesCb(offset: number, length: number, done: PageCallback, ctx: unknown): void {
    this.service.readPagesCb(offset / PAGE, length / PAGE, done, ctx);
  }

  private check(offset: number, length: number): void {
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(length) ||
      offset < 0 ||
      length < 0 ||
      offset + length > this.size
    ) {
      throw new RangeError(`range [${offset}, +${length}) outside the device (${this.size} bytes)`);
    }
  }

  /**
   * Splits [offset, offset+length) into whole pages [first, end) and the partial
   * pages around them: `head` bytes before `first`, a tail from `end` on. With no
   * whole page inside, end <= first and the caller treats the range as one piece.
   */
  private span(offset: number, length: number): { first: number; end: number; head: number; tail: number } {
    this.check(offset, length);
    const first = Math.ceil(offset / PAGE);
    const end = Math.floor((offset + length) / PAGE);
    return { first, end, head: first * PAGE - offset, tail: end * PAGE };
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const { first, end, head, tail } = this.span(offset, length);
    const dev = this.service.device;
    const out = new Uint8Array(length);
    if (end <= first) {
      dev.read(offset, out);
      return out;
    }
    if (head > 0) dev.read(offset, out.subarray(0, head));
    if (tail < offset + length) dev.read(tail, out.subarray(tail - offset));
    await this.service.readPagesInto(first, out.subarray(head, head + (end - first) * PAGE));
    return out;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    const { first, end, head, tail } = this.span(offset, data.length);
    const dev = this.service.device;
    if (end <= first) {
      dev.write(offset, data);
      return;
    }
    if (head > 0) dev.write(offset, data.subarray(0, head));
    if (tail < offset + data.length) dev.write(tail, data.subarray(tail - offset));
    await this.service.writePages(first, data.subarray(head, head + (end - first) * PAGE));
  }

  async trim(offset: number, length: number): Promise<void> {
    this.check(offset, length);
    await this.service.discard(offset, length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    const { first, end, head, tail } = this.span(offset, length);
    const dev = this.service.device;
    if (end <= first) {
      dev.write(offset, new Uint8Array(length));
      return;
    }
    if (head > 0) dev.write(offset, new Uint8Array(head));
    if (tail < offset + length) dev.write(tail, new Uint8Array(offset + length - tail));
    // a discarded slot reads as zeroes, as zram handles REQ_OP_WRITE_ZEROES
    dev.discard(first * PAGE, (end - first) * PAGE);
  }

  async flush(): Promise<void> {
    // Data is in shared memory once a write resolves; nothing is cached elsewhere.
  }
}
