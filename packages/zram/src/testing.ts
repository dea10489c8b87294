// @zsmalloc/zram/testing: synthetic swap-like workload pages (seeded), for tests,
// benchmarks and the swap-storm main job. Not part of the device API.
export { fillPage, prng, swapLikeKind, PAGE_KINDS, type PageKind } from './pages.js';
export { injectBackingFault, type BackingFaultHook } from './backing.js';
