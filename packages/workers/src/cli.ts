#!/usr/bin/env node
// The `zram` command line: `zram serve` runs the threaded zram service behind an
// NBD server on loopback (plus a local control socket, see control.ts); `zram stat`,
// `compact`, `idle`, `writeback`, `recompress` and `reset` act on a running server.

import { ZsError } from '@zsmalloc/core';
import { ControlServer, controlRequest, defaultControlPath } from './control.js';
import { NbdServer } from './nbd/server.js';
import { ServiceBackend } from './nbd/service-backend.js';
import { ZramService } from './service.js';
import { parseSize } from './size.js';

const HELP: Record<string, string> = {
  main: `usage: zram <command> [options]

commands:
  serve        run a zram device behind an NBD server on loopback
  stat         show a zramctl-like table and the stat files of a running server
  compact      compact the running device (prints pages freed)
  idle         mark pages idle: zram idle [all|SECONDS]
  writeback    write pages back to the backing file: zram writeback MODE
  recompress   recompress with the secondary algorithm
  reset        free every page of the running device

Run 'zram <command> --help' for a command's options.`,
  serve: `usage: zram serve [--size 1G] [--algorithm lz4] [--mem-limit SIZE] [--backing-file PATH]
                  [--workers N] [--lock-mode class|pool] [--chain-size 4..16] [--lock-stat]
                  [--recomp-algorithm NAME] [--host 127.0.0.1] [--port 10809] [--control PATH]

  --size              device size; K, M, G suffixes as the kernel accepts them (default 1G)
  --algorithm         lz4 | deflate | brotli (default lz4)
  --mem-limit         zram mem_limit (default 0: none)
  --backing-file      file for writeback (created if missing)
  --workers           compression worker threads (default: available cores)
  --lock-mode         class: per-class locks (default); pool: one pool lock
  --chain-size        max pages per zspage (default 8)
  --lock-stat         collect lock statistics (zram stat --lock-stat shows them)
  --recomp-algorithm  secondary algorithm for recompress (priority 1)
  --host, --port      where the NBD server listens (default 127.0.0.1:10809; 0 = any free port)
  --control           control socket path (default: ${defaultControlPath(10809).replace('10809', '<port>')})`,
  stat: `usage: zram stat [--port 10809 | --control PATH] [--lock-stat]

  Prints NAME ALGORITHM DISKSIZE DATA COMPR TOTAL STREAMS, then mm_stat, io_stat,
  bd_stat and debug_stat in the kernel's layout; --lock-stat adds /proc/lock_stat.`,
  compact: 'usage: zram compact [--port 10809 | --control PATH]',
  idle: 'usage: zram idle [all|SECONDS] [--port 10809 | --control PATH]\n\n  Marks all pages idle, or those not accessed for SECONDS.',
  writeback:
    'usage: zram writeback MODE [--port 10809 | --control PATH]\n\n  MODE: idle | huge | huge_idle | incompressible | page_index=N | page_indexes=A-B',
  recompress:
    'usage: zram recompress [type=idle|huge|huge_idle] [threshold=BYTES] [max_pages=N] [algo=NAME] [--port 10809 | --control PATH]',
  reset:
    'usage: zram reset [--port 10809 | --control PATH]\n\n  Frees every page (the device keeps its size, as a reset followed by the same disksize).',
};

class UsageError extends Error {}

interface Parsed {
  positional: string[];
  flags: Map<string, string | true>;
}

const VALUE_FLAGS = new Set([
  '--size',
  '--algorithm',
  '--mem-limit',
  '--backing-file',
  '--workers',
  '--lock-mode',
  '--chain-size',
  '--host',
  '--port',
  '--control',
  '--recomp-algorithm',
]);
const BOOL_FLAGS = new Set(['--lock-stat', '--help', '-h']);

function parse(argv: string[], allowed: string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k]!;
    if (a.startsWith('-')) {
      const [name, inline] = a.includes('=')
        ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]
        : [a, undefined];
      if (!allowed.includes(name) && name !== '--help' && name !== '-h') throw new UsageError(`unknown option ${name}`);
      if (BOOL_FLAGS.has(name)) {
        flags.set(name, true);
        continue;
      }
      if (!VALUE_FLAGS.has(name)) throw new UsageError(`unknown option ${name}`);
      const v = inline ?? argv[++k];
      if (v === undefined) throw new UsageError(`${name} needs a value`);
      flags.set(name, v);
    } else positional.push(a);
  }
  return { positional, flags };
}

function intFlag(p: Parsed, name: string, def: number, min: number, max: number): number {
  const v = p.flags.get(name);
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`${name} must be an integer in ${min}..${max}, got '${String(v)}'`);
  return n;
}

function sizeFlag(p: Parsed, name: string, def: number): number {
  const v = p.flags.get(name);
  if (v === undefined) return def;
  try {
    return parseSize(String(v));
  } catch (e) {
    throw new UsageError(`${name}: ${(e as Error).message}`);
  }
}

