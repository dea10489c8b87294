// Kernel constants shared by every module of the allocator (see docs/kernel-facts.md).

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
/** Smallest object a class holds, header included. */
export const ZS_MIN_ALLOC_SIZE = 32;
/** Largest object: one page. */
export const ZS_MAX_ALLOC_SIZE = PAGE_SIZE;
/** Distance between two size classes. */
export const ZS_SIZE_CLASS_DELTA = PAGE_SIZE >> 8;
/** Number of size classes: 32, 48, ... 4096. */
export const ZS_SIZE_CLASSES = (ZS_MAX_ALLOC_SIZE - ZS_MIN_ALLOC_SIZE) / ZS_SIZE_CLASS_DELTA + 1;
/** Bytes of the in-object header that holds the handle (an unsigned long on 64-bit). */
export const ZS_HANDLE_SIZE = 8;
/** Allowed range of pages per zspage (CONFIG_ZSMALLOC_CHAIN_SIZE). */
export const ZS_MIN_CHAIN = 4;
export const ZS_MAX_CHAIN = 16;
export const ZS_DEFAULT_CHAIN = 8;
/** Buddy allocator orders 0..MAX_ORDER (MAX_PAGE_ORDER in current kernels). */
export const MAX_ORDER = 10;
export const NR_ORDERS = MAX_ORDER + 1;

/** Fullness groups by in-use ratio (6.4+): 0%, 10%..90%, 99%, 100%. */
export const ZS_INUSE_RATIO_0 = 0;
export const ZS_INUSE_RATIO_10 = 1;
export const ZS_INUSE_RATIO_99 = 10;
export const ZS_INUSE_RATIO_100 = 11;
export const NR_FULLNESS_GROUPS = 12;
