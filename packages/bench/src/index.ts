// @zsmalloc/bench: micro-benchmarks (each next to its baseline), the measurement
// harness over tinybench and the report format (table + JSON).

export { microConfig, measure, scaledBatch, type Case, type MicroConfig } from './measure.js';
export {
  defaultResultsDir,
  formatTable,
  linkBaselines,
  makeReport,
  writeJson,
  type BenchRow,
  type MicroReport,
  type TargetCheck,
} from './report.js';
export { MICRO_BENCHMARKS, runMicro, type MicroBenchmark, type RunMicroOptions } from './micro/suite.js';
export { benchMallocFree, benchWriteRead, OBJ_SIZE } from './micro/allocator.js';
export { benchLocks } from './micro/locks.js';
export { benchMapping, findMappingObjects } from './micro/mapping.js';
export { benchMigration, checkContents, fillPool, movableFrames, type FilledPool } from './micro/migration.js';
