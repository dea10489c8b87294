// One NBD client connection: the fixed newstyle handshake (option haggling)
// and the transmission phase over one socket. Owns request dispatch to the
// backend, concurrency (pipelined requests run at once and are answered as
// they finish, each reply written whole), flow control (reading pauses while
// too many requests or bytes are in flight or the socket's send buffer is
// full), protocol-error handling (error replies; a hard disconnect when the
// stream cannot be trusted) and orderly shutdown (DISC, server close).
// Access control and limits live in the handshake: the TLS policy (STARTTLS
// upgrades the socket in place before any export is chosen, see tls.ts), the
// handshake time limit, and the per-connection byte cap on what is buffered,
// in flight and queued for the client, the server-wide budget shared by all
// connections, and the cap on options per handshake.
// Page-aligned READ and WRITE requests to a backend with page callbacks take
// the fast path: the decoder fills a reused request record, a pooled record
// carries the request while it is in flight, no promise, the write payload
// handed on as received, requests decoded from one socket read are submitted
// as one plugged burst, and the replies (a read's data copied in behind its
// header) are built in a reused reply slab and leave in one socket write per
// burst of completions.

import type { Socket } from 'node:net';
import * as nbd from './protocol.js';
import {
  hasPageCallbacks,
  nbdErrorName,
  nbdErrorOf,
  type BlockBackend,
  type PageCallbackBackend,
  type WriteTracker,
} from './backend.js';
import { ReplySlab } from './reply-slab.js';
import { socketErrorCode, upgradeToTls, type NbdTlsOptions } from './tls.js';

const PAGE = 4096;

/** A fast-path READ or WRITE in flight (pooled per connection): what its reply needs. */
class FastOp {
  type = 0;
  cookieHi = 0;
  cookieLo = 0;
  offset = 0;
  length = 0;
  /** A WRITE's WriteTracker epoch. */
  epoch = 0;
}

/** What a connection needs from its server. */
export interface ConnectionConfig {
  readonly backend: BlockBackend;
  /** Canonical export name (also accepted: ""). */
  readonly exportName: string;
  readonly description: string;
  /** Largest READ/WRITE/... length accepted (also advertised as the maximum block size). */
  readonly maxPayload: number;
  readonly maxInflight: number;
  readonly maxInflightBytes: number;
  /**
   * Cap on the bytes one connection holds: request bytes received and not yet
   * dispatched, data of requests in flight, replies queued for the client.
   * Reading pauses while fewer than INPUT_SLACK bytes are left under it, and a
   * request is started only if its data and reply fit (see fits()), so the
   * total stays under the cap. At least minConnectionBytes(maxPayload).
   */
  readonly maxConnectionBytes: number;
  /** The server-wide cap on what every connection holds together. */
  readonly budget: ServerBudget;
  /** A connection not in transmission after this many ms is dropped (0: no limit). */
  readonly handshakeTimeoutMs: number;
  /** Called when a connection is dropped for running out of handshake time. */
  onHandshakeTimeout(): void;
  readonly tls: NbdTlsOptions;
  readonly multiConn: boolean;
  readonly writes: WriteTracker;
  readonly log: (msg: string) => void;
  /** Also log each handshake step and connection end. */
  readonly debug: boolean;
  /** True once the server is shutting down (options get NBD_REP_ERR_SHUTDOWN). */
  shuttingDown(): boolean;
}

/**
 * The server-wide byte budget the connections share: bytes held (as in
 * heldBytes) by every connection together. A connection stops reading new
 * requests and defers READs whose data would not fit, and waits to be woken
 * when another connection releases bytes.
 */
export interface ServerBudget {
  readonly max: number;
  /** Bytes held by every connection now. */
  held(): number;
  /** `c` waits for room; it is pumped again when bytes are released. */
  wait(c: NbdConnection): void;
  /** Some connection released bytes (a request finished, replies drained, a connection closed). */
  released(): void;
}

const HANDSHAKE_FLAGS = nbd.NBD_FLAG_FIXED_NEWSTYLE | nbd.NBD_FLAG_NO_ZEROES;
/** Command flags each command accepts (FUA on all: clients are known to send it everywhere). */
const ALLOWED_FLAGS: Record<number, number> = {
  [nbd.NBD_CMD_READ]: nbd.NBD_CMD_FLAG_FUA | nbd.NBD_CMD_FLAG_DF,
  [nbd.NBD_CMD_WRITE]: nbd.NBD_CMD_FLAG_FUA,
  [nbd.NBD_CMD_DISC]: nbd.NBD_CMD_FLAG_FUA,
  [nbd.NBD_CMD_FLUSH]: nbd.NBD_CMD_FLAG_FUA,
  [nbd.NBD_CMD_TRIM]: nbd.NBD_CMD_FLAG_FUA,
  [nbd.NBD_CMD_WRITE_ZEROES]: nbd.NBD_CMD_FLAG_FUA | nbd.NBD_CMD_FLAG_NO_HOLE,
};

