// The kernel's own zram as the reference: probes /sys/block/zram0 (present,
// unused — disksize 0, not swapped on or mounted — and writable; tries
// `modprobe zram num_devices=1` once when absent and root), then sets it up
// (comp_algorithm, disksize), writes the very same pages with direct I/O
// (`dd oflag=direct`, one stream, and two streams on the two halves), reads
// mm_stat, reads back with `dd iflag=direct`, checks the bytes, and resets the
// device (echo 1 > reset) whatever happens. Owns everything that touches the
// kernel device; the service side lives in suite.ts.

import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PAGE_SIZE } from '@zsmalloc/core';

const SYS = '/sys/block/zram0';
const DEV = '/dev/zram0';

export interface KernelMmStat {
  origDataSize: number;
  comprDataSize: number;
  memUsedTotal: number;
  samePages: number;
  hugePages: number;
}

export interface KernelResult {
  algorithm: string;
  /** dd block size = one request, bytes. */
  requestBytes: number;
  /** Per pass, seconds as dd reports them (the copy loop only). */
  write1: number[];
  read1: number[];
  /** Two dd processes on the two halves; wall time around both, process start included. */
  write2: number[];
  read2: number[];
  mm: KernelMmStat;
  verified: boolean;
  /** What the probe had to do, e.g. "modprobe zram num_devices=1". */
  setup: string;
}

export type KernelOutcome = { ran: true; result: KernelResult } | { ran: false; reason: string };

function sysWrite(name: string, value: string): void {
  writeFileSync(`${SYS}/${name}`, value);
}

function sysRead(name: string): string {
  return readFileSync(`${SYS}/${name}`, 'utf8').trim();
}

/** Why the kernel device cannot be used, or null when it can; may load the module. */
export function probeKernelZram(): { reason: string | null; setup: string } {
  let setup = 'none';
  if (process.platform !== 'linux') return { reason: `not Linux (${process.platform})`, setup };
  const root = process.getuid?.() === 0;
  if (!existsSync(SYS)) {
    if (!root) return { reason: `${SYS} is absent and not root, so modprobe zram was not tried`, setup };
    const r = spawnSync('modprobe', ['zram', 'num_devices=1'], { encoding: 'utf8' });
    setup = 'modprobe zram num_devices=1';
    if (r.error !== undefined || r.status !== 0) {
      const why = r.error !== undefined ? r.error.message : `exit ${String(r.status)}: ${(r.stderr ?? '').trim()}`;
      return { reason: `${SYS} is absent and modprobe zram num_devices=1 failed (${why})`, setup };
    }
    if (!existsSync(SYS)) return { reason: `${SYS} still absent after modprobe zram`, setup };
  }
  if (!existsSync(DEV)) return { reason: `${SYS} exists but ${DEV} does not`, setup };
  if (!statSync(DEV).isBlockDevice()) return { reason: `${DEV} is not a block device`, setup };
  const disksize = sysRead('disksize');
  if (disksize !== '0') return { reason: `zram0 is in use (disksize ${disksize})`, setup };
  try {
    accessSync(`${SYS}/disksize`, constants.W_OK);
    accessSync(`${SYS}/reset`, constants.W_OK);
    accessSync(DEV, constants.R_OK | constants.W_OK);
  } catch (e) {
    return { reason: `zram0 is not writable (${(e as Error).message})`, setup };
  }
  if (!root) return { reason: 'not root: sysfs knobs need CAP_SYS_ADMIN', setup };
  const swaps = existsSync('/proc/swaps') ? readFileSync('/proc/swaps', 'utf8') : '';
  if (swaps.includes(DEV)) return { reason: `${DEV} is an active swap device`, setup };
  const mounts = existsSync('/proc/mounts') ? readFileSync('/proc/mounts', 'utf8') : '';
  if (mounts.includes(DEV)) return { reason: `${DEV} is mounted`, setup };
  const dd = spawnSync('dd', ['--version'], { encoding: 'utf8' });
  if (dd.error !== undefined) return { reason: `dd is not available (${dd.error.message})`, setup };
  return { reason: null, setup };
}

function parseMmStat(text: string): KernelMmStat {
  const f = text.split(/\s+/).map(Number);
  return { origDataSize: f[0]!, comprDataSize: f[1]!, memUsedTotal: f[2]!, samePages: f[5] ?? 0, hugePages: f[7] ?? 0 };
}

