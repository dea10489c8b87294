// @zsmalloc/zram public API: the zram device model, its codecs and stat layouts.
export { ZramDevice } from './device.js';
export { MAX_DISKSIZE, DEFAULT_MAX_DISKSIZE, POOL_MAX_BYTES, poolBytesFor, type ZramOptions } from './options.js';
export { MAX_COMPS } from './settings.js';
export type { ZramShared, PoolShared } from './device-state.js';
export type { ZramStatValues, SlotState } from './inspect.js';
export type { WritebackMode, WritebackRequest, RecompressType, RecompressRequest } from './postprocess.js';
export { checkRange, pageSpan, newPageSpan, type PageSpan } from './range.js';
export {
  ALGORITHMS,
  DEFAULT_ALGORITHM,
  algorithmId,
  algorithmName,
  algorithmListing,
  createCodec,
  algorithmTakesParams,
} from './codec.js';
export type { Codec, CodecParams } from './codecs/zcomp.js';
export {
  ZstdCodec,
  checkZstdDictionary,
  checkZstdLevel,
  loadZstdDictionary,
  ZSTD_DEFAULT_LEVEL,
  ZSTD_MAX_LEVEL,
  ZSTD_MIN_LEVEL,
  ZSTD_MAX_DICT_BYTES,
} from './codecs/zstd.js';
export { trainZstdDictionary, pagesOf, DEFAULT_DICT_SIZE, type TrainOptions } from './codecs/zstd-dict.js';
export { parseAlgorithmParams, type AlgorithmParamsRequest } from './algorithm-params.js';
export { ZramError, ZramRangeError, type ZramErrorCode } from './errors.js';
export type { BackingOpenOptions } from './backing.js';
export {
  SLOT_LOCK_CLASS,
  ZRAM_SAME,
  ZRAM_ENTRY_LOCK,
  ZRAM_WB,
  ZRAM_PP_SLOT,
  ZRAM_HUGE,
  ZRAM_IDLE,
  ZRAM_INCOMPRESSIBLE,
  SIZE_MASK,
  PRIO_SHIFT,
} from './slots.js';
export {
  C,
  add64,
  inc64,
  get64,
  mmStatText,
  ioStatText,
  bdStatText,
  debugStatText,
  type MmStat,
  type IoStat,
  type BdStat,
  type DebugStat,
} from './stats.js';