type Phase = 'handshake' | 'transmission' | 'closing' | 'closed';

/**
 * What may still arrive after reading pauses: the stream's read-ahead (its
 * high-water mark, 64 KiB at most here) plus one socket read (libuv reads
 * 64 KiB at most; TLS records are smaller).
 */
export const INPUT_SLACK = 128 * 1024;
/** Options one connection may send before it is closed (nbdkit's limit). */
export const MAX_OPTIONS = 32;
/** Replies held for one socket write at most, while more completions are on their way (see onCompletionBatch). */
const REPLY_BATCH = 8;
/** Completion batches a reply may be held over. */
const REPLY_HOLD = 4;
/** Room kept per request for its reply's header and error message. */
const REPLY_RESERVE = 1024;

/**
 * The smallest per-connection byte cap that can always make progress: a whole
 * WRITE still arriving (header + maxPayload) plus what may arrive after a
 * pause, plus one request of maxPayload started when nothing else is held.
 */
export function minConnectionBytes(maxPayload: number): number {
  return 2 * maxPayload + 2 * INPUT_SLACK + REPLY_RESERVE;
}

export interface ConnectionStats {
  id: number;
  phase: Phase;
  /** Structured replies negotiated. */
  structured: boolean;
  /** Requests being served now. */
  inflight: number;
  /** Their data bytes (READ lengths and WRITE payloads). */
  inflightBytes: number;
  /** Requests answered so far. */
  requests: number;
  /** Reply bytes queued in the socket, not yet handed to the kernel. */
  queuedReplyBytes: number;
  /** Bytes received and not yet decoded or dispatched (e.g. a WRITE whose payload is still arriving). */
  bufferedBytes: number;
  /** bufferedBytes + inflightBytes + queuedReplyBytes: what maxConnectionBytes caps. */
  heldBytes: number;
  /** TLS negotiated (STARTTLS), and the PSK user it authenticated. */
  tls: boolean;
  tlsUser: string | null;
}

export class NbdConnection {
  /**
   * The socket the protocol runs over: the plaintext one, replaced by the TLS
   * socket when STARTTLS upgrades it (handshake phase only; see startTls).
   * Not to be assigned from outside.
   */
  socket: Socket;
  readonly id: number;
  private readonly cfg: ConnectionConfig;
  private readonly decoder: nbd.ServerDecoder;
  private phase: Phase = 'handshake';
  private noZeroes = false;
  private structured = false;
  private inflight = 0;
  private inflightBytes = 0;
  private needDrain = false;
  private pumping = false;
  private readonly closed: Promise<void>;
  private killTimer: NodeJS.Timeout | null = null;
  private handshakeTimer: NodeJS.Timeout | null = null;
  private resolveClosed: () => void = () => {};
  /** The TLS user once STARTTLS has completed; null in plaintext. */
  private tlsUser: string | null = null;
  /** STARTTLS acknowledged, TLS handshake not done yet: nothing else is read. */
  private upgrading = false;
  /** A decoded request waiting for room under maxConnectionBytes (its WRITE payload is held), when `hasDeferred`. */
  private readonly deferred = new nbd.RequestRecord();
  private hasDeferred = false;
  /** A completion or a reply arrived while pump() ran: pump again before returning. */
  private repump = false;
  /** Options received in the handshake (capped at MAX_OPTIONS). */
  private options = 0;
  /** Requests answered, for stats. */
  requests = 0;
  /** The backend's page-callback path, when it has one. */
  private readonly fast: PageCallbackBackend | null;
  private readonly slab = new ReplySlab();
  private readonly spareOps: FastOp[] = [];
  /** Unregisters flushReplies from the backend's completion batches. */
  private readonly unhook: (() => void) | null;
  /** A flush of the reply slab is scheduled for the next tick (backends without completion batches). */
  private flushScheduled = false;
  /** A fast-path completion callback is running (its batch end flushes the replies). */
  private completing = false;
  /** Completion batches the replies in the slab have been held over (see onCompletionBatch). */
  private heldBatches = 0;

  constructor(socket: Socket, id: number, cfg: ConnectionConfig) {
    this.socket = socket;
    this.id = id;
    this.cfg = cfg;
    this.decoder = new nbd.ServerDecoder({ maxPayload: cfg.maxPayload });
    this.fast = hasPageCallbacks(cfg.backend) ? cfg.backend : null;
    this.unhook = this.fast?.onCompletionBatch?.(this.onCompletionBatch) ?? null;
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    socket.setNoDelay(true);
    this.attach(socket);
    if (cfg.handshakeTimeoutMs > 0) {
      this.handshakeTimer = setTimeout(() => {
        this.cfg.log(`nbd[${this.id}]: handshake not finished within ${cfg.handshakeTimeoutMs} ms; dropping`);
        cfg.onHandshakeTimeout();
        this.socket.destroy();
      }, cfg.handshakeTimeoutMs);
      this.handshakeTimer.unref();
    }
    this.send(nbd.encodeGreeting(HANDSHAKE_FLAGS));
  }

