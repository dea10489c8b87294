// Objects inside zspages: where object idx of a zspage lies (its frame, its
// header word, its data), taking and giving back one object of a zspage (the
// kernel's obj_malloc and obj_free, and the per-CPU caches' reserve), pointing
// a handle at an object, turning a handle into a checked location, and copying
// bytes into, out of and between objects that may cross into the next frame of
// their chain. Callers hold the locks the lock order asks for (class lock for
// anything that changes a zspage); these functions take none.

import { PAGE_SIZE, ZS_HANDLE_SIZE } from './constants.js';
import type { HandleTable } from './handles.js';
import { locationToObj, objToOffset, objToPfn } from './location.js';
import {
  PG_ZSPAGE,
  byteToPfn,
  frameBase,
  frameByte,
  getFlags,
  getNextPfn,
  getPagePrivate,
  getZspageOf,
  offsetInFrame,
  setPagePrivate,
} from './page-desc.js';
import type { PhysMem } from './phys-mem.js';
import type { SizeClassTable } from './size-class.js';
import {
  CL_OBJ_USED,
  CL_WORDS,
  RESERVED_HEADER,
  ZD_CLASS,
  ZD_FIRST,
  ZD_FREEOBJ,
  ZD_HUGE_SIZE,
  ZD_INUSE,
  ZD_WORDS,
  decodeFreeLink,
  encodeFreeLink,
  encodeHeader,
} from './zspage.js';

// Module-local copies of the constants used below: the engine folds a module's
// own constants into its compiled code, but loads and checks an imported one at
// every use (docs/design.md).
const C_OBJ_USED = CL_OBJ_USED;
const C_WORDS = CL_WORDS;
const PAGE = PAGE_SIZE;
const ZSPAGE_FRAME = PG_ZSPAGE;
const RESERVED = RESERVED_HEADER;
const Z_CLASS = ZD_CLASS;
const Z_FIRST = ZD_FIRST;
const Z_FREEOBJ = ZD_FREEOBJ;
const Z_HUGE_SIZE = ZD_HUGE_SIZE;
const Z_INUSE = ZD_INUSE;
const Z_WORDS = ZD_WORDS;
const HANDLE_SIZE = ZS_HANDLE_SIZE;

/** What finding an object needs: the class table, memory and the zspage descriptors. */
export interface ObjectSpace {
  readonly table: SizeClassTable;
  readonly phys: PhysMem;
  readonly zd: Int32Array;
}

/** What taking or giving back an object needs besides: the class counters and the handles. */
export interface ObjectStore extends ObjectSpace {
  readonly cls: Int32Array;
  readonly clsBytes: Float64Array;
  readonly handles: HandleTable;
}

/** What resolving a handle needs. */
export interface HandleSpace extends ObjectSpace {
  readonly handles: HandleTable;
  readonly maxFrames: number;
}

/** The zspage that owns the frame a location names. */
export function zspageOfObj(fd: Int32Array, loc: number): number {
  return getZspageOf(fd, objToPfn(loc));
}

/** The class of zspage zs. */
export function zspageClass(zd: Int32Array, zs: number): number {
  return zd[zs * Z_WORDS + Z_CLASS]!;
}

/** Frame holding byte `offset` of zspage zs (walks the chain; the frame is made visible in the views). */
export function frameAt(s: ObjectSpace, zs: number, offset: number): number {
  const fd = s.phys.fd;
  let pfn = s.zd[zs * Z_WORDS + Z_FIRST]!;
  for (let k = byteToPfn(offset); k > 0; k--) pfn = getNextPfn(fd, pfn);
  // another thread may have grown memory to allocate this frame
  s.phys.ensure(pfn);
  return pfn;
}

/** The index in its zspage of the object at location loc of class c (0 for a huge object). */
export function objIndex(s: ObjectSpace, c: number, loc: number): number {
  if (s.table.huge[c] !== 0) return 0;
  // exact: the object starts at byte idx * size of its zspage
  return (getPagePrivate(s.phys.fd, objToPfn(loc)) * PAGE + objToOffset(loc)) / s.table.size[c]!;
}

/**
 * Index in phys.wordsOf(objToPfn(loc)) of the header of the (non-huge) object at
 * location loc; its frame is made visible.
 */
export function objHeaderWord(s: ObjectSpace, _c: number, loc: number): number {
  const pfn = objToPfn(loc);
  s.phys.ensure(pfn);
  return s.phys.wordIndex(pfn, objToOffset(loc));
}

/** Byte address of the data of the object at location loc of class c (its frame is in the views). */
export function objDataAddr(s: ObjectSpace, c: number, loc: number): number {
  const pfn = objToPfn(loc);
  if (s.table.huge[c] !== 0) return frameBase(pfn);
  return frameByte(pfn, objToOffset(loc)) + HANDLE_SIZE;
}

