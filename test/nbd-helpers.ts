// Helpers for the NBD tests with real clients: an in-process NbdServer over a
// ZramDevice on 127.0.0.1 (ephemeral port), spawning client binaries, and a
// small raw-socket NBD client (built on the codec's client-side encoders)
// for the tests that must send what no real client sends.
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { ZramDevice } from '@zsmalloc/zram';
import { NbdServer, ZramDeviceBackend, nbd, type NbdServerOptions } from '@zsmalloc/workers/nbd';

export { nbd };

/** True when `bin` is on PATH. */
export function have(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Null when every client is on PATH; otherwise the skip message naming what to
 * install. With REQUIRE_NBD_CLIENTS=1 (set by .ci/run, which installs them) a
 * missing client is an error instead of a skip.
 */
export function missing(...bins: string[]): string | null {
  const gone = bins.filter((b) => !have(b));
  if (gone.length === 0) return null;
  const msg = `skipped: ${gone.join(', ')} not installed (apt-get install libnbd-bin qemu-utils fio nbdkit)`;
  if (process.env.REQUIRE_NBD_CLIENTS === '1') throw new Error(`REQUIRE_NBD_CLIENTS=1 but ${msg}`);
  console.warn(msg);
  return msg;
}

export interface Served {
  server: NbdServer;
  dev: ZramDevice;
  port: number;
  uri: string;
  logs: string[];
  close(): Promise<void>;
}

export async function serve(
  opts: { disksize: number; memLimit?: number; algorithm?: string } & Partial<NbdServerOptions>,
): Promise<Served> {
  const { disksize, memLimit, algorithm, ...rest } = opts;
  const dev = ZramDevice.create({ disksize, memLimit, algorithm: algorithm ?? 'lz4' });
  const logs: string[] = [];
  const server = await NbdServer.start({
    backend: new ZramDeviceBackend(dev),
    host: '127.0.0.1',
    port: 0,
    log: (m) => logs.push(m),
    ...rest,
  });
  const { port } = server.address();
  return {
    server,
    dev,
    port,
    uri: server.uri(),
    logs,
    async close() {
      await server.close();
      dev.verify();
      dev.close();
    },
  };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a client binary to completion (the server runs in this process, so never spawnSync). */
export function run(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; input?: Buffer; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], cwd: opts.cwd });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    child.stdin.end(opts.input);
  });
}

/** Throws with the client's output unless it exited 0. */
export async function runOk(
  cmd: string,
  args: string[],
  opts?: { timeoutMs?: number; cwd?: string },
): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0)
    throw new Error(
      `${cmd} ${args.join(' ')} exited ${r.code ?? r.signal}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`,
    );
  return r;
}

