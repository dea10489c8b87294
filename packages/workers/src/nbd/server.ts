// NbdServer: serves one BlockBackend as an NBD export over TCP (loopback by
// default) or a private Unix socket. Owns the listening socket, who may
// connect (the listen address policy, the connection cap, TLS settings), the
// set of live connections, the server-wide write tracker behind FLUSH and
// CAN_MULTI_CONN, and shutdown. The wire codec is protocol.ts; each
// connection's handshake and transmission are in connection.ts, TLS in tls.ts.

import net from 'node:net';
import { listenPrivate } from '../unix-socket.js';
import { WriteTracker, type BlockBackend } from './backend.js';
import { NbdConnection, minConnectionBytes, type ConnectionConfig, type ConnectionStats } from './connection.js';
import { checkTlsOptions, type NbdTlsOptions, type TlsMode } from './tls.js';

export interface NbdServerOptions {
  backend: BlockBackend;
  /**
   * Address to listen on (default '127.0.0.1'). Anything but loopback needs
   * tls 'require' or `insecure`: the export gives whoever connects the whole device.
   */
  host?: string;
  /** TCP port (default 10809, the IANA NBD port); 0 picks a free one. */
  port?: number;
  /** Listen on this Unix socket instead of TCP (created 0600; an existing non-socket is refused). */
  unix?: string;
  /** TLS policy (default 'off') and the pre-shared keys it needs. */
  tls?: TlsMode;
  /** Pre-shared keys by user name (see loadPskFile). */
  psk?: ReadonlyMap<string, Buffer>;
  /** Allow a non-loopback host without TLS required (default false). */
  insecure?: boolean;
  /** Connections served at once; more are closed at accept (default 16). */
  maxConnections?: number;
  /** A connection must reach transmission within this many ms (default 10000, as qemu-nbd; 0: no limit). */
  handshakeTimeoutMs?: number;
  /**
   * Per-connection cap on bytes received and not yet dispatched + data of
   * requests in flight + replies queued for the client (default 2 x maxPayload
   * + 1.25 MiB; at least 2 x maxPayload + 257 KiB).
   */
  maxConnectionBytes?: number;
  /**
   * Server-wide cap on what all connections hold together (same accounting as
   * maxConnectionBytes; default 256 MiB, at least maxConnectionBytes). Once
   * reached, connections stop reading new requests and READs wait until
   * another connection releases bytes; a request already partly received is
   * still read to its end, so the total can pass the cap by at most one
   * partly received request per connection.
   */
  maxServerBytes?: number;
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
  /** The Unix socket path when listening on one (host and port are then '' and 0). */
  unix?: string;
}

/** The longest handshake limit: Node's timers hold 2^31-1 ms and fire at once beyond it. */
export const MAX_HANDSHAKE_TIMEOUT_MS = 2 ** 31 - 1;

/** Server-wide figures for stats(). */
export interface NbdServerTotals {
  connections: number;
  /** Connections closed at accept because maxConnections were open. */
  refusedConnections: number;
  /** Connections dropped for not finishing the handshake in time. */
  handshakeTimeouts: number;
  /** Sum of every connection's heldBytes (bytes buffered + in flight + queued replies). */
  heldBytes: number;
  maxConnectionBytes: number;
  /** The server-wide cap on heldBytes. */
  maxServerBytes: number;
  /** Connections waiting now for room under maxServerBytes. */
  budgetWaiting: number;
}

/**
 * The listen policy: an export reachable from other machines must require TLS
 * (or be explicitly `insecure`). Returns why a configuration is refused, or null.
 */
export function listenPolicyRefusal(o: {
  host?: string;
  unix?: string;
  tls?: TlsMode;
  insecure?: boolean;
}): string | null {
  const host = o.host ?? '127.0.0.1';
  if (o.unix !== undefined || isLoopback(host) || o.tls === 'require' || o.insecure) return null;
  return (
    `refusing to listen on ${host} without TLS: anyone who can reach it could read and write the whole device. ` +
    'Require TLS with pre-shared keys (--tls require --tls-psk FILE), or pass --insecure if the network is trusted.'
  );
}

