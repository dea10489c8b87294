// The NBD server of @zsmalloc/workers: NbdServer over a BlockBackend, and the
// backend over a ZramDevice in this thread; TLS (PSK) settings.
export {
  NbdServer,
  isLoopback,
  listenPolicyRefusal,
  MAX_HANDSHAKE_TIMEOUT_MS,
  type NbdServerOptions,
  type NbdServerAddress,
  type NbdServerTotals,
} from './server.js';
export { loadPskFile, PskFileError, type NbdTlsOptions, type TlsMode } from './tls.js';
export {
  NbdConnection,
  minConnectionBytes,
  INPUT_SLACK,
  type ConnectionConfig,
  type ConnectionStats,
} from './connection.js';
export {
  WriteTracker,
  nbdErrorOf,
  nbdErrorName,
  type BlockBackend,
  type PageCallback,
  type PageCallbackBackend,
} from './backend.js';
export { ZramDeviceBackend } from './device-backend.js';
export * as nbd from './protocol.js';
