// An object's location: the word a live handle holds (and a per-CPU magazine
// entry), naming the frame an object starts in and its index in its zspage,
// packed into one non-negative Int32 (the kernel's obj_to_location and
// location_to_obj). Nothing else in the package packs or unpacks it.

/** Object index bits in a location word: up to 2048 objects per zspage (16 pages of 32 B). */
export const OBJ_INDEX_BITS = 11;
export const OBJ_INDEX_MASK = (1 << OBJ_INDEX_BITS) - 1;
/** Frames a location can name: the word stays a non-negative Int32. */
export const LOCATION_PFN_LIMIT = 1 << (31 - OBJ_INDEX_BITS);

/** The location word of object idx starting in frame pfn. */
export function locationToObj(pfn: number, idx: number): number {
  return pfn * (1 << OBJ_INDEX_BITS) + idx;
}
/** The frame a location word names. */
export function objToPfn(loc: number): number {
  return loc >>> OBJ_INDEX_BITS;
}
/** The object index a location word names. */
export function objToIdx(loc: number): number {
  return loc & OBJ_INDEX_MASK;
}
