// The page arena: the shared memory page data lives in while an entry of the
// page rings is in flight. Each ring entry owns a fixed run of `batchPages`
// pages (entry e starts at arena page e * batchPages), so no allocator is
// needed and a thread never touches another entry's pages. Every thread builds
// its one view per page once, so the hot loops allocate nothing.

import { PAGE_SIZE } from '@zsmalloc/core';

export interface PageArenaShared {
  sab: SharedArrayBuffer;
  batchPages: number;
}

export class PageArena {
  readonly sab: SharedArrayBuffer;
  readonly bytes: Uint8Array;
  readonly batchPages: number;
  /** One 4 KiB view per arena page. */
  readonly pages: Uint8Array[];
  /** One view of each ring entry's whole run of pages. */
  private readonly entries: Uint8Array[];

  private constructor(shared: PageArenaShared) {
    this.sab = shared.sab;
    this.batchPages = shared.batchPages;
    this.bytes = new Uint8Array(shared.sab);
    this.pages = Array.from(
      { length: shared.sab.byteLength / PAGE_SIZE },
      (_, i) => new Uint8Array(shared.sab, i * PAGE_SIZE, PAGE_SIZE),
    );
    const run = this.batchPages * PAGE_SIZE;
    this.entries = Array.from(
      { length: shared.sab.byteLength / run },
      (_, e) => new Uint8Array(shared.sab, e * run, run),
    );
  }

  static create(entries: number, batchPages: number): PageArena {
    return new PageArena({ sab: new SharedArrayBuffer(entries * batchPages * PAGE_SIZE), batchPages });
  }

  static attach(shared: PageArenaShared): PageArena {
    return new PageArena(shared);
  }

  get shared(): PageArenaShared {
    return { sab: this.sab, batchPages: this.batchPages };
  }

  /** First arena page of ring entry `slot`. */
  pageOf(slot: number): number {
    return slot * this.batchPages;
  }

  /**
   * The same as view(), without allocating for one page or a whole entry (the
   * views are built once): what a callback read hands its caller.
   */
  entryView(slot: number, count: number): Uint8Array {
    if (count === 1) return this.pages[slot * this.batchPages]!;
    if (count === this.batchPages) return this.entries[slot]!;
    return this.view(slot, count);
  }

  /** Byte view of `count` pages of entry `slot` (for the submitter's copies in and out). */
  view(slot: number, count: number): Uint8Array {
    const at = slot * this.batchPages * PAGE_SIZE;
    return this.bytes.subarray(at, at + count * PAGE_SIZE);
  }
}
