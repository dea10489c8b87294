// @zsmalloc/workers: the package that starts threads — the ZramService (compression
// pool, swap I/O worker, compaction/migration worker) and the swap-storm main job.
export {
  ZramService,
  WorkerFailedError,
  wrapControl,
  type ServiceOptions,
  type ServiceStats,
  type WorkerFailure,
  type CompactionOptions,
  type ServiceControl,
} from './service.js';
export { PageRing, type PageRingShared, type OwnerCounters } from './ring/page-ring.js';
export { PageArena } from './ring/page-arena.js';
export type { PageDone, RingStats, RunToCompletion } from './ring/ring-submitter.js';
export type { BackingFaultRule } from './swap-io-worker.js';
export * from './nbd/index.js';
export { ServiceBackend } from './nbd/service-backend.js';
export { ControlServer, controlRequest, defaultControlPath } from './control.js';
export { SocketPathError, privateRuntimeDir } from './unix-socket.js';
export { parseSize } from './size.js';