  /** Routes a socket's events into this connection (the plaintext one, then the TLS one). */
  private attach(socket: Socket): void {
    socket.on('data', (chunk: Buffer) => {
      this.decoder.push(chunk);
      this.pump();
    });
    socket.on('drain', () => {
      this.needDrain = false;
      this.pump();
      this.cfg.budget.released();
    });
    // By code only: a TLS error's message may quote key bytes.
    socket.on('error', (e) => this.cfg.log(`nbd[${this.id}]: socket error: ${socketErrorCode(e)}`));
    socket.once('close', () => {
      // After STARTTLS the plaintext socket's close ends the TLS one too.
      if (socket !== this.socket) this.socket.destroy();
      this.phase = 'closed';
      this.decoder.kill();
      this.unhook?.();
      if (this.killTimer) clearTimeout(this.killTimer);
      if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
      this.resolveClosed();
      this.cfg.budget.released();
    });
  }

  /** A snapshot for diagnostics and tests. */
  stats(): ConnectionStats {
    return {
      id: this.id,
      phase: this.phase,
      structured: this.structured,
      inflight: this.inflight,
      inflightBytes: this.inflightBytes,
      requests: this.requests,
      queuedReplyBytes: this.socket.writableLength,
      bufferedBytes: this.inputBytes(),
      heldBytes: this.heldBytes(),
      tls: this.tlsUser !== null,
      tlsUser: this.tlsUser,
    };
  }

  /**
   * What the connection holds now: input read and not yet dispatched (in the
   * stream, in the decoder, a deferred WRITE's payload), data of requests in
   * flight, replies queued for the client.
   */
  heldBytes(): number {
    return this.inputBytes() + this.inflightBytes + this.socket.writableLength;
  }

  /** Input read and not yet dispatched: in the stream, in the decoder, a deferred WRITE's payload. */
  private inputBytes(): number {
    const held = this.hasDeferred ? (this.deferred.payload?.length ?? 0) : 0;
    return this.socket.readableLength + this.decoder.buffered + held;
  }

  /**
   * Whether a request may start: its data (a READ's reply data; a WRITE's
   * payload is already held) and its reply fit under the cap. With nothing in
   * flight or queued it always may, or the connection could never move
   * (minConnectionBytes makes that fit too).
   */
  private fits(r: nbd.RequestRecord): boolean {
    // A READ over maxPayload is refused without data, so it takes no room.
    const data = r.type === nbd.NBD_CMD_READ && r.length <= this.cfg.maxPayload ? r.length : 0;
    // A READ waiting for server-wide room holds no payload, so waiting cannot deadlock.
    if (data > 0 && this.serverFull(data + REPLY_RESERVE)) return false;
    if (this.inflight === 0 && this.socket.writableLength === 0) return true;
    return this.heldBytes() + data + REPLY_RESERVE <= this.cfg.maxConnectionBytes;
  }

  /** Whether `extra` more bytes would take every connection together over the server budget (then this one waits). */
  private serverFull(extra: number): boolean {
    const b = this.cfg.budget;
    if (b.held() + extra <= b.max) return false;
    b.wait(this);
    return true;
  }

  /** Room under the server budget was released: try again. */
  wake(): void {
    if (this.phase === 'handshake' || this.phase === 'transmission') this.pump();
  }

  /** Resolves when the socket has closed. */
  whenClosed(): Promise<void> {
    return this.closed;
  }

  /**
   * Server shutdown: stop reading requests, let the ones in flight finish and
   * be answered, then close. A connection still haggling is closed at once.
   */
  shutdown(): Promise<void> {
    if (this.phase === 'handshake') {
      this.socket.destroy();
    } else {
      this.finish('server shutdown');
    }
    return this.closed;
  }

  // ---------------------------------------------------------------- input

  /**
   * Decodes and starts requests until the input runs dry or a limit says
   * wait. Requests started here reach a page backend as one plugged burst;
   * completions and replies that arrive meanwhile (a request run inline)
   * make it go round again, and the replies built leave in one write.
   */
  private pump(): void {
    if (this.pumping) {
      this.repump = true;
      return;
    }
    this.pumping = true;
    const fast = this.fast;
    try {
      do {
        this.repump = false;
        fast?.plug?.();
        try {
          this.pumpOnce();
        } finally {
          fast?.unplug?.();
        }
      } while (this.repump && (this.phase === 'handshake' || this.phase === 'transmission'));
    } finally {
      this.pumping = false;
    }
    // inside a completion callback the backend's completion batch decides when replies leave
    if (!this.completing) this.flushReplies();
  }

