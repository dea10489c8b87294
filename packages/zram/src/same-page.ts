// Same-filled pages (the kernel's page_same_filled and zram_fill_page): a page
// whose every 8-byte word is equal is stored as that word in the slot, with no
// object in the pool. The test reads the caller's page in place: every word
// equals the one before it exactly when the page equals itself shifted by one
// word, which one native memcmp answers (a JavaScript loop over the words costs
// several times more, and a quarter of a swap stream is zero or same-filled).

import { Buffer } from 'node:buffer';

const PAGE = 4096;
/** Buffer's compare works on any Uint8Array and takes offsets: no view is made per page. */
const compareBytes = Buffer.prototype.compare;

/** The fill word of a same-filled page, as two 32-bit halves. */
export interface FillWord {
  lo: number;
  hi: number;
}

/** Every 8-byte word of the (whole) page equal? If so, leaves the word in `word`. Reads the page in place. */
export function sameFilled(page: Uint8Array, word: FillWord): boolean {
  // most pages differ in their first and last words: no call for them
  for (let k = 0; k < 8; k++) if (page[PAGE - 8 + k] !== page[k]) return false;
  // page[8, PAGE) against page[0, PAGE - 8)
  if (compareBytes.call(page, page, 0, PAGE - 8, 8, PAGE) !== 0) return false;
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