function controlPath(p: Parsed): string {
  const c = p.flags.get('--control');
  if (typeof c === 'string') return c;
  return defaultControlPath(intFlag(p, '--port', 10809, 1, 65535));
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

async function serve(argv: string[]): Promise<void> {
  const p = parse(argv, [
    '--size',
    '--algorithm',
    '--mem-limit',
    '--backing-file',
    '--workers',
    '--lock-mode',
    '--chain-size',
    '--lock-stat',
    '--host',
    '--port',
    '--control',
    '--recomp-algorithm',
  ]);
  if (p.flags.has('--help') || p.flags.has('-h')) {
    console.log(HELP.serve);
    return;
  }
  if (p.positional.length > 0) throw new UsageError(`unexpected argument '${p.positional[0]}'`);
  const lockMode = String(p.flags.get('--lock-mode') ?? 'class');
  if (lockMode !== 'class' && lockMode !== 'pool')
    throw new UsageError(`--lock-mode must be class or pool, got '${lockMode}'`);
  const size = sizeFlag(p, '--size', 1 << 30);
  if (size < 4096) throw new UsageError('--size must be at least 4K');
  const port = intFlag(p, '--port', 10809, 0, 65535);
  const host = String(p.flags.get('--host') ?? '127.0.0.1');
  const svc = await ZramService.start({
    disksize: size,
    algorithm: String(p.flags.get('--algorithm') ?? 'lz4'),
    memLimit: sizeFlag(p, '--mem-limit', 0),
    backingFile: p.flags.has('--backing-file') ? String(p.flags.get('--backing-file')) : undefined,
    compressionWorkers: p.flags.has('--workers') ? intFlag(p, '--workers', 1, 1, 256) : undefined,
    lockMode,
    chainSize: intFlag(p, '--chain-size', 8, 4, 16),
    lockStat: p.flags.has('--lock-stat'),
  });
  const recomp = p.flags.get('--recomp-algorithm');
  if (typeof recomp === 'string') svc.device.setRecompAlgorithm(recomp, 1);
  const nbd = new NbdServer({ backend: new ServiceBackend(svc), host, port, log: (m) => console.error(`nbd: ${m}`) });
  const addr = await nbd.listen();
  const ctlPath =
    typeof p.flags.get('--control') === 'string' ? String(p.flags.get('--control')) : defaultControlPath(addr.port);
  const control = await ControlServer.listen(ctlPath, async (cmd, args) => {
    const dev = svc.device;
    switch (cmd) {
      case 'stat': {
        const v = dev.statValues().mm;
        return {
          name: 'zram0',
          algorithm: dev.algorithm,
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
      case 'reset':
        await svc.discard(0, dev.disksize);
        dev.resetMemUsedMax();
        return 'ok';
      default:
        throw new Error(`unknown command '${cmd}'`);
    }
  });
  console.log(
    `zram0: ${humanSize(size)} ${svc.device.algorithm}, ${svc.compressionWorkers} compression workers; NBD on ${addr.host}:${addr.port} (export 'zram0'); control ${control.path}`,
  );
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await nbd.close();
    await control.close();
    await svc.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

async function client(cmd: string, argv: string[]): Promise<void> {
  const p = parse(argv, ['--port', '--control', '--lock-stat']);
  if (p.flags.has('--help') || p.flags.has('-h')) {
    console.log(HELP[cmd]);
    return;
  }
  const path = controlPath(p);
  switch (cmd) {
    case 'stat': {
      if (p.positional.length > 0) throw new UsageError(`unexpected argument '${p.positional[0]}'`);
      const s = (await controlRequest(path, 'stat', { lockStat: p.flags.has('--lock-stat') })) as StatReply;
      process.stdout.write(statTable(s));
      process.stdout.write(
        `\nmm_stat:    ${s.mmStat}io_stat:    ${s.ioStat}bd_stat:    ${s.bdStat}debug_stat:\n${s.debugStat}`,
      );
      if (s.lockStat) process.stdout.write(`\n${s.lockStat}`);
      return;
    }
    case 'compact':
    case 'reset':
      if (p.positional.length > 0) throw new UsageError(`unexpected argument '${p.positional[0]}'`);
      console.log(String(await controlRequest(path, cmd)));
      return;
    case 'idle': {
      const arg = p.positional[0] ?? 'all';
      if (arg !== 'all' && !(Number(arg) >= 0))
        throw new UsageError(`idle takes 'all' or an age in seconds, got '${arg}'`);
      console.log(String(await controlRequest(path, 'idle', { arg })));
      return;
    }
    case 'writeback': {
      const mode = p.positional[0];
      if (!mode) throw new UsageError('writeback needs a MODE');
      console.log(String(await controlRequest(path, 'writeback', { mode })));
      return;
    }
    case 'recompress': {
      const req: Record<string, unknown> = {};
      for (const kv of p.positional) {
        const [k, v] = kv.split('=');
        if (k === 'type') req.type = v;
        else if (k === 'threshold') req.threshold = Number(v);
        else if (k === 'max_pages') req.maxPages = Number(v);
        else if (k === 'algo') req.algorithm = v;
        else throw new UsageError(`recompress: unknown parameter '${kv}'`);
      }
      console.log(String(await controlRequest(path, 'recompress', req)));
      return;
    }
  }
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(HELP.main);
    return;
  }
  if (cmd === 'serve') return serve(rest);
  if (['stat', 'compact', 'idle', 'writeback', 'recompress', 'reset'].includes(cmd)) return client(cmd, rest);
  throw new UsageError(`unknown command '${cmd}'`);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof UsageError) {
    console.error(`zram: ${e.message}\nTry 'zram --help'.`);
    process.exit(2);
  }
  console.error(`zram: ${e instanceof ZsError || e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