/** Length of the object of zspage zs of class c whose data starts at byte address `data` (objDataAddr). */
export function objDataLen(s: ObjectSpace, zs: number, c: number, data: number): number {
  if (s.table.huge[c] !== 0) return s.zd[zs * Z_WORDS + Z_HUGE_SIZE]!;
  const header = data - HANDLE_SIZE;
  const pfn = byteToPfn(header);
  return s.phys.wordsOf(pfn)[s.phys.wordIndex(pfn, offsetInFrame(header)) + 1]!; // the header's second word
}

/**
 * Writes the free-object list of a new (non-huge) zspage: every object free, in
 * index order. Walks the frame chain once (a header never straddles two frames).
 */
export function initFreeObjects(s: ObjectSpace, zs: number, c: number): void {
  const objs = s.table.objsPerZspage[c]!;
  const size = s.table.size[c]!;
  const phys = s.phys;
  const fd = phys.fd;
  let pfn = s.zd[zs * Z_WORDS + Z_FIRST]!;
  let frame = 0;
  phys.ensure(pfn);
  for (let idx = 0; idx < objs; idx++) {
    const off = idx * size;
    for (const k = byteToPfn(off); frame < k; frame++) {
      pfn = getNextPfn(fd, pfn);
      phys.ensure(pfn);
    }
    const w = phys.wordIndex(pfn, offsetInFrame(off));
    const words = phys.wordsOf(pfn);
    words[w] = encodeFreeLink(idx + 1 < objs ? idx + 1 : -1);
    words[w + 1] = 0;
  }
}

/**
 * Takes a free object in zspage zs for handle h (class lock held); returns its
 * location word. With `publish` false the handle is left alone (compaction
 * publishes after the copy).
 */
export function objMalloc(s: ObjectStore, zs: number, c: number, h: number, size: number, publish: boolean): number {
  const zd = s.zd;
  const z = zs * Z_WORDS;
  const idx = zd[z + Z_FREEOBJ]!;
  let loc: number;
  if (s.table.huge[c]) {
    const pfn = zd[z + Z_FIRST]!;
    setPagePrivate(s.phys.fd, pfn, h);
    zd[z + Z_HUGE_SIZE] = size;
    zd[z + Z_FREEOBJ] = -1;
    loc = locationToObj(pfn, 0);
  } else {
    const off = idx * s.table.size[c]!;
    const pfn = frameAt(s, zs, off);
    loc = locationToObj(pfn, offsetInFrame(off));
    const words = s.phys.wordsOf(pfn);
    const w = s.phys.wordIndex(pfn, offsetInFrame(off));
    zd[z + Z_FREEOBJ] = decodeFreeLink(words[w]!);
    words[w] = encodeHeader(h);
    words[w + 1] = size;
  }
  zd[z + Z_INUSE]!++;
  s.cls[c * C_WORDS + C_OBJ_USED]!++;
  s.clsBytes[c] = s.clsBytes[c]! + size;
  if (publish) publishHandle(s.handles, h, loc);
  return loc;
}

/**
 * Points handle h at location loc. Compaction publishes only after the copy, so
 * a compactor killed midway leaves the handle on the old, intact copy.
 */
export function publishHandle(handles: HandleTable, h: number, loc: number): void {
  handles.inRange(h); // the handle may be newer than this thread's view of the table
  handles.words[h] = loc;
}

/** Frees the object at location loc of zspage zs (class lock held; its handle is the caller's). */
export function objFree(s: ObjectStore, zs: number, c: number, loc: number): void {
  const zd = s.zd;
  const z = zs * Z_WORDS;
  const pfn = objToPfn(loc);
  let size: number;
  if (s.table.huge[c]) {
    size = zd[z + Z_HUGE_SIZE]!;
    setPagePrivate(s.phys.fd, pfn, 0);
    zd[z + Z_HUGE_SIZE] = 0;
  } else {
    s.phys.ensure(pfn);
    const w = s.phys.wordIndex(pfn, objToOffset(loc));
    const words = s.phys.wordsOf(pfn);
    size = words[w + 1]!;
    words[w] = encodeFreeLink(zd[z + Z_FREEOBJ]!);
    words[w + 1] = 0;
  }
  zd[z + Z_FREEOBJ] = objIndex(s, c, loc);
  zd[z + Z_INUSE]!--;
  s.cls[c * C_WORDS + C_OBJ_USED]!--;
  s.clsBytes[c] = s.clsBytes[c]! - size;
}

/**
 * Takes a free object of (non-huge) zspage zs for a per-CPU cache (class lock
 * held): counted in the zspage's in-use count (it is allocated) but not in
 * obj_used; its header says reserved, so compaction leaves it alone. Returns its
 * location word (the caller records its magazine position in its second word).
 */
export function objReserve(s: ObjectSpace, zs: number, c: number): number {
  const zd = s.zd;
  const z = zs * Z_WORDS;
  const idx = zd[z + Z_FREEOBJ]!;
  const off = idx * s.table.size[c]!;
  const pfn = frameAt(s, zs, off);
  const w = s.phys.wordIndex(pfn, offsetInFrame(off));
  const words = s.phys.wordsOf(pfn);
  zd[z + Z_FREEOBJ] = decodeFreeLink(words[w]!);
  words[w] = RESERVED;
  words[w + 1] = 0;
  zd[z + Z_INUSE]!++;
  return locationToObj(pfn, offsetInFrame(off));
}

