// Byte ranges on a zram device: the one range check (offset and length against
// the device size, before anything changes) and the one page span (a range cut
// into a partial head page, whole pages and a partial tail page). The device's
// byte-granular I/O and the NBD backends both use these; nothing else spells
// them out.

import { ZramRangeError } from './errors.js';

const PAGE = 4096;

/** A safe integer >= 0 (rejects NaN, infinities, fractions, negatives and non-numbers). */
export function isNonNegInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

/**
 * Throws ZramRangeError unless [offset, offset + length) lies inside a device of
 * `size` bytes: both safe non-negative integers and offset + length <= size. A
 * zero length at offset == size is inside. Check first: a refused range has
 * changed nothing.
 */
export function checkRange(offset: number, length: number, size: number, op: string): void {
  if (!isNonNegInt(offset) || !isNonNegInt(length) || offset + length > size) {
    throw new ZramRangeError(op, offset, length, size);
  }
}

/**
 * A byte range cut at page boundaries, in order: `head` bytes from the range's
 * offset up to the first page boundary (0 when the offset is page-aligned; the
 * whole range when it ends inside its first page), then `pages` whole pages
 * starting at page index `first`, then `tail` bytes of the page after them.
 * head + pages * 4096 + tail is the range's length; head and tail are < 4096.
 * The head lies in page first - 1, the tail in page first + pages.
 */
export interface PageSpan {
  head: number;
  first: number;
  pages: number;
  tail: number;
}

/** An empty PageSpan, to pass to pageSpan() again and again (no allocation per call). */
export function newPageSpan(): PageSpan {
  return { head: 0, first: 0, pages: 0, tail: 0 };
}

/**
 * Cuts [offset, offset + length) at page boundaries into `out` and returns it.
 * offset and length must already be checked (checkRange): non-negative integers.
 */
export function pageSpan(offset: number, length: number, out: PageSpan = newPageSpan()): PageSpan {
  const off = offset % PAGE;
  const head = off === 0 ? 0 : Math.min(length, PAGE - off);
  const rest = length - head;
  const pages = Math.floor(rest / PAGE);
  out.head = head;
  out.first = (offset - off) / PAGE + (off === 0 ? 0 : 1);
  out.pages = pages;
  out.tail = rest - pages * PAGE;
  return out;
}