  private pumpOnce(): void {
    while (this.phase === 'handshake' || this.phase === 'transmission') {
      if (this.upgrading) return;
      if (this.hasDeferred) {
        if (!this.fits(this.deferred)) {
          this.socket.pause();
          return;
        }
        this.hasDeferred = false;
        this.handleRequest(this.deferred);
        this.deferred.payload = null;
        continue;
      }
      if (this.congested()) {
        this.socket.pause();
        return;
      }
      if (this.phase === 'transmission') {
        const r = this.decoder.decodeRequest();
        if (r === nbd.DECODE_MORE) break;
        if (r === nbd.DECODE_FATAL) {
          this.protocolViolation(this.decoder.fatalReason);
          continue;
        }
        const req = this.decoder.request;
        if (!this.fits(req)) {
          this.deferred.copyFrom(req);
          this.hasDeferred = true;
          continue;
        }
        this.handleRequest(req);
        continue;
      }
      const ev = this.decoder.next();
      if (ev === null) break;
      this.handle(ev);
    }
    if (this.phase === 'handshake' || this.phase === 'transmission') this.socket.resume();
  }

  /**
   * Reading waits while replies back up in the socket (also option replies: a
   * client may flood LIST), too much is in flight, or the connection holds
   * within one socket read of its byte cap.
   */
  private congested(): boolean {
    return (
      this.needDrain ||
      this.inflight >= this.cfg.maxInflight ||
      this.inflightBytes >= this.cfg.maxInflightBytes ||
      this.heldBytes() + INPUT_SLACK > this.cfg.maxConnectionBytes ||
      // A request already partly received is read to its end (else connections each
      // holding part of a WRITE could wait on each other forever).
      (this.decoder.buffered === 0 && this.serverFull(INPUT_SLACK))
    );
  }

  private handle(ev: nbd.ServerEvent): void {
    switch (ev.kind) {
      case 'client-flags': {
        const bad = nbd.checkClientFlags(ev.flags, HANDSHAKE_FLAGS);
        if (bad !== null) return this.hardDisconnect(bad);
        this.noZeroes = (ev.flags & nbd.NBD_FLAG_C_NO_ZEROES) !== 0;
        if (this.cfg.debug) this.cfg.log(`nbd[${this.id}]: client flags 0x${ev.flags.toString(16)}`);
        return;
      }
      case 'option':
        return this.handleOption(ev.option, ev.data);
      case 'request': {
        // a request queued behind the option that started transmission
        const r = new nbd.RequestRecord();
        Object.assign(r, ev.request);
        r.payload = ev.payload ?? null;
        r.oversized = ev.oversized === true;
        return this.handleRequest(r);
      }
      case 'fatal':
        return this.protocolViolation(ev.reason);
    }
  }

  // ---------------------------------------------------------------- handshake

  private transmissionFlags(): number {
    let f =
      nbd.NBD_FLAG_HAS_FLAGS |
      nbd.NBD_FLAG_SEND_FLUSH |
      nbd.NBD_FLAG_SEND_FUA |
      nbd.NBD_FLAG_SEND_TRIM |
      nbd.NBD_FLAG_SEND_WRITE_ZEROES;
    if (this.cfg.multiConn) f |= nbd.NBD_FLAG_CAN_MULTI_CONN;
    if (this.structured) f |= nbd.NBD_FLAG_SEND_DF; // a READ reply is always one content chunk
    return f;
  }

  private exportMatches(name: string): boolean {
    return name === this.cfg.exportName || name === '';
  }

