#!/usr/bin/env node
// The `zram` command line: `zram serve` runs the threaded zram service behind an
// NBD server (loopback TCP or a private Unix socket, optionally TLS-PSK; plus a
// local control socket, see control.ts); `zram stat`, `compact`, `idle`,
// `writeback`, `recompress`, `reset` and `algorithm-params` act on a running
// server; `train-dict` builds a zstd dictionary from sample pages. Each command
// is one entry of COMMANDS: its help text, its node:util parseArgs option
// spec, and what it runs.

import fs from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ZsError } from '@zsmalloc/core';
import {
  DEFAULT_DICT_SIZE,
  ZramDevice,
  checkZstdDictionary,
  pagesOf,
  parseAlgorithmParams,
  trainZstdDictionary,
} from '@zsmalloc/zram';
import { ControlServer, controlRequest, defaultControlPath } from './control.js';
import { MAX_HANDSHAKE_TIMEOUT_MS, NbdServer, listenPolicyRefusal, type NbdServerTotals } from './nbd/server.js';
import { minConnectionBytes } from './nbd/connection.js';
import { ServiceBackend } from './nbd/service-backend.js';
import { loadPskFile, type TlsMode } from './nbd/tls.js';
import { ZramService } from './service.js';
import type { RingStats, RunToCompletion } from './ring/ring-submitter.js';
import { parseSize } from './size.js';

class UsageError extends Error {}

/** The NBD server's largest request (its default maxPayload), which the byte cap must fit twice. */
const NBD_MAX_PAYLOAD = 32 * 1024 * 1024;

type Options = NonNullable<ParseArgsConfig['options']>;
type Values = Record<string, string | boolean | undefined>;

interface Command {
  help: string;
  options: Options;
  run(values: Values, positionals: string[]): Promise<void>;
}

const HELP_OPTION: Options = { help: { type: 'boolean', short: 'h' } };

/** Where a client command finds the server: --control PATH, --unix PATH (its control socket), or --port. */
const TARGET_OPTIONS: Options = {
  port: { type: 'string' },
  unix: { type: 'string' },
  control: { type: 'string' },
};
const TARGET_HELP = '[--port 10809 | --unix PATH | --control PATH]';

const DEFAULT_CONTROL_HELP = '$XDG_RUNTIME_DIR/zram/nbd-<port>.sock, else <tmpdir>/zram-<uid>/nbd-<port>.sock';

function str(v: Values, name: string): string | undefined {
  const x = v[name];
  return typeof x === 'string' ? x : undefined;
}

function intFlag(v: Values, name: string, def: number, min: number, max: number): number {
  const x = str(v, name);
  if (x === undefined) return def;
  const n = Number(x);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`--${name} must be an integer in ${min}..${max}, got '${x}'`);
  return n;
}

function sizeFlag(v: Values, name: string, def: number): number {
  const x = str(v, name);
  if (x === undefined) return def;
  try {
    return parseSize(x);
  } catch (e) {
    throw new UsageError(`--${name}: ${(e as Error).message}`);
  }
}

/** The control socket of a server listening on Unix socket `unix`: next to it. */
function unixControlPath(unix: string): string {
  return `${unix}.control`;
}

function controlPath(v: Values): string {
  const c = str(v, 'control');
  if (c !== undefined) return c;
  const u = str(v, 'unix');
  if (u !== undefined) return unixControlPath(u);
  return defaultControlPath(intFlag(v, 'port', 10809, 1, 65535));
}

function noPositionals(p: string[]): void {
  if (p.length > 0) throw new UsageError(`unexpected argument '${p[0]}'`);
}

