// Same-filled pages (the kernel's page_same_filled and zram_fill_page): a page
// whose every 8-byte word is equal is stored as that word in the slot, with no
// object in the pool. The test reads the caller's page in place, as 32-bit
// words when it is aligned, through a view made once per buffer (SameScan).

const PAGE = 4096;

/** A thread's reusable 32-bit view of the last buffer it scanned. */
export interface SameScan {
  buf: ArrayBufferLike | null;
  view: Int32Array<ArrayBufferLike>;
}

export function newSameScan(): SameScan {
  return { buf: null, view: new Int32Array(0) };
}

/** The fill word of a same-filled page, as two 32-bit halves. */
export interface FillWord {
  lo: number;
  hi: number;
}

/** Every 8-byte word of the page equal? If so, leaves the word in `word`. Reads the page in place. */
export function sameFilled(scan: SameScan, page: Uint8Array, word: FillWord): boolean {
  for (let k = 0; k < 8; k++) if (page[PAGE - 8 + k] !== page[k]) return false;
  if ((page.byteOffset & 3) === 0) {
    // 32-bit words of the page's own buffer (a view made once per buffer, not per page)
    if (page.buffer !== scan.buf || (page.byteOffset + PAGE) >>> 2 > scan.view.length) {
      scan.buf = page.buffer;
      scan.view = new Int32Array(page.buffer, 0, page.buffer.byteLength >>> 2);
    }
    const w = scan.view;
    const base = page.byteOffset >>> 2;
    const a = w[base]!;
    const b = w[base + 1]!;
    for (let i = base + 2; i < base + PAGE / 4; i += 2) if (w[i] !== a || w[i + 1] !== b) return false;
  } else {
    for (let i = 8; i < PAGE; i++) if (page[i] !== page[i & 7]) return false;
  }
  word.lo = page[0]! | (page[1]! << 8) | (page[2]! << 16) | (page[3]! << 24);
  word.hi = page[4]! | (page[5]! << 8) | (page[6]! << 16) | (page[7]! << 24);
  return true;
}

/** Fills a whole page with the 8-byte word (lo, hi). */
export function fillWord(dst: Uint8Array, lo: number, hi: number): void {
  const b0 = lo & 0xff;
  if (lo === hi && lo === ((b0 * 0x01010101) | 0)) {
    dst.fill(b0);
    return;
  }
  dst[0] = b0;
  dst[1] = (lo >>> 8) & 0xff;
  dst[2] = (lo >>> 16) & 0xff;
  dst[3] = (lo >>> 24) & 0xff;
  dst[4] = hi & 0xff;
  dst[5] = (hi >>> 8) & 0xff;
  dst[6] = (hi >>> 16) & 0xff;
  dst[7] = (hi >>> 24) & 0xff;
  for (let len = 8; len < PAGE; len <<= 1) dst.copyWithin(len, 0, len);
}