/** Gives a reserved object back to its zspage's free list (class lock held). */
export function objUnreserve(s: ObjectSpace, zs: number, c: number, idx: number): void {
  const zd = s.zd;
  const z = zs * Z_WORDS;
  const off = idx * s.table.size[c]!;
  const pfn = frameAt(s, zs, off);
  const w = s.phys.wordIndex(pfn, offsetInFrame(off));
  const words = s.phys.wordsOf(pfn);
  words[w] = encodeFreeLink(zd[z + Z_FREEOBJ]!);
  words[w + 1] = 0;
  zd[z + Z_FREEOBJ] = idx;
  zd[z + Z_INUSE]!--;
}

/**
 * Resolves a handle to its location word, checking that it names a live object;
 * -1 if not. Without the pool lock the answer may be stale (see free).
 */
export function resolveHandle(s: HandleSpace, h: number): number {
  if (!s.handles.inRange(h)) return -1;
  const loc = s.handles.words[h]!;
  if (loc < 0) return -1;
  const pfn = objToPfn(loc);
  if (pfn >= s.maxFrames) return -1;
  s.phys.ensure(pfn);
  const fd = s.phys.fd;
  if ((getFlags(fd, pfn) & ZSPAGE_FRAME) === 0) return -1;
  const c = zspageClass(s.zd, getZspageOf(fd, pfn));
  if (s.table.huge[c]) return getPagePrivate(fd, pfn) === h ? loc : -1;
  return s.phys.wordsOf(pfn)[s.phys.wordIndex(pfn, objToOffset(loc))] === encodeHeader(h) ? loc : -1;
}

/**
 * Byte address of the frame that follows, in its zspage chain, the frame holding
 * byte `addr` (an object crossing a frame boundary continues there).
 */
export function nextFrameBase(phys: PhysMem, addr: number): number {
  const next = getNextPfn(phys.fd, byteToPfn(addr));
  phys.ensure(next);
  return frameBase(next);
}

/**
 * Whether an object at byte address addr that crosses into the next frame of its
 * chain (frame base `next`) lies in one run of bytes: the next frame follows in
 * memory, in the same segment. Most do (a zspage's frames are allocated together),
 * and one copy then moves the object without splitting it.
 */
function contiguous(phys: PhysMem, addr: number, room: number, next: number): boolean {
  return next === addr + room && phys.bytesAt(next) === phys.bytesAt(addr);
}

/** Copies `len` bytes of src to byte address addr, crossing into the next frame of the chain if needed. */
export function copyIn(phys: PhysMem, addr: number, src: Uint8Array, len: number): void {
  const room = PAGE - offsetInFrame(addr);
  if (len > room) {
    const next = nextFrameBase(phys, addr);
    if (!contiguous(phys, addr, room, next)) {
      phys.bytesAt(addr).set(src.subarray(0, room), phys.byteIndex(addr));
      phys.bytesAt(next).set(src.subarray(room, len), phys.byteIndex(next));
      return;
    }
  }
  phys.bytesAt(addr).set(len === src.length ? src : src.subarray(0, len), phys.byteIndex(addr));
}

/** Copies `len` bytes from byte address addr into dst, crossing into the next frame if needed. */
export function copyOut(phys: PhysMem, addr: number, dst: Uint8Array, len: number): void {
  const room = PAGE - offsetInFrame(addr);
  const at = phys.byteIndex(addr);
  if (len > room) {
    const next = nextFrameBase(phys, addr);
    if (!contiguous(phys, addr, room, next)) {
      const nat = phys.byteIndex(next);
      dst.set(phys.bytesAt(addr).subarray(at, at + room));
      dst.set(phys.bytesAt(next).subarray(nat, nat + len - room), room);
      return;
    }
  }
  dst.set(phys.bytesAt(addr).subarray(at, at + len));
}

/**
 * Copies len bytes between two byte addresses, each of which may cross into the
 * next frame of its zspage chain. copyWithin within one segment: no allocation.
 */
export function copyAcross(phys: PhysMem, from: number, to: number, len: number): void {
  while (len > 0) {
    const n = Math.min(len, PAGE - offsetInFrame(from), PAGE - offsetInFrame(to));
    const src = phys.bytesAt(from);
    const dst = phys.bytesAt(to);
    const f = phys.byteIndex(from);
    if (src === dst) src.copyWithin(phys.byteIndex(to), f, f + n);
    else dst.set(src.subarray(f, f + n), phys.byteIndex(to));
    len -= n;
    if (len === 0) return;
    from += n;
    to += n;
    if (offsetInFrame(from) === 0) from = nextFrameBase(phys, from - 1);
    if (offsetInFrame(to) === 0) to = nextFrameBase(phys, to - 1);
  }
}
