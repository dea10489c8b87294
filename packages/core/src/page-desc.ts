// Frame descriptors (the kernel's struct page) and frame addressing. Owns the
// layout of a frame's descriptor in shared memory (FD_WORDS Int32 fields per
// frame), the page flags, one-line getters and setters for every field, and the
// arithmetic that turns a frame number and an offset into an address in the
// memory. Nothing else in the package spells out `pfn * FD_WORDS + F` or
// `pfn * PAGE_SIZE`: a wider address space changes these functions (and PhysMem's
// view lookups) only.
// They are tiny and monomorphic (Int32Array, numbers) so V8 inlines them.

import { PAGE_SIZE } from './constants.js';

// ---- frame descriptor ("struct page"): Int32 fields, FD_WORDS per frame
export const FD_WORDS = 8;
export const FD_FLAGS = 0;
export const FD_ORDER = 1;
/** zspage id owning the frame (zspage frames). */
export const FD_ZSPAGE = 2;
/** Offset in this frame of the first object that starts in it. */
export const FD_FIRST_OBJ = 3;
/** Next frame of the zspage chain, -1 at the end. */
export const FD_NEXT = 4;
/** Buddy free-list links (free block heads). */
export const FD_LPREV = 5;
export const FD_LNEXT = 6;
/** Huge zspage: the handle of its single object. Otherwise the frame's index in the chain. */
export const FD_PRIVATE = 7;

export const PG_BUDDY = 1; // head of a free buddy block
export const PG_ZSPAGE = 2; // frame of a zspage (movable)
export const PG_ISOLATED = 4; // isolated for migration
export const PG_RESERVED = 8; // head of a block handed out by allocPages (unmovable)
export const PG_HUGE = 16; // zspage frame holding one huge object
export const PG_TAIL = 32; // non-head frame of an allocPages block
export const PG_NEW = 64; // frame of a zspage being built: not yet movable (not on any list)
export const PG_PCP = 128; // free frame on a CPU's page list (phys-mem.ts), not in the buddy lists

// The functions below read module-local copies of the layout: the engine folds a
// module's own constants into its compiled code, but loads and checks an exported
// (or imported) one at every use (docs/design.md, "The shared-memory model").
const WORDS = FD_WORDS;
const FLAGS = FD_FLAGS;
const ORDER = FD_ORDER;
const ZSPAGE = FD_ZSPAGE;
const FIRST_OBJ = FD_FIRST_OBJ;
const NEXT = FD_NEXT;
const LPREV = FD_LPREV;
const LNEXT = FD_LNEXT;
const PRIVATE = FD_PRIVATE;
const ISOLATED = PG_ISOLATED;
const PAGE = PAGE_SIZE;

// ---- fields (page->flags, buddy order, get_zspage, first_obj_offset, get_next_page, lru links, page_private)

export function getFlags(fd: Int32Array, pfn: number): number {
  return fd[pfn * WORDS + FLAGS]!;
}
export function setFlags(fd: Int32Array, pfn: number, v: number): void {
  fd[pfn * WORDS + FLAGS] = v;
}
export function getOrder(fd: Int32Array, pfn: number): number {
  return fd[pfn * WORDS + ORDER]!;
}
export function setOrder(fd: Int32Array, pfn: number, v: number): void {
  fd[pfn * WORDS + ORDER] = v;
}
/** The zspage that owns a zspage frame. */
export function getZspageOf(fd: Int32Array, pfn: number): number {
  return fd[pfn * WORDS + ZSPAGE]!;
}
export function setZspageOf(fd: Int32Array, pfn: number, zs: number): void {
  fd[pfn * WORDS + ZSPAGE] = zs;
}
export function getFirstObjOffset(fd: Int32Array, pfn: number): number {
  return fd[pfn * WORDS + FIRST_OBJ]!;
}
export function setFirstObjOffset(fd: Int32Array, pfn: number, v: number): void {
  fd[pfn * WORDS + FIRST_OBJ] = v;
}
/** The next frame of a zspage's chain, -1 after the last. */
export function getNextPfn(fd: Int32Array, pfn: number): number {
  return fd[pfn * WORDS + NEXT]!;
}
export function setNextPfn(fd: Int32Array, pfn: number, next: number): void {
  fd[pfn * WORDS + NEXT] = next;
}
export function getBuddyPrev(fd: Int32Array, pfn: number): number {
  return fd[pfn * WORDS + LPREV]!;
}
export function setBuddyPrev(fd: Int32Array, pfn: number, v: number): void {
  fd[pfn * WORDS + LPREV] = v;
}
export function getBuddyNext(fd: Int32Array, pfn: number): number {
  return fd[pfn * WORDS + LNEXT]!;
}
export function setBuddyNext(fd: Int32Array, pfn: number, v: number): void {
  fd[pfn * WORDS + LNEXT] = v;
}
/** A huge zspage frame: its object's handle; any other zspage frame: its index in the chain. */
export function getPagePrivate(fd: Int32Array, pfn: number): number {
  return fd[pfn * WORDS + PRIVATE]!;
}
export function setPagePrivate(fd: Int32Array, pfn: number, v: number): void {
  fd[pfn * WORDS + PRIVATE] = v;
}
/**
 * A zspage frame that its migrator holds (PG_ISOLATED) is left to the migrator as an
 * orphan, out of any zspage, when its zspage goes; migrate or putback frees it.
 * True when the frame was isolated (and is now an orphan); false: the caller frees it.
 */
export function orphanIfIsolated(fd: Int32Array, pfn: number): boolean {
  if ((getFlags(fd, pfn) & ISOLATED) === 0) return false;
  setFlags(fd, pfn, ISOLATED);
  setZspageOf(fd, pfn, 0);
  setNextPfn(fd, pfn, -1);
  return true;
}
/** Zeroes every field of a frame's descriptor (a frame new to the pool). */
export function clearPageDesc(fd: Int32Array, pfn: number): void {
  fd.fill(0, pfn * WORDS, pfn * WORDS + WORDS);
}
/** Bytes of shared memory the descriptors of `frames` frames take. */
export function pageDescBytes(frames: number): number {
  return frames * WORDS * 4;
}

// ---- frame addressing: byte addresses
//
// A byte address is frame * PAGE_SIZE + offset, and runs past 2^32 in a pool past
// 4 GiB, so nothing here shifts one with `>>>` (it would wrap): division by a power
// of two is exact for these integers. Which memory view holds an address, and the
// index in it, depends on the pool's segments: PhysMem's wordsOf/wordIndex and
// bytesAt/byteIndex (phys-mem.ts). A span inside one frame never crosses a segment.

/** Byte address of the first byte of frame pfn. */
export function frameBase(pfn: number): number {
  return pfn * PAGE;
}
/** Byte address of byte `off` of frame pfn. */
export function frameByte(pfn: number, off: number): number {
  return pfn * PAGE + off;
}
/** The frame holding byte address addr (or the page of a zspage holding byte `addr` of it). */
export function byteToPfn(addr: number): number {
  return Math.floor(addr / PAGE);
}
/** Offset of byte address addr inside its frame (`&` keeps the low bits of any integer below 2^53). */
export function offsetInFrame(addr: number): number {
  return addr & (PAGE - 1);
}