  private handleOption(option: number, data: Buffer): void {
    if (++this.options > MAX_OPTIONS) return this.hardDisconnect(`more than ${MAX_OPTIONS} options in the handshake`);
    const p = nbd.parseOption(option, data);
    if (this.cfg.debug) this.cfg.log(`nbd[${this.id}]: option ${optionName(option)} ${describeOption(p)}`);
    if (this.cfg.shuttingDown() && p.kind !== 'abort') {
      if (p.kind === 'export-name') return this.hardDisconnect('server shutting down');
      this.send(nbd.encodeOptionReply(option, nbd.NBD_REP_ERR_SHUTDOWN, 'server is shutting down'));
      return;
    }
    if (p.kind === 'starttls') return this.startTls(option);
    if (this.cfg.tls.mode === 'require' && this.tlsUser === null && p.kind !== 'abort') {
      // Nothing about the export before TLS; EXPORT_NAME has no error reply, so it ends the session.
      if (p.kind === 'export-name') return this.hardDisconnect('NBD_OPT_EXPORT_NAME before STARTTLS (TLS required)');
      this.send(nbd.encodeOptionReply(option, nbd.NBD_REP_ERR_TLS_REQD, 'TLS is required: send NBD_OPT_STARTTLS'));
      return;
    }
    switch (p.kind) {
      case 'export-name': {
        // No way to return an error here: an unknown export ends the session.
        if (!this.exportMatches(p.name))
          return this.hardDisconnect(`unknown export "${p.name}" in NBD_OPT_EXPORT_NAME`);
        this.send(nbd.encodeExportNameReply(this.cfg.backend.size, this.transmissionFlags(), this.noZeroes));
        return this.startTransmission();
      }
      case 'abort':
        this.send(nbd.encodeOptionReply(option, nbd.NBD_REP_ACK));
        return this.endSoon();
      case 'list':
        this.send(nbd.encodeServerReply(this.cfg.exportName, this.cfg.description));
        this.send(nbd.encodeOptionReply(option, nbd.NBD_REP_ACK));
        return;
      case 'info':
      case 'go': {
        if (!this.exportMatches(p.name)) {
          this.send(
            nbd.encodeOptionReply(
              option,
              nbd.NBD_REP_ERR_UNKNOWN,
              `unknown export "${p.name}" (this server exports "${this.cfg.exportName}")`,
            ),
          );
          return;
        }
        this.send(nbd.encodeInfoExport(option, this.cfg.backend.size, this.transmissionFlags()));
        if (p.requests.includes(nbd.NBD_INFO_NAME))
          this.send(nbd.encodeInfoString(option, nbd.NBD_INFO_NAME, this.cfg.exportName));
        if (p.requests.includes(nbd.NBD_INFO_DESCRIPTION))
          this.send(nbd.encodeInfoString(option, nbd.NBD_INFO_DESCRIPTION, this.cfg.description));
        // Any alignment works (zram does read-modify-write of partial pages); 4 KiB is best.
        this.send(nbd.encodeInfoBlockSize(option, 1, 4096, this.cfg.maxPayload));
        this.send(nbd.encodeOptionReply(option, nbd.NBD_REP_ACK));
        if (p.kind === 'go') this.startTransmission();
        return;
      }
      case 'structured-reply':
        this.structured = true;
        this.send(nbd.encodeOptionReply(option, nbd.NBD_REP_ACK));
        return;
      case 'unsupported':
        this.send(nbd.encodeOptionReply(option, nbd.NBD_REP_ERR_UNSUP, `option ${option} is not supported`));
        return;
      case 'invalid':
        this.send(nbd.encodeOptionReply(option, nbd.NBD_REP_ERR_INVALID, p.message));
        return;
    }
  }

  /**
   * NBD_OPT_STARTTLS: acknowledge in plaintext, then run the TLS handshake on
   * the same socket; option haggling resumes over TLS. Bytes that arrived
   * after the STARTTLS option in plaintext would be read as if they came over
   * TLS (an injection), so their presence ends the session.
   */
  private startTls(option: number): void {
    if (this.cfg.tls.mode === 'off') {
      this.send(nbd.encodeOptionReply(option, nbd.NBD_REP_ERR_UNSUP, 'TLS is not enabled on this server'));
      return;
    }
    if (this.tlsUser !== null) {
      this.send(nbd.encodeOptionReply(option, nbd.NBD_REP_ERR_INVALID, 'TLS is already negotiated'));
      return;
    }
    if (this.decoder.buffered > 0 || this.socket.readableLength > 0)
      return this.hardDisconnect('plaintext data after NBD_OPT_STARTTLS');
    const raw = this.socket;
    raw.write(nbd.encodeOptionReply(option, nbd.NBD_REP_ACK));
    raw.removeAllListeners('data');
    raw.removeAllListeners('drain');
    raw.pause();
    this.upgrading = true;
    const ts = upgradeToTls(raw, this.cfg.tls, (user) => {
      this.tlsUser = user;
      this.upgrading = false;
      this.resetNegotiated();
      if (this.cfg.debug) this.cfg.log(`nbd[${this.id}]: TLS ${ts.getProtocol()} as "${user}"`);
      this.pump();
    });
    this.socket = ts;
    this.attach(ts);
  }

  /**
   * Forgets every option negotiated in plaintext once TLS is up: a man in the
   * middle could have sent or answered them, so they must be negotiated again
   * over TLS (the NBD spec's rule after STARTTLS; nbdkit's CVE-2021-3716 kept
   * structured replies across it). The client flags from before option
   * haggling are not an option and stay.
   */
  private resetNegotiated(): void {
    this.structured = false;
  }

  private startTransmission(): void {
    if (this.handshakeTimer) {
      clearTimeout(this.handshakeTimer);
      this.handshakeTimer = null;
    }
    if (this.cfg.debug)
      this.cfg.log(
        `nbd[${this.id}]: transmission, flags 0x${this.transmissionFlags().toString(16)}${this.structured ? ', structured replies' : ''}`,
      );
    this.phase = 'transmission';
    this.decoder.enterTransmission();
  }

  // ---------------------------------------------------------------- transmission

