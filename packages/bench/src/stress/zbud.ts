// A tiny model of zbud (mm/zbud.c) for density only: how many 4 KiB pages zbud
// needs for a list of compressed sizes. Sizes round up to 64-byte chunks; the
// first chunk of a page is the header, leaving 63; a page holds at most two
// objects, the first buddy from the start and the last from the end. Allocation
// is zbud's first fit: the unbuddied list with the fewest free chunks that still
// fit (lists are LIFO, as list_add makes them), else a new page. Objects too big
// for zbud (> PAGE_SIZE - 2 chunks) take a whole page each, as zram stores
// incompressible pages.

import { PAGE_SIZE } from '@zsmalloc/core';

export const ZBUD_CHUNK = 64;
export const ZBUD_NCHUNKS = (PAGE_SIZE - ZBUD_CHUNK) / ZBUD_CHUNK; // 63
/** The largest object zbud_alloc accepts. */
export const ZBUD_MAX = PAGE_SIZE - 2 * ZBUD_CHUNK;

export interface ZbudResult {
  /** Pages in use. */
  pages: number;
  objects: number;
  /** Pages holding two objects. */
  buddied: number;
  /** Pages holding one object. */
  unbuddied: number;
  /** Objects over ZBUD_MAX, one page each. */
  whole: number;
}

export function zbudPages(sizes: Iterable<number>): ZbudResult {
  // unbuddied[k]: how many pages have exactly k free chunks and one object
  // (LIFO order does not change page counts when nothing is freed, so counts suffice)
  const unbuddied = new Int32Array(ZBUD_NCHUNKS + 1);
  let pages = 0;
  let objects = 0;
  let buddied = 0;
  let whole = 0;
  for (const size of sizes) {
    if (!(size > 0)) continue;
    objects++;
    if (size > ZBUD_MAX) {
      whole++;
      pages++;
      continue;
    }
    const chunks = Math.ceil(size / ZBUD_CHUNK);
    let found = -1;
    for (let i = chunks; i <= ZBUD_NCHUNKS; i++)
      if (unbuddied[i]! > 0) {
        found = i;
        break;
      }
    if (found >= 0) {
      unbuddied[found]!--;
      buddied++;
    } else {
      pages++;
      unbuddied[ZBUD_NCHUNKS - chunks]!++;
    }
  }
  let one = 0;
  for (let i = 0; i <= ZBUD_NCHUNKS; i++) one += unbuddied[i]!;
  return { pages, objects, buddied, unbuddied: one, whole };
}
