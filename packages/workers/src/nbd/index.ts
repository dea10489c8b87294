// The NBD server of @zsmalloc/workers: NbdServer over a BlockBackend, and the
// backend over a ZramDevice in this thread.
export { NbdServer, type NbdServerOptions, type NbdServerAddress } from './server.js';
export { NbdConnection, type ConnectionConfig, type ConnectionStats } from './connection.js';
export { WriteTracker, nbdErrorOf, nbdErrorName, type BlockBackend } from './backend.js';
export { ZramDeviceBackend } from './device-backend.js';
export * as nbd from './protocol.js';