  /** Starts (or refuses) one request; `req` is reused after this returns, so whatever outlives the call is copied. */
  private handleRequest(req: nbd.RequestRecord): void {
    const { type, flags, offset, length, payload } = req;
    if (type === nbd.NBD_CMD_DISC) return this.finish(this.cfg.debug ? 'client sent NBD_CMD_DISC' : null);
    const allowed = ALLOWED_FLAGS[type];
    if (allowed === undefined) return this.replyError(req, nbd.NBD_EINVAL, `unknown command ${type}`);
    if (req.oversized) {
      // The data of this WRITE was never read, so the stream has lost its framing:
      // answer, then close once everything in flight is answered.
      this.replyError(req, nbd.NBD_EINVAL, `request length ${length} exceeds the maximum ${this.cfg.maxPayload}`);
      return this.finish(`WRITE of ${length} bytes exceeds the maximum payload`);
    }
    if ((flags & ~allowed) !== 0)
      return this.replyError(
        req,
        nbd.NBD_EINVAL,
        `command flags 0x${flags.toString(16)} not valid for command ${type}`,
      );
    if (type === nbd.NBD_CMD_FLUSH) return this.run(copyRequest(req), 0, this.doFlush());
    if (length > this.cfg.maxPayload && type !== nbd.NBD_CMD_TRIM && type !== nbd.NBD_CMD_WRITE_ZEROES) {
      return this.replyError(
        req,
        nbd.NBD_EINVAL,
        `request length ${length} exceeds the maximum ${this.cfg.maxPayload}`,
      );
    }
    const size = this.cfg.backend.size;
    if (offset > size || length > size - offset) {
      return this.replyError(
        req,
        nbd.NBD_EINVAL,
        `range [${offset}, +${length}) is outside the export (${size} bytes)`,
      );
    }
    const fua = (flags & nbd.NBD_CMD_FLAG_FUA) !== 0;
    const fast = this.fast;
    if (fast !== null && length > 0 && offset % PAGE === 0 && length % PAGE === 0) {
      if (type === nbd.NBD_CMD_READ && length <= fast.callbackReadMax) return this.fastRead(fast, req);
      if (type === nbd.NBD_CMD_WRITE && !fua) return this.fastWrite(fast, req, payload!);
    }
    this.general(copyRequest(req), payload, fua);
  }

  /** The promise path: everything but page-aligned READ/WRITE to a page backend. */
  private general(req: nbd.NbdRequest, payload: Buffer | null, fua: boolean): void {
    const { type, offset, length } = req;
    const backend = this.cfg.backend;
    switch (type) {
      case nbd.NBD_CMD_READ:
        return this.run(
          req,
          length,
          call(() => backend.read(offset, length)),
        );
      case nbd.NBD_CMD_WRITE:
        return this.run(
          req,
          length,
          this.doWrite(
            call(() => backend.write(offset, payload!)),
            fua,
          ),
        );
      case nbd.NBD_CMD_TRIM:
        return this.run(
          req,
          0,
          this.doWrite(
            call(() => backend.trim(offset, length)),
            fua,
          ),
        );
      case nbd.NBD_CMD_WRITE_ZEROES:
        return this.run(
          req,
          0,
          this.doWrite(
            call(() => backend.writeZeroes(offset, length)),
            fua,
          ),
        );
    }
  }

  private async doWrite(op: Promise<void>, fua: boolean): Promise<void> {
    await this.cfg.writes.track(op);
    if (fua) await this.cfg.backend.flush();
  }

  private async doFlush(): Promise<void> {
    await this.cfg.writes.drain();
    await this.cfg.backend.flush();
  }

  /** Accounts one request in flight and answers it when `op` settles. */
  private run(req: nbd.NbdRequest, bytes: number, op: Promise<Uint8Array | undefined> | Promise<void>): void {
    this.inflight++;
    this.inflightBytes += bytes;
    op.then(
      (data) => {
        if (req.type !== nbd.NBD_CMD_READ) this.replyOk(req);
        else if (data instanceof Uint8Array && data.length === req.length) this.replyData(req, data);
        else
          this.replyError(
            req,
            nbd.NBD_EIO,
            `backend returned ${data instanceof Uint8Array ? data.length : typeof data} bytes for a read of ${req.length}`,
          );
        this.done(bytes);
      },
      (err: unknown) => {
        this.replyFailure(req, err);
        this.done(bytes);
      },
    );
  }

  // ---------------------------------------------------------------- fast path

  private fastOp(req: nbd.RequestRecord): FastOp {
    const op = this.spareOps.pop() ?? new FastOp();
    op.type = req.type;
    op.cookieHi = req.cookieHi;
    op.cookieLo = req.cookieLo;
    op.offset = req.offset;
    op.length = req.length;
    this.inflight++;
    this.inflightBytes += req.length;
    return op;
  }

