// ServiceBackend: a BlockBackend over the threaded ZramService. Whole pages go
// through the service's page rings (a write payload is copied into the arena
// once, or not at all when it runs inline; a read lands in the reply buffer
// straight from the arena); the partial pages at either end of an unaligned request are
// done here on the device itself, whose byte-range write is a read-modify-write
// under the slot lock, so neighbouring sub-page writes never lose each other.

import { checkRange, newPageSpan, pageSpan, type PageSpan } from '@zsmalloc/zram';
import type { ZramService } from '../service.js';
import type { PageCallback, PageCallbackBackend } from './backend.js';

const PAGE = 4096;

export class ServiceBackend implements PageCallbackBackend {
  readonly service: ZramService;
  /** Reused by span(): each caller takes its fields before its first await. */
  private readonly spanOut = newPageSpan();

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

  plug(): void {
    this.service.plug();
  }

  unplug(): void {
    this.service.unplug();
  }

  onCompletionBatch(fn: (more: boolean) => void): () => void {
    return this.service.onCompletionBatch(fn);
  }

  /** The range checked against the device, cut into a partial head page, whole pages and a partial tail page. */
  private span(offset: number, length: number, op: string): PageSpan {
    checkRange(offset, length, this.size, op);
    return pageSpan(offset, length, this.spanOut);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const { head, first, pages, tail } = this.span(offset, length, 'read');
    const dev = this.service.device;
    const out = new Uint8Array(length);
    if (pages === 0) {
      dev.read(offset, out);
      return out;
    }
    if (head > 0) dev.read(offset, out.subarray(0, head));
    if (tail > 0) dev.read((first + pages) * PAGE, out.subarray(length - tail));
    await this.service.readPagesInto(first, out.subarray(head, head + pages * PAGE));
    return out;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    const length = data.length;
    const { head, first, pages, tail } = this.span(offset, length, 'write');
    const dev = this.service.device;
    if (pages === 0) {
      dev.write(offset, data);
      return;
    }
    if (head > 0) dev.write(offset, data.subarray(0, head));
    if (tail > 0) dev.write((first + pages) * PAGE, data.subarray(length - tail));
    await this.service.writePages(first, data.subarray(head, head + pages * PAGE));
  }

  async trim(offset: number, length: number): Promise<void> {
    checkRange(offset, length, this.size, 'trim');
    await this.service.discard(offset, length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    const { head, first, pages, tail } = this.span(offset, length, 'writeZeroes');
    const dev = this.service.device;
    if (pages === 0) {
      dev.write(offset, new Uint8Array(length));
      return;
    }
    if (head > 0) dev.write(offset, new Uint8Array(head));
    if (tail > 0) dev.write((first + pages) * PAGE, new Uint8Array(tail));
    // a discarded slot reads as zeroes, as zram handles REQ_OP_WRITE_ZEROES
    dev.discard(first * PAGE, pages * PAGE);
  }

  async flush(): Promise<void> {
    // Data is in shared memory once a write resolves; nothing is cached elsewhere.
  }
}
