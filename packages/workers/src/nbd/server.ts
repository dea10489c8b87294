// NbdServer: serves one BlockBackend as an NBD export over TCP (loopback by
// default). Owns the listening socket, the set of live connections, the
// server-wide write tracker behind FLUSH and CAN_MULTI_CONN, and shutdown.
// The protocol itself is in @zsmalloc/zram's nbd codec; each connection's
// handshake and transmission are in connection.ts.

import net from 'node:net';
import { WriteTracker, type BlockBackend } from './backend.js';
import { NbdConnection, type ConnectionConfig, type ConnectionStats } from './connection.js';

export interface NbdServerOptions {
  backend: BlockBackend;
  /** Address to listen on (default '127.0.0.1'). */
  host?: string;
  /** TCP port (default 10809, the IANA NBD port); 0 picks a free one. */
  port?: number;
  /** Export name (default 'zram0'); the empty name ("default export") is accepted too. */
  exportName?: string;
  /** Text for NBD_INFO_DESCRIPTION and NBD_OPT_LIST. */
  description?: string;
  /** Largest request length in bytes (default 32 MiB; advertised as the maximum block size). */
  maxPayload?: number;
  /** Requests in flight per connection before reading pauses (default 128). */
  maxInflight?: number;
  /** Request bytes in flight per connection before reading pauses (default 32 MiB). */
  maxInflightBytes?: number;
  /** Advertise NBD_FLAG_CAN_MULTI_CONN (default true: flush covers every connection). */
  multiConn?: boolean;
  /** Diagnostics sink (default: none): protocol violations, I/O errors. */
  log?: (msg: string) => void;
  /** Also log every handshake option and connection end (default false). */
  debug?: boolean;
}

export interface NbdServerAddress {
  host: string;
  port: number;
}

export class NbdServer {
  readonly backend: BlockBackend;
  private readonly opts: Required<Omit<NbdServerOptions, 'backend'>>;
  private readonly server: net.Server;
  private readonly conns = new Set<NbdConnection>();
  private readonly writes = new WriteTracker();
  private readonly cfg: ConnectionConfig;
  private nextId = 1;
  private closing: Promise<void> | null = null;
  private listening = false;

  constructor(options: NbdServerOptions) {
    if (!options || typeof options !== 'object' || !options.backend)
      throw new TypeError('NbdServer: options.backend is required');
    this.backend = options.backend;
    this.opts = {
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 10809,
      exportName: options.exportName ?? 'zram0',
      description: options.description ?? 'zram block device (zsmalloc in shared memory)',
      maxPayload: options.maxPayload ?? 32 * 1024 * 1024,
      maxInflight: options.maxInflight ?? 128,
      maxInflightBytes: options.maxInflightBytes ?? 32 * 1024 * 1024,
      multiConn: options.multiConn ?? true,
      log: options.log ?? (() => {}),
      debug: options.debug ?? false,
    };
    const o = this.opts;
    if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535)
      throw new RangeError(`NbdServer: bad port ${String(o.port)}`);
    if (!Number.isInteger(o.maxPayload) || o.maxPayload < 4096 || o.maxPayload > 0xffffffff) {
      throw new RangeError('NbdServer: maxPayload must be an integer in 4096..2^32-1');
    }
    if (Buffer.byteLength(o.exportName) > 4096 || o.exportName.includes('\0'))
      throw new RangeError('NbdServer: bad export name');
    this.cfg = {
      backend: this.backend,
      exportName: o.exportName,
      description: o.description,
      maxPayload: o.maxPayload,
      maxInflight: o.maxInflight,
      maxInflightBytes: o.maxInflightBytes,
      multiConn: o.multiConn,
      writes: this.writes,
      log: o.log,
      debug: o.debug,
      shuttingDown: () => this.closing !== null,
    };
    this.server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    this.server.on('error', (e) => o.log(`nbd: server error: ${e.message}`));
  }

  /** Creates a server and starts listening. */
  static async start(options: NbdServerOptions): Promise<NbdServer> {
    const s = new NbdServer(options);
    await s.listen();
    return s;
  }

  /** Starts listening; resolves with the bound address. */
  listen(): Promise<NbdServerAddress> {
    if (this.closing) return Promise.reject(new Error('NbdServer: closed'));
    if (this.listening) return Promise.resolve(this.address());
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      this.server.once('error', onError);
      this.server.listen(this.opts.port, this.opts.host, () => {
        this.server.off('error', onError);
        this.listening = true;
        resolve(this.address());
      });
    });
  }

  /** The bound address (the real port when listening on port 0). */
  address(): NbdServerAddress {
    const a = this.server.address();
    if (a === null || typeof a === 'string') throw new Error('NbdServer: not listening');
    return { host: a.address, port: a.port };
  }

  /** nbd:// URI of the export (for nbdinfo, nbdcopy, qemu, fio). */
  uri(): string {
    const { host, port } = this.address();
    const h = host.includes(':') ? `[${host}]` : host;
    return `nbd://${h}:${port}/${encodeURIComponent(this.opts.exportName)}`;
  }

  get exportName(): string {
    return this.opts.exportName;
  }

  /** Live client connections. */
  get connections(): number {
    return this.conns.size;
  }

  /** Per-connection snapshot (phase, requests in flight, queued reply bytes). */
  stats(): ConnectionStats[] {
    return [...this.conns].map((c) => c.stats());
  }

  /**
   * Stops listening and ends every connection: requests in flight finish and
   * are answered first, connections still negotiating are dropped. Resolves
   * when every socket and the listener are closed. Idempotent.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      const listenerClosed = new Promise<void>((resolve) => {
        if (!this.listening) return resolve();
        this.server.close(() => resolve());
      });
      await Promise.all([...this.conns].map((c) => c.shutdown()));
      await listenerClosed;
      await this.writes.drain();
    })();
    return this.closing;
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const conn = new NbdConnection(socket, this.nextId++, this.cfg);
    this.conns.add(conn);
    void conn.whenClosed().then(() => this.conns.delete(conn));
  }
}