/** zramctl's human sizes: 0B, 4K, 1.5M, 1G. */
export function humanSize(bytes: number): string {
  const units = ['B', 'K', 'M', 'G', 'T'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const s = u === 0 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(1).replace(/\.0$/, '');
  return `${s}${units[u]}`;
}

interface StatReply {
  name: string;
  algorithm: string;
  algorithmParams: string;
  disksize: number;
  data: number;
  compr: number;
  total: number;
  streams: number;
  mmStat: string;
  ioStat: string;
  bdStat: string;
  debugStat: string;
  lockStat: string;
  nbd?: NbdServerTotals;
  /** The page rings' counters (for tools; `zram stat` does not print them). */
  ring?: RingStats;
}

function statTable(s: StatReply): string {
  const cols = ['NAME', 'ALGORITHM', 'DISKSIZE', 'DATA', 'COMPR', 'TOTAL', 'STREAMS'];
  const vals = [
    s.name,
    s.algorithm,
    humanSize(s.disksize),
    humanSize(s.data),
    humanSize(s.compr),
    humanSize(s.total),
    String(s.streams),
  ];
  const w = cols.map((c, i) => Math.max(c.length, vals[i]!.length));
  const row = (xs: string[]) => xs.map((x, i) => (i === 0 || i === 1 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join(' ');
  return `${row(cols)}\n${row(vals)}\n`;
}

const SERVE_HELP = `usage: zram serve [--size 1G] [--algorithm lz4] [--level L] [--dict FILE] [--mem-limit SIZE] [--backing-file PATH]
                  [--workers N] [--run-to-completion adaptive|never|always]
                  [--lock-mode class|pool] [--chain-size 4..16] [--lock-stat] [--recomp-algorithm NAME]
                  [--host 127.0.0.1] [--port 10809] [--unix PATH]
                  [--tls off|on|require] [--tls-psk FILE] [--insecure] [--control PATH]
                  [--max-connections 16] [--handshake-timeout 10] [--max-connection-bytes SIZE]
                  [--max-server-bytes 256M]

  --size                  device size; K, M, G suffixes as the kernel accepts them (default 1G)
  --algorithm             lz4 | deflate | brotli | zstd (default lz4)
  --level                 compression level of the algorithm (zstd: -131072..22, default 3)
  --dict                  pre-trained dictionary file of the algorithm (zstd; see train-dict)
  --mem-limit             zram mem_limit (default 0: none)
  --backing-file          file for writeback (created 0600 if missing; never through a symlink)
  --workers               compression worker threads (default: available cores)
  --run-to-completion     where page work runs: adaptive (default: this thread too, when that
                          is cheaper or every worker is busy), never (workers only), always
  --lock-mode             class: per-class locks (default); pool: one pool lock
  --chain-size            max pages per zspage (default 8)
  --lock-stat             collect lock statistics (zram stat --lock-stat shows them)
  --recomp-algorithm      secondary algorithm for recompress (priority 1)
  --host, --port          where the NBD server listens (default 127.0.0.1:10809; 0 = any free port).
                          A non-loopback host needs --tls require (or --insecure)
  --unix                  listen on this Unix socket instead (created 0600); clients use
                          nbd+unix:///zram0?socket=PATH
  --tls                   off | on (offered) | require (nothing but STARTTLS before TLS);
                          default off, or require when --tls-psk is given
  --tls-psk               pre-shared keys, nbdkit's format: username:hexkey lines (mode 0600);
                          clients use nbds://USER@HOST:PORT/zram0?tls-psk-file=FILE
  --insecure              allow a non-loopback --host without TLS
  --max-connections       NBD connections served at once; more are closed (default 16)
  --handshake-timeout     seconds a client has to finish the NBD handshake (default 10; 0: none)
  --max-connection-bytes  per-connection cap on bytes buffered + in flight + queued replies
                          (default 2 x 32M + 1.25M; at least 2 x 32M + 257K)
  --max-server-bytes      the same, for all connections together (default 256M; at least
                          --max-connection-bytes); past it, reading and READs wait
  --control               control socket path (created 0600; default: ${DEFAULT_CONTROL_HELP},
                          or PATH.control with --unix)`;

function runToCompletionFlag(v: Values): RunToCompletion {
  const r = str(v, 'run-to-completion') ?? 'adaptive';
  if (r !== 'adaptive' && r !== 'never' && r !== 'always')
    throw new UsageError(`--run-to-completion must be adaptive, never or always, got '${r}'`);
  return r;
}

/**
 * --handshake-timeout in seconds, as whole ms for the server: 0 (no limit) or
 * 1 ms..2^31-1 ms (the longest timer Node keeps; a longer one fires at once).
 * A positive value that rounds to 0 ms would mean "no limit", so it is refused.
 */
function handshakeFlag(text: string | undefined): number {
  const s = Number(text ?? 10);
  const ms = Math.round(s * 1000);
  if (!(s >= 0) || ms > MAX_HANDSHAKE_TIMEOUT_MS || (s > 0 && ms === 0))
    throw new UsageError(
      `--handshake-timeout must be 0 (none) or 0.001..${MAX_HANDSHAKE_TIMEOUT_MS / 1000} seconds, got '${text}'`,
    );
  return ms;
}

/**
 * The kernel's order for new parameters on a device in use: reset, algorithm_params,
 * disksize. Refuses (EBUSY) while the device holds data; keeps its algorithms,
 * mem_limit and backing file. A rejected request leaves the device as it was.
 */
function reinitWithParams(dev: ZramDevice, text: string): string {
  const req = parseAlgorithmParams(text);
  if (dev.statValues().mm.origDataSize !== 0)
    throw new ZsError('EBUSY', 'algorithm-params: the device holds data; zram reset first');
  const size = dev.disksize;
  const algorithms = dev.algorithms();
  const memLimit = dev.memLimit;
  const backing = dev.backingFile;
  const configure = (d: ZramDevice) => {
    d.setAlgorithm(algorithms[0] ?? 'lz4');
    algorithms.forEach((a, prio) => {
      if (prio > 0 && a !== undefined) d.setRecompAlgorithm(a, prio);
    });
  };
  // Other priorities keep their parameters (re-read from their files).
  const kept = dev
    .algorithmParams()
    .trim()
    .split('\n')
    .map((line) => /^#(\d+): \S+(?: level=(-?\d+))?(?: dict=(.*))?$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null && (m[2] !== undefined || m[3] !== undefined))
    .map((m) => ({
      priority: Number(m[1]),
      ...(m[2] !== undefined ? { level: Number(m[2]) } : {}),
      ...(m[3] !== undefined ? { dict: m[3] } : {}),
    }));
  // Dry run on a scratch device with the same algorithms: a bad request fails here, changing nothing.
  const probe = ZramDevice.create({ disksize: 0, pool: { maxBytes: 1 << 20 } });
  try {
    configure(probe);
    probe.setAlgorithmParams(req);
  } finally {
    probe.close();
  }
  dev.reset();
  configure(dev);
  if (backing) dev.setBackingFile(backing);
  if (memLimit) dev.setMemLimit(memLimit);
  for (const k of kept) dev.setAlgorithmParams(k);
  dev.setAlgorithmParams(req);
  dev.setDisksize(size);
  return dev.algorithmParams();
}

/** Up to n stored pages picked evenly at random (reservoir sampling) from the whole device, skipping empty and same-filled ones (base64). */
function samplePages(dev: ZramDevice, n: number): string {
  if (!Number.isInteger(n) || n < 1 || n > 65536) throw new ZsError('EINVAL', 'pages must be 1..65536');
  const picked: number[] = [];
  let seen = 0;
  let rnd = 0x2545f491;
  const total = dev.pages;
  for (let i = 0; i < total; i++) {
    const s = dev.slotState(i);
    if (!s.allocated || s.same) continue;
    seen++;
    if (picked.length < n) picked.push(i);
    else {
      rnd = (Math.imul(rnd, 1103515245) + 12345) >>> 0;
      const j = rnd % seen;
      if (j < n) picked[j] = i;
    }
  }
  const out = Buffer.alloc(picked.length * 4096);
  picked.sort((a, b) => a - b);
  picked.forEach((idx, k) => {
    dev.readPage(idx, out.subarray(k * 4096, (k + 1) * 4096));
  });
  return out.toString('base64');
}

async function trainDict(v: Values, positionals: string[]): Promise<void> {
  noPositionals(positionals);
  const out = str(v, 'out');
  if (out === undefined) throw new UsageError('train-dict needs --out FILE');
  const dictSize = sizeFlag(v, 'dict-size', DEFAULT_DICT_SIZE);
  const sample = str(v, 'sample');
  let bytes: Uint8Array;
  if (sample !== undefined) bytes = fs.readFileSync(sample);
  else if (str(v, 'pages') !== undefined)
    bytes = Buffer.from(
      String(await controlRequest(controlPath(v), 'sample-pages', { pages: intFlag(v, 'pages', 1024, 1, 65536) })),
      'base64',
    );
  else throw new UsageError('train-dict needs --sample FILE or --pages N');
  const pages = pagesOf(bytes);
  const dict = trainZstdDictionary(pages, { dictSize });
  checkZstdDictionary(dict);
  // a new file only (no following a planted symlink, no clobbering), owner-only
  const fd = fs.openSync(
    out,
    fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW,
    0o600,
  );
  try {
    fs.writeSync(fd, dict);
  } finally {
    fs.closeSync(fd);
  }
  console.log(`${out}: ${dict.length} bytes from ${pages.length} sample pages`);
}

async function serve(v: Values, positionals: string[]): Promise<void> {
  noPositionals(positionals);
  const lockMode = str(v, 'lock-mode') ?? 'class';
  if (lockMode !== 'class' && lockMode !== 'pool')
    throw new UsageError(`--lock-mode must be class or pool, got '${lockMode}'`);
  const size = sizeFlag(v, 'size', 1 << 30);
  if (size < 4096) throw new UsageError('--size must be at least 4K');
  const port = intFlag(v, 'port', 10809, 0, 65535);
  const host = str(v, 'host') ?? '127.0.0.1';
  const unix = str(v, 'unix');
  const pskFile = str(v, 'tls-psk');
  const tls = (str(v, 'tls') ?? (pskFile !== undefined ? 'require' : 'off')) as TlsMode;
  if (tls !== 'off' && tls !== 'on' && tls !== 'require')
    throw new UsageError(`--tls must be off, on or require, got '${String(tls)}'`);
  if (tls !== 'off' && pskFile === undefined) throw new UsageError(`--tls ${tls} needs --tls-psk FILE`);
  const insecure = v.insecure === true;
  const refusal = listenPolicyRefusal({ host, unix, tls, insecure });
  if (refusal !== null) throw new UsageError(refusal);
  const handshakeTimeoutMs = handshakeFlag(str(v, 'handshake-timeout'));
  const psk = pskFile !== undefined ? loadPskFile(pskFile) : undefined;
  const maxConnections = intFlag(v, 'max-connections', 16, 1, 65536);
  const maxConnectionBytes =
    str(v, 'max-connection-bytes') !== undefined ? sizeFlag(v, 'max-connection-bytes', 0) : undefined;
  if (maxConnectionBytes !== undefined && maxConnectionBytes < minConnectionBytes(NBD_MAX_PAYLOAD))
    throw new UsageError(
      `--max-connection-bytes must be at least ${minConnectionBytes(NBD_MAX_PAYLOAD)} (two 32M requests + 257K)`,
    );
  const maxServerBytes = str(v, 'max-server-bytes') !== undefined ? sizeFlag(v, 'max-server-bytes', 0) : undefined;
  const perConnection = maxConnectionBytes ?? minConnectionBytes(NBD_MAX_PAYLOAD) + (1 << 20);
  if (maxServerBytes !== undefined && maxServerBytes < perConnection)
    throw new UsageError(`--max-server-bytes must be at least the per-connection cap (${perConnection})`);
  const params: string[] = [];
  if (str(v, 'level') !== undefined) params.push(`level=${intFlag(v, 'level', 3, -(2 ** 31), 2 ** 31 - 1)}`);
  if (str(v, 'dict') !== undefined) params.push(`dict="${str(v, 'dict')}"`);
  const svc = await ZramService.start({
    disksize: size,
    algorithm: str(v, 'algorithm') ?? 'lz4',
    algorithmParams: params.length > 0 ? params.join(' ') : undefined,
    memLimit: sizeFlag(v, 'mem-limit', 0),
    backingFile: str(v, 'backing-file'),
    compressionWorkers: str(v, 'workers') !== undefined ? intFlag(v, 'workers', 1, 1, 256) : undefined,
    lockMode,
    chainSize: intFlag(v, 'chain-size', 8, 4, 16),
    lockStat: v['lock-stat'] === true,
    runToCompletion: runToCompletionFlag(v),
  });
  let nbd: NbdServer | undefined;
  let control: ControlServer | undefined;
  try {
    const recomp = str(v, 'recomp-algorithm');
    if (recomp !== undefined) svc.device.setRecompAlgorithm(recomp, 1);
    nbd = new NbdServer({
      backend: new ServiceBackend(svc),
      host,
      port,
      unix,
      tls,
      psk,
      insecure,
      maxConnections,
      handshakeTimeoutMs,
      maxConnectionBytes,
      maxServerBytes,
      log: (m) => console.error(`nbd: ${m}`),
    });
    const addr = await nbd.listen();
    const ctlPath =
      str(v, 'control') ?? (unix !== undefined ? unixControlPath(unix) : defaultControlPath(addr.port, true));
    const server = nbd;
    control = await ControlServer.listen(ctlPath, (cmd, args) => controlCommand(svc, server, cmd, args));
    if (unix === undefined && tls !== 'require')
      console.error(
        `zram serve: warning: NBD on TCP ${addr.host}:${addr.port} without --tls require: any local user can read and write the device; restrict it with --unix PATH or --tls require --tls-psk FILE`,
      );
    const where = unix !== undefined ? `unix:${unix}` : `${addr.host}:${addr.port}`;
    console.log(
      `zram0: ${humanSize(size)} ${svc.device.algorithm}, ${svc.compressionWorkers} compression workers; NBD on ${where} (export 'zram0', TLS ${tls}); control ${control.path}`,
    );
  } catch (e) {
    await nbd?.close();
    await control?.close();
    await svc.close();
    throw e;
  }
  const [n, c] = [nbd, control];
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await n.close();
    await c.close();
    await svc.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

/** What the control socket answers (see control.ts for the wire format). */
async function controlCommand(
  svc: ZramService,
  nbd: NbdServer,
  cmd: string,
  args: Record<string, unknown>,
): Promise<unknown> {
  const dev = svc.device;
  switch (cmd) {
    case 'stat': {
      const v = dev.statValues().mm;
      return {
        name: 'zram0',
        algorithm: dev.algorithm,
        algorithmParams: dev.algorithmParams(),
        disksize: dev.disksize,
        data: v.origDataSize,
        compr: v.comprDataSize,
        total: v.memUsedTotal,
        streams: svc.compressionWorkers,
        mmStat: dev.mmStat(),
        ioStat: dev.ioStat(),
        bdStat: dev.bdStat(),
        debugStat: dev.debugStat(),
        lockStat: args.lockStat ? dev.pool.lockStatText() : '',
        nbd: nbd.totals(),
        ring: svc.ringStats(),
      } satisfies StatReply;
    }
    case 'compact':
      return svc.compact();
    case 'idle':
      return svc.idle(args.arg === undefined || args.arg === 'all' ? 'all' : Number(args.arg));
    case 'writeback':
      return svc.writeback(String(args.mode));
    case 'recompress':
      return svc.recompress(args as never);
    case 'algorithm-params':
      return reinitWithParams(dev, String(args.params ?? ''));
    case 'sample-pages':
      return samplePages(dev, Number(args.pages));
    case 'reset':
      await svc.discard(0, dev.disksize);
      dev.resetMemUsedMax();
      return 'ok';
    default:
      throw new Error(`unknown command '${cmd}'`);
  }
}

/** A client command: sends one request over the control socket and prints the reply. */
function clientCommand(
  help: string,
  extra: Options,
  request: (v: Values, positionals: string[]) => { cmd: string; args?: Record<string, unknown> },
  print: (result: unknown, v: Values) => void = (r) => console.log(String(r)),
): Command {
  return {
    help,
    options: { ...TARGET_OPTIONS, ...extra },
    async run(v, positionals) {
      const { cmd, args } = request(v, positionals);
      print(await controlRequest(controlPath(v), cmd, args), v);
    },
  };
}

const COMMANDS: Record<string, Command> = {
  serve: {
    help: SERVE_HELP,
    options: {
      size: { type: 'string' },
      algorithm: { type: 'string' },
      'mem-limit': { type: 'string' },
      'backing-file': { type: 'string' },
      workers: { type: 'string' },
      'run-to-completion': { type: 'string' },
      'lock-mode': { type: 'string' },
      'chain-size': { type: 'string' },
      'lock-stat': { type: 'boolean' },
      'recomp-algorithm': { type: 'string' },
      level: { type: 'string' },
      dict: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      unix: { type: 'string' },
      tls: { type: 'string' },
      'tls-psk': { type: 'string' },
      insecure: { type: 'boolean' },
      'max-connections': { type: 'string' },
      'handshake-timeout': { type: 'string' },
      'max-server-bytes': { type: 'string' },
      'max-connection-bytes': { type: 'string' },
      control: { type: 'string' },
    },
    run: serve,
  },
  stat: clientCommand(
    `usage: zram stat ${TARGET_HELP} [--lock-stat]

  Prints NAME ALGORITHM DISKSIZE DATA COMPR TOTAL STREAMS, then mm_stat, io_stat,
  bd_stat and debug_stat in the kernel's layout, and the NBD server's connection
  figures; --lock-stat adds /proc/lock_stat.`,
    { 'lock-stat': { type: 'boolean' } },
    (v, p) => {
      noPositionals(p);
      return { cmd: 'stat', args: { lockStat: v['lock-stat'] === true } };
    },
    (r) => {
      const s = r as StatReply;
      process.stdout.write(statTable(s));
      process.stdout.write(`\nalgorithm_params:\n${s.algorithmParams}`);
      process.stdout.write(
        `\nmm_stat:    ${s.mmStat}io_stat:    ${s.ioStat}bd_stat:    ${s.bdStat}debug_stat:\n${s.debugStat}`,
      );
      if (s.nbd)
        process.stdout.write(
          `nbd:        connections ${s.nbd.connections} refused ${s.nbd.refusedConnections} handshake_timeouts ${s.nbd.handshakeTimeouts} held_bytes ${s.nbd.heldBytes} max_connection_bytes ${s.nbd.maxConnectionBytes} max_server_bytes ${s.nbd.maxServerBytes} budget_waiting ${s.nbd.budgetWaiting}\n`,
        );
      if (s.lockStat) process.stdout.write(`\n${s.lockStat}`);
    },
  ),
  compact: clientCommand(`usage: zram compact ${TARGET_HELP}`, {}, (_v, p) => {
    noPositionals(p);
    return { cmd: 'compact' };
  }),
  idle: clientCommand(
    `usage: zram idle [all|SECONDS] ${TARGET_HELP}\n\n  Marks all pages idle, or those not accessed for SECONDS.`,
    {},
    (_v, p) => {
      const arg = p[0] ?? 'all';
      if (p.length > 1) noPositionals(p.slice(1));
      if (arg !== 'all' && !(Number(arg) >= 0))
        throw new UsageError(`idle takes 'all' or an age in seconds, got '${arg}'`);
      return { cmd: 'idle', args: { arg } };
    },
  ),
  writeback: clientCommand(
    `usage: zram writeback MODE ${TARGET_HELP}\n\n  MODE: idle | huge | huge_idle | incompressible | page_index=N | page_indexes=A-B`,
    {},
    (_v, p) => {
      const mode = p[0];
      if (!mode) throw new UsageError('writeback needs a MODE');
      if (p.length > 1) noPositionals(p.slice(1));
      return { cmd: 'writeback', args: { mode } };
    },
  ),
  recompress: clientCommand(
    `usage: zram recompress [type=idle|huge|huge_idle] [threshold=BYTES] [max_pages=N] [algo=NAME] ${TARGET_HELP}`,
    {},
    (_v, p) => {
      const req: Record<string, unknown> = {};
      for (const kv of p) {
        const [k, val] = kv.split('=');
        if (k === 'type') req.type = val;
        else if (k === 'threshold') req.threshold = Number(val);
        else if (k === 'max_pages') req.maxPages = Number(val);
        else if (k === 'algo') req.algorithm = val;
        else throw new UsageError(`recompress: unknown parameter '${kv}'`);
      }
      return { cmd: 'recompress', args: req };
    },
  ),
  'algorithm-params': clientCommand(
    `usage: zram algorithm-params [priority=N] [algo=NAME] [level=L] [dict=PATH] ${TARGET_HELP}\n\n` +
      "  As the kernel's algorithm_params. The device must hold no data (zram reset first): it is\n" +
      '  re-initialized at the same size with its algorithms, mem_limit and backing file kept.',
    {},
    (_v, p) => {
      if (p.length === 0) throw new UsageError('algorithm-params needs key=value parameters');
      parseAlgorithmParams(p.join(' ')); // malformed: EINVAL here, before anything is sent
      return { cmd: 'algorithm-params', args: { params: p.join(' ') } };
    },
  ),
  'train-dict': {
    help:
      `usage: zram train-dict --out FILE [--dict-size 16K] (--sample FILE | --pages N ${TARGET_HELP})\n\n` +
      '  Builds a raw-content zstd dictionary from 4 KiB sample pages: the pages of FILE, or N pages\n' +
      '  read back (picked at random, skipping empty and same-filled ones) from a running device.\n' +
      '  FILE is created new, mode 0600.',
    options: {
      ...TARGET_OPTIONS,
      out: { type: 'string' },
      'dict-size': { type: 'string' },
      sample: { type: 'string' },
      pages: { type: 'string' },
    },
    run: trainDict,
  },
  reset: clientCommand(
    `usage: zram reset ${TARGET_HELP}\n\n  Frees every page (the device keeps its size, as a reset followed by the same disksize).`,
    {},
    (_v, p) => {
      noPositionals(p);
      return { cmd: 'reset' };
    },
  ),
};

const MAIN_HELP = `usage: zram <command> [options]

commands:
  serve        run a zram device behind an NBD server (loopback, a Unix socket, or TLS-PSK)
  stat         show a zramctl-like table and the stat files of a running server
  compact      compact the running device (prints pages freed)
  idle         mark pages idle: zram idle [all|SECONDS]
  writeback    write pages back to the backing file: zram writeback MODE
  recompress   recompress with the secondary algorithm
  reset        free every page of the running device
  algorithm-params  set a level or dictionary: priority=N algo=NAME level=L dict=PATH
  train-dict   build a zstd dictionary from sample pages (a file, or a running device)

Run 'zram <command> --help' for a command's options.`;

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(MAIN_HELP);
    return;
  }
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command '${name}'`);
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...command.options, ...HELP_OPTION },
      allowPositionals: true,
      strict: true,
    }) as { values: Values; positionals: string[] };
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (parsed.values.help === true) {
    console.log(command.help);
    return;
  }
  await command.run(parsed.values, parsed.positionals);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof UsageError) {
    console.error(`zram: ${e.message}\nTry 'zram --help'.`);
    process.exit(2);
  }
  console.error(`zram: ${e instanceof ZsError || e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