/** A minimal NBD client over a raw socket. */
export class RawClient {
  readonly socket: net.Socket;
  private readonly q = new nbd.ByteQueue();
  private waiters: (() => void)[] = [];
  closed = false;
  readonly whenClosed: Promise<void>;
  structured = false;
  size = 0;
  flags = 0;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (b: Buffer) => {
      this.q.push(b);
      this.wake();
    });
    socket.on('error', () => {});
    this.whenClosed = new Promise((resolve) =>
      socket.on('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      }),
    );
  }

  /** Connects to 127.0.0.1:port, or to a Unix socket path. */
  static connect(where: number | string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const to = typeof where === 'string' ? { path: where } : { host: '127.0.0.1', port: where };
      const s = net.connect(to, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  /** Every byte the server sent until it closed the connection. */
  async rest(): Promise<Buffer> {
    await this.whenClosed;
    return this.q.take(this.q.length);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  get buffered(): number {
    return this.q.length;
  }

  /** Exactly n bytes; rejects if the socket closes first. */
  async read(n: number, timeoutMs = 10_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.q.length < n) {
      if (this.closed) throw new Error(`connection closed with ${this.q.length}/${n} bytes`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} bytes (${this.q.length} in)`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
    return this.q.take(n);
  }

  write(b: Uint8Array): void {
    this.socket.write(b);
  }

  /** Greeting, client flags, [STRUCTURED_REPLY], GO. */
  async handshake(opts: { name?: string; structured?: boolean } = {}): Promise<void> {
    const g = await this.read(18);
    if (g.subarray(0, 16).toString('latin1') !== 'NBDMAGICIHAVEOPT') throw new Error('bad greeting');
    this.write(Buffer.from([0, 0, 0, nbd.NBD_FLAG_C_FIXED_NEWSTYLE | nbd.NBD_FLAG_C_NO_ZEROES]));
    if (opts.structured) {
      this.write(nbd.encodeClientOption(nbd.NBD_OPT_STRUCTURED_REPLY));
      const r = await this.optionReply();
      if (r.type !== nbd.NBD_REP_ACK) throw new Error(`STRUCTURED_REPLY refused: ${r.type}`);
      this.structured = true;
    }
    this.write(
      nbd.encodeClientOption(
        nbd.NBD_OPT_GO,
        nbd.encodeInfoRequestData(opts.name ?? 'zram0', [nbd.NBD_INFO_BLOCK_SIZE]),
      ),
    );
    for (;;) {
      const r = await this.optionReply();
      if (r.type === nbd.NBD_REP_ACK) return;
      if (r.type !== nbd.NBD_REP_INFO)
        throw new Error(`GO failed: reply type 0x${r.type.toString(16)} ${Buffer.from(r.data).toString()}`);
      const info = nbd.decodeInfo(r.data);
      if (info.info === nbd.NBD_INFO_EXPORT && 'size' in info) {
        this.size = info.size;
        this.flags = info.flags;
      }
    }
  }

  async optionReply(): Promise<{ option: number; type: number; data: Uint8Array }> {
    const h = await this.read(20);
    const len = h.readUInt32BE(16);
    const data = await this.read(len);
    return nbd.decodeOptionReply(Buffer.concat([h, data]))!;
  }

  request(r: {
    type: number;
    offset: number;
    length: number;
    cookie?: number;
    flags?: number;
    data?: Uint8Array;
    magic?: number;
  }): void {
    const h = nbd.encodeRequest({
      type: r.type,
      offset: r.offset,
      length: r.length,
      cookieLo: r.cookie ?? 0,
      flags: r.flags ?? 0,
      magic: r.magic,
    });
    this.write(r.data ? Buffer.concat([h, r.data]) : h);
  }

  /**
   * One reply. For simple replies to READs pass `readLengths` (cookie → length)
   * so the data can be consumed; structured replies are self-describing.
   */
  async reply(
    readLengths?: Map<number, number>,
  ): Promise<{ cookie: number; error: number; data?: Buffer; message?: string }> {
    const deadline = Date.now() + 10_000;
    while (this.q.length < 4) await this.waitMore(deadline);
    const magic =
      ((this.q.byteAt(0) << 24) | (this.q.byteAt(1) << 16) | (this.q.byteAt(2) << 8) | this.q.byteAt(3)) >>> 0;
    if (magic === nbd.NBD_SIMPLE_REPLY_MAGIC) {
      const h = await this.read(16);
      const r = nbd.decodeSimpleReply(h)!;
      const n = r.error === 0 ? readLengths?.get(r.cookieLo) : undefined;
      return {
        cookie: r.cookieLo,
        error: r.error,
        data: n !== undefined ? Buffer.from(await this.read(n)) : undefined,
      };
    }
    if (magic === nbd.NBD_STRUCTURED_REPLY_MAGIC) {
      const h = await this.read(20);
      const payload = await this.read(h.readUInt32BE(16));
      const c = nbd.decodeStructuredChunk(Buffer.concat([h, payload]))!;
      if (!(c.flags & nbd.NBD_REPLY_FLAG_DONE))
        throw new Error('multi-chunk replies are not expected from this server');
      if (c.type === nbd.NBD_REPLY_TYPE_OFFSET_DATA)
        return { cookie: c.cookieLo, error: 0, data: Buffer.from(c.payload.subarray(8)) };
      if (c.type === nbd.NBD_REPLY_TYPE_NONE) return { cookie: c.cookieLo, error: 0 };
      if (c.type === nbd.NBD_REPLY_TYPE_ERROR) {
        const p = Buffer.from(c.payload);
        return {
          cookie: c.cookieLo,
          error: p.readUInt32BE(0),
          message: p.subarray(6, 6 + p.readUInt16BE(4)).toString(),
        };
      }
      throw new Error(`unexpected chunk type ${c.type}`);
    }
    throw new Error(`bad reply magic 0x${magic.toString(16)}`);
  }

  private async waitMore(deadline: number): Promise<void> {
    if (this.closed) throw new Error(`connection closed with ${this.q.length} bytes`);
    if (Date.now() > deadline) throw new Error('timed out waiting for a reply');
    await new Promise<void>((resolve) => {
      this.waiters.push(resolve);
      setTimeout(resolve, 100);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * Polls `probe` until it returns a value other than undefined/false, and
 * returns it; fails naming `what` after `timeoutMs` (a guard against hanging,
 * not a timing assertion).
 */
export async function waitFor<T>(probe: () => T | undefined | false, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Deterministic pseudo-random bytes. */
export function randomBytes(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}
