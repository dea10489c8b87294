// Fullness lists: each class keeps its zspages on one doubly linked list per
// fullness group (by how full they are), with a bit per non-empty group. Owns
// insert, remove, fix (move a zspage to the group its in-use count says), the
// lookups malloc and compaction make (the fullest zspage with room; the emptiest
// source and the fullest destination, taken off their lists: the kernel's
// isolate_src_zspage and isolate_dst_zspage) and putback. Class lock held for
// all of them (in pool mode, the pool lock).

import { ZS_INUSE_RATIO_10, ZS_INUSE_RATIO_99 } from './constants.js';
import { CL_COUNT, CL_GROUPS, CL_HEAD, CL_WORDS, ZD_FG, ZD_INUSE, ZD_NEXT, ZD_PREV, ZD_WORDS } from './zspage.js';

// Module-local copies of the constants used below: the engine folds a module's
// own constants into its compiled code, but loads and checks an imported one at
// every use (docs/design.md).
const C_COUNT = CL_COUNT;
const C_GROUPS = CL_GROUPS;
const C_HEAD = CL_HEAD;
const C_WORDS = CL_WORDS;
const Z_FG = ZD_FG;
const Z_INUSE = ZD_INUSE;
const Z_NEXT = ZD_NEXT;
const Z_PREV = ZD_PREV;
const Z_WORDS = ZD_WORDS;
const RATIO_10 = ZS_INUSE_RATIO_10;
const RATIO_99 = ZS_INUSE_RATIO_99;

/** What the lists need: the class words, the zspage descriptors and the fullness table (zspage.ts). */
export interface ClassLists {
  readonly cls: Int32Array;
  readonly zd: Int32Array;
  /** Fullness group of `inuse` objects in class c: fgGroups[fgBase[c] + inuse]. */
  readonly fgBase: Int32Array;
  readonly fgGroups: Uint8Array;
}

export function listInsert(l: ClassLists, c: number, zs: number, fg: number): void {
  const cls = l.cls;
  const zd = l.zd;
  const cb = c * C_WORDS;
  const z = zs * Z_WORDS;
  const head = cls[cb + C_HEAD + fg]!;
  zd[z + Z_FG] = fg;
  zd[z + Z_PREV] = 0;
  zd[z + Z_NEXT] = head;
  if (head !== 0) zd[head * Z_WORDS + Z_PREV] = zs;
  cls[cb + C_HEAD + fg] = zs;
  cls[cb + C_COUNT + fg]!++;
  cls[cb + C_GROUPS]! |= 1 << fg;
}

/** Takes zspage zs off its list (no-op when it is on none). */
export function listRemove(l: ClassLists, c: number, zs: number): void {
  const cls = l.cls;
  const zd = l.zd;
  const z = zs * Z_WORDS;
  const fg = zd[z + Z_FG]!;
  if (fg < 0) return;
  const prev = zd[z + Z_PREV]!;
  const next = zd[z + Z_NEXT]!;
  if (prev !== 0) zd[prev * Z_WORDS + Z_NEXT] = next;
  else {
    cls[c * C_WORDS + C_HEAD + fg] = next;
    if (next === 0) cls[c * C_WORDS + C_GROUPS]! &= ~(1 << fg);
  }
  if (next !== 0) zd[next * Z_WORDS + Z_PREV] = prev;
  zd[z + Z_FG] = -1;
  zd[z + Z_PREV] = 0;
  zd[z + Z_NEXT] = 0;
  cls[c * C_WORDS + C_COUNT + fg]!--;
}

/**
 * Moves zspage zs to the list its in-use count says (or puts it back on that list
 * when it is on none: the kernel's putback_zspage); returns the group. Group 0
 * (empty): the caller removes and frees the zspage.
 */
export function fixFullness(l: ClassLists, c: number, zs: number): number {
  const z = zs * Z_WORDS;
  const fg = l.fgGroups[l.fgBase[c]! + l.zd[z + Z_INUSE]!]!;
  if (l.zd[z + Z_FG] !== fg) {
    listRemove(l, c, zs);
    listInsert(l, c, zs, fg);
  }
  return fg;
}

/** Head of the first non-empty group from `from` down to `to` (or up), by the class's group bits; 0 if none. */
export function firstInGroups(l: ClassLists, c: number, from: number, to: number): number {
  const cb = c * C_WORDS;
  const lo = Math.min(from, to);
  const hi = Math.max(from, to);
  const bits = l.cls[cb + C_GROUPS]! & ((2 << hi) - 1) & ~((1 << lo) - 1);
  if (bits === 0) return 0;
  const g = from >= to ? 31 - Math.clz32(bits) : 31 - Math.clz32(bits & -bits);
  return l.cls[cb + C_HEAD + g]!;
}

/** malloc's zspage: the fullest one of class c that has room (the kernel's find_get_zspage); 0 if none. */
export function findZspage(l: ClassLists, c: number): number {
  return firstInGroups(l, c, RATIO_99, 0);
}

/** Compaction's source: the emptiest non-empty zspage, taken off its list; 0 if none. */
export function isolateSrcZspage(l: ClassLists, c: number): number {
  const zs = firstInGroups(l, c, RATIO_10, RATIO_99);
  if (zs !== 0) listRemove(l, c, zs);
  return zs;
}

/** Compaction's destination: the fullest zspage with room, taken off its list; 0 if none. */
export function isolateDstZspage(l: ClassLists, c: number): number {
  const zs = firstInGroups(l, c, RATIO_99, RATIO_10);
  if (zs !== 0) listRemove(l, c, zs);
  return zs;
}