  private fastRead(fast: PageCallbackBackend, req: nbd.RequestRecord): void {
    const op = this.fastOp(req);
    try {
      fast.readPagesCb(op.offset, op.length, this.onFastRead, op);
    } catch (e) {
      this.onFastRead(op, e instanceof Error ? e : new Error(String(e)), null);
    }
  }

  private readonly onFastRead = (ctx: unknown, err: Error | null, data: Uint8Array | null): void => {
    const op = ctx as FastOp;
    if (err !== null || data === null) this.replyFailure(op, err ?? new Error('no data'));
    else {
      this.requests++;
      if (this.writable()) this.readReply(op, data);
    }
    this.fastDone(op);
  };

  /** A READ's reply with its data, into the slab (the data is valid only during the callback). */
  private readReply(op: FastOp, data: Uint8Array): void {
    this.reserve(ReplySlab.readSize(this.structured, data.length));
    this.slab.readData(this.structured, op.cookieHi, op.cookieLo, op.offset, data);
    this.repliesQueued();
  }

  private fastWrite(fast: PageCallbackBackend, req: nbd.RequestRecord, payload: Buffer): void {
    const op = this.fastOp(req);
    op.epoch = this.cfg.writes.begin();
    try {
      fast.writePagesCb(op.offset, payload, this.onFastWrite, op);
    } catch (e) {
      this.onFastWrite(op, e instanceof Error ? e : new Error(String(e)));
    }
  }

  private readonly onFastWrite = (ctx: unknown, err: Error | null): void => {
    const op = ctx as FastOp;
    this.cfg.writes.end(op.epoch);
    if (err !== null) this.replyFailure(op, err);
    else this.replyOk(op);
    this.fastDone(op);
  };

  private fastDone(op: FastOp): void {
    const bytes = op.length;
    this.spareOps.push(op);
    const outer = this.completing;
    this.completing = this.unhook !== null;
    try {
      this.done(bytes);
    } finally {
      this.completing = outer;
    }
  }

  private replyFailure(req: nbd.NbdRequest | FastOp, err: unknown): void {
    const error = nbdErrorOf(err);
    const msg = err instanceof Error ? err.message : String(err);
    if (error === nbd.NBD_EIO)
      this.cfg.log(`nbd[${this.id}]: I/O error on command ${req.type} [${req.offset}, +${req.length}): ${msg}`);
    this.replyError(req, error, msg);
  }

  private done(bytes: number): void {
    this.inflight--;
    this.inflightBytes -= bytes;
    if (this.phase === 'closing') {
      this.flushReplies();
      this.maybeEnd();
    } else this.pump();
    this.cfg.budget.released();
  }

  // ---------------------------------------------------------------- replies

  private replyOk(req: nbd.NbdRequest | FastOp): void {
    this.requests++;
    this.simpleReply(0, req);
  }

  /** A simple reply (no data) through the slab, leaving with its burst. */
  private simpleReply(error: number, req: nbd.NbdRequest | FastOp): void {
    if (!this.writable()) return;
    this.reserve(nbd.SIMPLE_REPLY_SIZE);
    this.slab.simple(error, req.cookieHi, req.cookieLo);
    this.repliesQueued();
  }

  private replyData(req: nbd.NbdRequest, data: Uint8Array): void {
    this.requests++;
    if (!this.structured) {
      this.send2(nbd.encodeSimpleReply(0, req.cookieHi, req.cookieLo), data);
    } else if (data.length === 0) {
      this.send(nbd.encodeNoneChunk(req.cookieHi, req.cookieLo));
    } else {
      this.send2(nbd.encodeOffsetDataHeader(true, req.cookieHi, req.cookieLo, req.offset, data.length), data);
    }
  }

  private replyError(req: nbd.NbdRequest | FastOp, error: number, message: string): void {
    this.requests++;
    if (this.structured) {
      this.send(nbd.encodeErrorChunk(true, req.cookieHi, req.cookieLo, error, `${nbdErrorName(error)}: ${message}`));
    } else {
      // A simple error reply carries no data, not even for a READ.
      this.simpleReply(error, req);
    }
  }

  private writable(): boolean {
    const s = this.socket;
    return !s.destroyed && !s.writableEnded;
  }

  /** Room in the slab for a reply of n bytes, writing out the pending replies if they fill it. */
  private reserve(n: number): void {
    if (this.slab.reserve(n, this.socket.writableLength === 0)) return;
    this.flushReplies();
    this.slab.reserve(n, false);
  }

