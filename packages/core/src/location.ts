// An object's location: the word a live handle holds (and a per-CPU magazine
// entry), naming the frame an object starts in and the object's offset in that
// frame, packed into one non-negative Int32 (the kernel's obj_to_location and
// location_to_obj). Nothing else in the package packs or unpacks it.
//
// The kernel packs (pfn, object index in the zspage). Index needs 11 bits (2048
// objects of 32 B in a 16-page zspage), which would leave 20 bits of frame number
// (4 GiB). Objects start at multiples of ZS_SIZE_CLASS_DELTA (16 B: every class
// size and every frame boundary is one), so the offset in the start frame fits 8
// bits and the word names 2^23 frames (32 GiB) while staying one Int32: handle
// words keep their compare-and-swap claim, their negative free-list encoding and
// the lock-free free's argument (lock-policy.ts) unchanged. The index, which the
// zspage's free list needs, is (chain index * PAGE_SIZE + offset) / size.

/** Bits of the offset field: the object's start offset in its frame, in 16-byte units. */
export const OBJ_OFFSET_BITS = 8;
export const OBJ_OFFSET_MASK = (1 << OBJ_OFFSET_BITS) - 1;
/** Object start offsets are multiples of 1 << OBJ_ALIGN_SHIFT bytes. */
export const OBJ_ALIGN_SHIFT = 4;
/** Frames a location can name: the word stays a non-negative Int32. */
export const LOCATION_PFN_LIMIT = 2 ** (31 - OBJ_OFFSET_BITS);

// Module-local copies for the functions below: the engine folds these into its code,
// but loads and checks an exported constant at every use (docs/design.md).
const OFFSET_BITS = OBJ_OFFSET_BITS;
const OFFSET_MASK = OBJ_OFFSET_MASK;
const ALIGN_SHIFT = OBJ_ALIGN_SHIFT;

/** The location word of the object starting at byte `off` (a multiple of 16) of frame pfn. */
export function locationToObj(pfn: number, off: number): number {
  return pfn * (1 << OFFSET_BITS) + (off >>> ALIGN_SHIFT);
}
/** The frame a location word names. */
export function objToPfn(loc: number): number {
  return loc >>> OFFSET_BITS;
}
/** The offset in its frame of the object a location word names (0..PAGE_SIZE-16). */
export function objToOffset(loc: number): number {
  return (loc & OFFSET_MASK) << ALIGN_SHIFT;
}
