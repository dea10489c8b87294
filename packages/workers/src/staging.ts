// Staging buffers: the data plane between the service and its compression
// workers. One SharedArrayBuffer holds `slots` batches of `batchPages` pages, and
// a second one the device page index of each staged page (a batch may gather
// pages of several requests); a task names a slot and a count, never carries page
// bytes. Slots are handed out by the service thread only (a free stack), so no locks
// are needed; the number of slots bounds the tasks in flight.

import { PAGE_SIZE } from '@zsmalloc/core';

export class StagingArea {
  readonly sab: SharedArrayBuffer;
  readonly bytes: Uint8Array;
  /** Page index of each staged page: [slot * batchPages + k]. */
  readonly indexSab: SharedArrayBuffer;
  readonly indices: Int32Array;
  readonly slots: number;
  readonly batchPages: number;
  private readonly free: number[] = [];

  constructor(slots: number, batchPages: number) {
    this.slots = slots;
    this.batchPages = batchPages;
    this.sab = new SharedArrayBuffer(slots * batchPages * PAGE_SIZE);
    this.bytes = new Uint8Array(this.sab);
    this.indexSab = new SharedArrayBuffer(slots * batchPages * 4);
    this.indices = new Int32Array(this.indexSab);
    for (let s = slots - 1; s >= 0; s--) this.free.push(s);
  }

  /** Byte offset of a slot. */
  offset(slot: number): number {
    return slot * this.batchPages * PAGE_SIZE;
  }

  /** A free slot now, or -1. */
  tryAcquire(): number {
    return this.free.pop() ?? -1;
  }

  release(slot: number): void {
    this.free.push(slot);
  }
}
