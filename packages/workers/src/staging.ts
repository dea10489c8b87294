// Staging buffers: the data plane between the service and its compression
// workers. One SharedArrayBuffer holds `slots` batches of `batchPages` pages; a
// task names a slot, never carries page bytes. Slots are handed out by the
// service thread only (a free stack and a FIFO of waiters), so no locks are needed.

import { PAGE_SIZE } from '@zsmalloc/core';

export class StagingArea {
  readonly sab: SharedArrayBuffer;
  readonly bytes: Uint8Array;
  readonly slots: number;
  readonly batchPages: number;
  private readonly free: number[] = [];
  private readonly waiters: ((slot: number) => void)[] = [];

  constructor(slots: number, batchPages: number) {
    this.slots = slots;
    this.batchPages = batchPages;
    this.sab = new SharedArrayBuffer(slots * batchPages * PAGE_SIZE);
    this.bytes = new Uint8Array(this.sab);
    for (let s = slots - 1; s >= 0; s--) this.free.push(s);
  }

  /** Byte offset of a slot. */
  offset(slot: number): number {
    return slot * this.batchPages * PAGE_SIZE;
  }

  acquire(): Promise<number> {
    const s = this.free.pop();
    if (s !== undefined) return Promise.resolve(s);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release(slot: number): void {
    const w = this.waiters.shift();
    if (w) w(slot);
    else this.free.push(slot);
  }

  get inUse(): number {
    return this.slots - this.free.length;
  }
}