  /**
   * A reply was built in the slab. It leaves with the others of its burst:
   * at the end of pump(), at the end of the backend's completion batch, or
   * (a backend without completion batches) on the next tick.
   */
  private repliesQueued(): void {
    if (this.pumping) {
      this.repump = true;
      return;
    }
    if (this.unhook !== null || this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(this.flushReplies);
  }

  /**
   * The backend delivered a batch of completions. Their replies leave now,
   * unless requests of this connection are still in flight in the backend,
   * fewer than REPLY_BATCH replies wait and they have waited fewer than
   * REPLY_HOLD batches: then a later batch takes them along (one socket write
   * for several batches). A reply so waits for at most REPLY_HOLD - 1 more
   * completion batches.
   */
  private readonly onCompletionBatch = (more: boolean): void => {
    if (this.slab.replies === 0) return;
    if (!more || this.inflight === 0 || this.slab.replies >= REPLY_BATCH || ++this.heldBatches >= REPLY_HOLD)
      this.flushReplies();
  };

  /** Writes every reply built in the slab since the last flush, in one socket write. */
  private readonly flushReplies = (): void => {
    this.flushScheduled = false;
    this.heldBatches = 0;
    const b = this.slab.flushed();
    if (b === null || !this.writable()) return;
    if (!this.socket.write(b)) this.needDrain = true;
  };

  /** A reply built apart from the slab: the slab's pending replies go first, each reply stays whole. */
  private send(buf: Uint8Array): void {
    if (!this.writable()) return;
    this.flushReplies();
    if (!this.socket.write(buf)) this.needDrain = true;
  }

  /** A header and its data as one reply: nothing can come between them. */
  private send2(header: Uint8Array, data: Uint8Array): void {
    const s = this.socket;
    if (!this.writable()) return;
    this.flushReplies();
    s.cork();
    s.write(header);
    const ok = s.write(data);
    s.uncork();
    if (!ok || s.writableNeedDrain) this.needDrain = true;
  }

  // ---------------------------------------------------------------- ending

  /** Stops reading; closes the socket once every request in flight is answered. */
  private finish(why: string | null): void {
    if (this.phase === 'closing' || this.phase === 'closed') return;
    if (why !== null) this.cfg.log(`nbd[${this.id}]: closing: ${why}`);
    this.phase = 'closing';
    this.decoder.kill();
    this.maybeEnd();
  }

  private maybeEnd(): void {
    if (this.inflight > 0 || this.socket.writableEnded) return;
    this.endSoon();
  }

  /** A violation that makes the rest of the stream meaningless (bad magic): answer what is in flight, then close. */
  private protocolViolation(reason: string): void {
    this.cfg.log(`nbd[${this.id}]: protocol violation: ${reason}`);
    if (this.phase === 'handshake') return this.hardDisconnect(reason);
    this.finish(reason);
  }

  private hardDisconnect(reason: string): void {
    this.cfg.log(`nbd[${this.id}]: disconnecting: ${reason}`);
    this.endSoon();
  }

  /** Stops reading, sends what is queued, closes; a peer that keeps its side open is cut off after 2 s. */
  private endSoon(): void {
    this.flushReplies();
    this.phase = 'closing';
    this.decoder.kill();
    this.socket.resume();
    this.socket.end();
    this.killTimer = setTimeout(() => this.socket.destroy(), 2000);
    this.killTimer.unref();
  }
}

const OPTION_NAMES: Record<number, string> = {
  [nbd.NBD_OPT_EXPORT_NAME]: 'EXPORT_NAME',
  [nbd.NBD_OPT_ABORT]: 'ABORT',
  [nbd.NBD_OPT_LIST]: 'LIST',
  [nbd.NBD_OPT_STARTTLS]: 'STARTTLS',
  [nbd.NBD_OPT_INFO]: 'INFO',
  [nbd.NBD_OPT_GO]: 'GO',
  [nbd.NBD_OPT_STRUCTURED_REPLY]: 'STRUCTURED_REPLY',
  [nbd.NBD_OPT_LIST_META_CONTEXT]: 'LIST_META_CONTEXT',
  [nbd.NBD_OPT_SET_META_CONTEXT]: 'SET_META_CONTEXT',
  [nbd.NBD_OPT_EXTENDED_HEADERS]: 'EXTENDED_HEADERS',
};

function optionName(option: number): string {
  return OPTION_NAMES[option] ?? String(option);
}

function describeOption(p: nbd.ParsedOption): string {
  switch (p.kind) {
    case 'export-name':
      return `"${p.name}"`;
    case 'info':
    case 'go':
      return `"${p.name}" info requests [${p.requests.join(', ')}]`;
    case 'unsupported':
      return '(unsupported)';
    case 'invalid':
      return `(invalid: ${p.message})`;
    default:
      return '';
  }
}

/** A request's header fields, to keep past the decoder's next request. */
function copyRequest(r: nbd.NbdRequest): nbd.NbdRequest {
  return {
    flags: r.flags,
    type: r.type,
    cookieHi: r.cookieHi,
    cookieLo: r.cookieLo,
    offset: r.offset,
    length: r.length,
  };
}

/** Runs a backend call, turning a synchronous throw into a rejection. */
function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return fn();
  } catch (e) {
    return Promise.reject(e);
  }
}