/** Runs dd; resolves with the seconds dd reports for its copy loop. */
function dd(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const p = spawn('dd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.setEncoding('utf8');
    p.stderr.on('data', (d: string) => {
      err += d;
    });
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`dd ${args.join(' ')} failed (exit ${String(code)}): ${err.trim()}`));
        return;
      }
      // "67108864 bytes (67 MB, 64 MiB) copied, 0.123456 s, 544 MB/s"
      const m = /copied, ([0-9.e+-]+) s/.exec(err);
      if (m === null) {
        reject(new Error(`cannot read dd's time from: ${err.trim()}`));
        return;
      }
      resolve(Number(m[1]));
    });
  });
}

/** Fresh device: reset, then algorithm and disksize (the order the kernel requires). */
function setUp(algorithm: string, bytes: number): void {
  sysWrite('reset', '1');
  sysWrite('comp_algorithm', algorithm);
  sysWrite('disksize', String(bytes));
}

export interface KernelOptions {
  /** The pages, back to back (a multiple of 2 * requestPages pages). */
  bytes: Uint8Array;
  requestPages: number;
  passes: number;
  algorithm: string;
  log?: (line: string) => void;
}

/** Probes, runs and always resets; never throws for an unusable device (returns the reason). */
export async function benchKernelZram(opts: KernelOptions): Promise<KernelOutcome> {
  const probe = probeKernelZram();
  if (probe.reason !== null) return { ran: false, reason: probe.reason };
  const listing = sysRead('comp_algorithm');
  const algorithm = listing
    .split(/\s+/)
    .map((s) => s.replace(/[[\]]/g, ''))
    .includes(opts.algorithm)
    ? opts.algorithm
    : '';
  if (algorithm === '')
    return { ran: false, reason: `the kernel's zram has no ${opts.algorithm} (comp_algorithm: ${listing})` };
  const n = opts.bytes.length / PAGE_SIZE;
  const bs = opts.requestPages * PAGE_SIZE;
  const requests = n / opts.requestPages;
  if (!Number.isInteger(requests) || requests % 2 !== 0)
    throw new RangeError('kernel bench: pages must be a multiple of 2 * requestPages');
  const half = requests / 2;
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'zs-kzram-'));
  const src = join(dir, 'stream.bin');
  const back = join(dir, 'back.bin');
  writeFileSync(src, opts.bytes);
  const bsArg = `bs=${bs}`;
  const out: KernelResult = {
    algorithm,
    requestBytes: bs,
    write1: [],
    read1: [],
    write2: [],
    read2: [],
    mm: { origDataSize: 0, comprDataSize: 0, memUsedTotal: 0, samePages: 0, hugePages: 0 },
    verified: false,
    setup: probe.setup,
  };
  const twoStreams = async (op: 'write' | 'read'): Promise<number> => {
    const t0 = performance.now();
    await Promise.all(
      [0, 1].map((h) =>
        op === 'write'
          ? dd([
              `if=${src}`,
              `of=${DEV}`,
              bsArg,
              `count=${half}`,
              `skip=${h * half}`,
              `seek=${h * half}`,
              'oflag=direct',
              'conv=notrunc',
            ])
          : dd([`if=${DEV}`, 'of=/dev/null', bsArg, `count=${half}`, `skip=${h * half}`, 'iflag=direct']),
      ),
    );
    return (performance.now() - t0) / 1000;
  };
  try {
    for (let p = 0; p < opts.passes; p++) {
      // one stream, on a fresh device (untimed set-up), then read it back the same way
      setUp(algorithm, opts.bytes.length);
      out.write1.push(await dd([`if=${src}`, `of=${DEV}`, bsArg, `count=${requests}`, 'oflag=direct', 'conv=notrunc']));
      out.read1.push(await dd([`if=${DEV}`, 'of=/dev/null', bsArg, `count=${requests}`, 'iflag=direct']));
      // two streams on the two halves, again on a fresh device
      setUp(algorithm, opts.bytes.length);
      out.write2.push(await twoStreams('write'));
      out.read2.push(await twoStreams('read'));
    }
    out.mm = parseMmStat(sysRead('mm_stat'));
    await dd([`if=${DEV}`, `of=${back}`, bsArg, `count=${requests}`, 'iflag=direct']);
    const got = readFileSync(back);
    if (Buffer.compare(got, opts.bytes) !== 0)
      throw new Error('kernel zram: the pages read back differ from the pages written');
    out.verified = true;
    opts.log?.(`kernel zram0: ${algorithm}, mm_stat ${sysRead('mm_stat')}`);
  } finally {
    try {
      sysWrite('reset', '1');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return { ran: true, result: out };
}
