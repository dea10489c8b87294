// Running one ring entry: the zram path itself, page by page, on whichever
// thread claimed it (a compression worker, or the submitting thread running to
// completion). Each page takes the device's slot lock and the pool's locks as
// any kernel CPU in zram would, so lock_stat sees every thread. A failing page
// records the entry's first error and the rest of the entry still runs.

import { ZsError } from '@zsmalloc/core';
import { ZramError, type ZramDevice } from '@zsmalloc/zram';
import type { PageArena } from './page-arena.js';
import { OP_WRITE, type PageRing } from './page-ring.js';

/** The code an error travels under (rebuilt into the same type on the submitting side). */
export function errorCode(e: unknown): string {
  if (e instanceof ZsError || e instanceof ZramError) return String(e.code);
  return e instanceof RangeError ? 'ERANGE' : 'EIO';
}

/** Runs entry `slot` of `ring` on device `dev`; returns the pages it covered. */
export function runEntry(dev: ZramDevice, ring: PageRing, arena: PageArena, slot: number): number {
  const first = ring.first(slot);
  const count = ring.count(slot);
  const at = ring.arenaPage(slot);
  const pages = arena.pages;
  const write = ring.op(slot) === OP_WRITE;
  for (let k = 0; k < count; k++) {
    try {
      if (write) dev.writePage(first + k, pages[at + k]!);
      else dev.readPage(first + k, pages[at + k]!);
    } catch (e) {
      ring.fail(slot, k, errorCode(e), e instanceof Error ? e.message : String(e));
    }
  }
  return count;
}