/** Whether `host` names only this machine (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1' || host === '0:0:0:0:0:0:0:1') return true;
  const v4 = host.startsWith('::ffff:') ? host.slice(7) : host;
  return net.isIPv4(v4) && v4.startsWith('127.');
}

export class NbdServer {
  readonly backend: BlockBackend;
  private readonly opts: Required<Omit<NbdServerOptions, 'backend' | 'unix' | 'psk'>> & { unix?: string };
  private readonly server: net.Server;
  private readonly conns = new Set<NbdConnection>();
  /** The same connections as an array, summed without allocating (see ServerBudget.held). */
  private connList: NbdConnection[] = [];
  private readonly budgetWaiting = new Set<NbdConnection>();
  private wakeScheduled = false;
  private readonly writes = new WriteTracker();
  private readonly cfg: ConnectionConfig;
  private nextId = 1;
  private refused = 0;
  private handshakeTimeouts = 0;
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
      unix: options.unix,
      tls: options.tls ?? 'off',
      insecure: options.insecure ?? false,
      maxConnections: options.maxConnections ?? 16,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
      maxConnectionBytes:
        options.maxConnectionBytes ?? minConnectionBytes(options.maxPayload ?? 32 * 1024 * 1024) + 1024 * 1024,
      maxServerBytes: 0,
    };
    this.opts.maxServerBytes = options.maxServerBytes ?? Math.max(256 * 1024 * 1024, this.opts.maxConnectionBytes);
    const o = this.opts;
    const tls: NbdTlsOptions = { mode: o.tls, psk: options.psk };
    checkTlsOptions(tls);
    const refusal = listenPolicyRefusal(o);
    if (refusal !== null) throw new RangeError(`NbdServer: ${refusal}`);
    if (!Number.isInteger(o.maxConnections) || o.maxConnections < 1)
      throw new RangeError('NbdServer: maxConnections must be a positive integer');
    if (
      !Number.isInteger(o.handshakeTimeoutMs) ||
      o.handshakeTimeoutMs < 0 ||
      o.handshakeTimeoutMs > MAX_HANDSHAKE_TIMEOUT_MS
    )
      throw new RangeError(`NbdServer: handshakeTimeoutMs must be an integer in 0..${MAX_HANDSHAKE_TIMEOUT_MS}`);
    if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535)
      throw new RangeError(`NbdServer: bad port ${String(o.port)}`);
    if (!Number.isInteger(o.maxPayload) || o.maxPayload < 4096 || o.maxPayload > 0xffffffff) {
      throw new RangeError('NbdServer: maxPayload must be an integer in 4096..2^32-1');
    }
    const least = minConnectionBytes(o.maxPayload);
    if (!Number.isInteger(o.maxConnectionBytes) || o.maxConnectionBytes < least)
      throw new RangeError(
        `NbdServer: maxConnectionBytes must be at least 2 x maxPayload + 257 KiB (${least} for maxPayload ${o.maxPayload})`,
      );
    if (!Number.isInteger(o.maxServerBytes) || o.maxServerBytes < o.maxConnectionBytes)
      throw new RangeError(
        `NbdServer: maxServerBytes must be an integer of at least maxConnectionBytes (${o.maxConnectionBytes})`,
      );
    if (Buffer.byteLength(o.exportName) > 4096 || o.exportName.includes('\0'))
      throw new RangeError('NbdServer: bad export name');
    this.cfg = {
      backend: this.backend,
      exportName: o.exportName,
      description: o.description,
      maxPayload: o.maxPayload,
      maxInflight: o.maxInflight,
      maxInflightBytes: o.maxInflightBytes,
      maxConnectionBytes: o.maxConnectionBytes,
      budget: {
        max: o.maxServerBytes,
        held: () => this.heldBytes(),
        wait: (c) => {
          this.budgetWaiting.add(c);
        },
        released: () => this.scheduleWake(),
      },
      handshakeTimeoutMs: o.handshakeTimeoutMs,
      tls,
      multiConn: o.multiConn,
      writes: this.writes,
      log: o.log,
      onHandshakeTimeout: () => {
        this.handshakeTimeouts++;
      },
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
    const unix = this.opts.unix;
    if (unix !== undefined)
      return listenPrivate(this.server, unix, 'NBD socket').then(() => {
        this.listening = true;
        return this.address();
      });
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
    if (typeof a === 'string') return { host: '', port: 0, unix: a };
    if (a === null) throw new Error('NbdServer: not listening');
    return { host: a.address, port: a.port };
  }

  /**
   * NBD URI of the export (for nbdinfo, nbdcopy, qemu, fio): nbd:// or
   * nbd+unix://, nbds:// / nbds+unix:// when TLS is required. With `tls`, the
   * user name and PSK file a client should present go into it.
   */
  uri(tls?: { user: string; pskFile: string }): string {
    const { host, port, unix } = this.address();
    const s = this.opts.tls === 'require' || tls ? 'nbds' : 'nbd';
    const name = encodeURIComponent(this.opts.exportName);
    const user = tls ? `${encodeURIComponent(tls.user)}@` : '';
    const query = [
      ...(unix !== undefined ? [`socket=${encodeURIComponent(unix)}`] : []),
      ...(tls ? [`tls-psk-file=${encodeURIComponent(tls.pskFile)}`] : []),
    ];
    const q = query.length > 0 ? `?${query.join('&')}` : '';
    if (unix !== undefined) return `${s}+unix://${user}/${name}${q}`;
    const h = host.includes(':') ? `[${host}]` : host;
    return `${s}://${user}${h}:${port}/${name}${q}`;
  }

  get exportName(): string {
    return this.opts.exportName;
  }

  /** Live client connections. */
  get connections(): number {
    return this.conns.size;
  }

  /** Per-connection snapshot (phase, requests in flight, bytes buffered, in flight and queued, TLS). */
  stats(): ConnectionStats[] {
    return [...this.conns].map((c) => c.stats());
  }

  /** Server-wide figures: connections, refusals, handshake timeouts, bytes held by all connections. */
  totals(): NbdServerTotals {
    const held = this.heldBytes();
    return {
      connections: this.conns.size,
      refusedConnections: this.refused,
      handshakeTimeouts: this.handshakeTimeouts,
      heldBytes: held,
      maxConnectionBytes: this.opts.maxConnectionBytes,
      maxServerBytes: this.opts.maxServerBytes,
      budgetWaiting: this.budgetWaiting.size,
    };
  }

  /** Bytes held by every connection together. */
  private heldBytes(): number {
    let held = 0;
    const list = this.connList;
    for (let i = 0; i < list.length; i++) held += list[i]!.heldBytes();
    return held;
  }

  /** Pumps the connections waiting for budget once the current turn is done (a closing one is gone by then). */
  private scheduleWake(): void {
    if (this.budgetWaiting.size === 0 || this.wakeScheduled) return;
    this.wakeScheduled = true;
    setImmediate(() => {
      this.wakeScheduled = false;
      const waiting = [...this.budgetWaiting];
      this.budgetWaiting.clear();
      for (const c of waiting) c.wake();
    });
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
    if (this.conns.size >= this.opts.maxConnections) {
      // Closed before the greeting: the client sees the connection end at once.
      this.refused++;
      this.opts.log(`nbd: refusing a connection: ${this.opts.maxConnections} connections already open`);
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
    const conn = new NbdConnection(socket, this.nextId++, this.cfg);
    this.conns.add(conn);
    this.connList = [...this.conns];
    void conn.whenClosed().then(() => {
      this.conns.delete(conn);
      this.budgetWaiting.delete(conn);
      this.connList = [...this.conns];
      this.scheduleWake();
    });
  }
}
