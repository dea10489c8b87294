// @zsmalloc/zram public API: the zram device model, its codecs and stat layouts.
export {
  ZramDevice,
  MAX_DISKSIZE,
  DEFAULT_MAX_DISKSIZE,
  MAX_COMPS,
  type ZramOptions,
  type ZramShared,
  type ZramStatValues,
  type SlotState,
  type WritebackMode,
  type WritebackRequest,
  type RecompressType,
  type RecompressRequest,
  type PoolShared,
} from './device.js';
export {
  ALGORITHMS,
  DEFAULT_ALGORITHM,
  algorithmId,
  algorithmName,
  algorithmListing,
  createCodec,
  algorithmTakesParams,
  type Codec,
  type CodecParams,
} from './codec.js';
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
export { ZramError, type ZramErrorCode } from './errors.js';
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
