// Fullness lists: each class keeps its zspages on one doubly linked list per
// fullness group (by how full they are), with a bit per non-empty group. Owns
// insert, remove, fix (move a zspage to the group its in-use count says), the
// lookups malloc and compaction make (the fullest zspage with room; the emptiest
// source and the fullest destination, taken off their lists: the kernel's
// isolate_src_zspage and isolate_dst_zspage) and putback. Class lock held for
// all of them (in pool mode, the pool lock).

import { ZS_INUSE_RATIO_10, ZS_INUSE_RATIO_99 } from './constants.js';
import { CL_COUNT, CL_GROUPS, CL_HEAD, CL_WORDS, ZD_FG, ZD_INUSE, ZD_NEXT, ZD_PREV, ZD_WORDS } from './zspage.js';

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
  const cb = c * CL_WORDS;
  const z = zs * ZD_WORDS;
  const head = cls[cb + CL_HEAD + fg]!;
  zd[z + ZD_FG] = fg;
  zd[z + ZD_PREV] = 0;
  zd[z + ZD_NEXT] = head;
  if (head !== 0) zd[head * ZD_WORDS + ZD_PREV] = zs;
  cls[cb + CL_HEAD + fg] = zs;
  cls[cb + CL_COUNT + fg]!++;
  cls[cb + CL_GROUPS]! |= 1 << fg;
}

/** Takes zspage zs off its list (no-op when it is on none). */
export function listRemove(l: ClassLists, c: number, zs: number): void {
  const cls = l.cls;
  const zd = l.zd;
  const z = zs * ZD_WORDS;
  const fg = zd[z + ZD_FG]!;
  if (fg < 0) return;
  const prev = zd[z + ZD_PREV]!;
  const next = zd[z + ZD_NEXT]!;
  if (prev !== 0) zd[prev * ZD_WORDS + ZD_NEXT] = next;
  else {
    cls[c * CL_WORDS + CL_HEAD + fg] = next;
    if (next === 0) cls[c * CL_WORDS + CL_GROUPS]! &= ~(1 << fg);
  }
  if (next !== 0) zd[next * ZD_WORDS + ZD_PREV] = prev;
  zd[z + ZD_FG] = -1;
  zd[z + ZD_PREV] = 0;
  zd[z + ZD_NEXT] = 0;
  cls[c * CL_WORDS + CL_COUNT + fg]!--;
}

/**
 * Moves zspage zs to the list its in-use count says (or puts it back on that list
 * when it is on none: the kernel's putback_zspage); returns the group. Group 0
 * (empty): the caller removes and frees the zspage.
 */
export function fixFullness(l: ClassLists, c: number, zs: number): number {
  const z = zs * ZD_WORDS;
  const fg = l.fgGroups[l.fgBase[c]! + l.zd[z + ZD_INUSE]!]!;
  if (l.zd[z + ZD_FG] !== fg) {
    listRemove(l, c, zs);
    listInsert(l, c, zs, fg);
  }
  return fg;
}

/** Head of the first non-empty group from `from` down to `to` (or up), by the class's group bits; 0 if none. */
export function firstInGroups(l: ClassLists, c: number, from: number, to: number): number {
  const cb = c * CL_WORDS;
  const lo = Math.min(from, to);
  const hi = Math.max(from, to);
  const bits = l.cls[cb + CL_GROUPS]! & ((2 << hi) - 1) & ~((1 << lo) - 1);
  if (bits === 0) return 0;
  const g = from >= to ? 31 - Math.clz32(bits) : 31 - Math.clz32(bits & -bits);
  return l.cls[cb + CL_HEAD + g]!;
}

/** malloc's zspage: the fullest one of class c that has room (the kernel's find_get_zspage); 0 if none. */
export function findZspage(l: ClassLists, c: number): number {
  return firstInGroups(l, c, ZS_INUSE_RATIO_99, 0);
}

/** Compaction's source: the emptiest non-empty zspage, taken off its list; 0 if none. */
export function isolateSrcZspage(l: ClassLists, c: number): number {
  const zs = firstInGroups(l, c, ZS_INUSE_RATIO_10, ZS_INUSE_RATIO_99);
  if (zs !== 0) listRemove(l, c, zs);
  return zs;
}

/** Compaction's destination: the fullest zspage with room, taken off its list; 0 if none. */
export function isolateDstZspage(l: ClassLists, c: number): number {
  const zs = firstInGroups(l, c, ZS_INUSE_RATIO_99, ZS_INUSE_RATIO_10);
  if (zs !== 0) listRemove(l, c, zs);
  return zs;
}
