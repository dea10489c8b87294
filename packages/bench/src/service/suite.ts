// The service benchmark: write and read MB/s through ZramService with 1 and 2
// compression workers in two client shapes — (a) 8 requests of 256 pages in
// flight, (b) every request queued at once — on one pre-generated swap-like
// stream, next to the bare device on one thread and to the kernel's own zram
// on the same pages. Owns the run
// plan (configurations, rounds, warm-up), the rows and the scaling analysis;
// the client (client.ts) times passes, kernel-zram.ts drives the kernel device.

import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { PAGE_SIZE } from '@zsmalloc/core';
import { ZramDevice } from '@zsmalloc/zram';
import { ZramService } from '@zsmalloc/workers';
import { swapLikeStream } from '../micro/zram.js';
import {
  defaultResultsDir,
  formatTable,
  linkBaselines,
  makeReport,
  writeJson,
  type BenchRow,
  type MicroReport,
} from '../report.js';
import { checkService, runPass, type ClientShape, type PassSample } from './client.js';
import { measureParallelism, type Parallelism } from './calibrate.js';
import { benchKernelZram, type KernelOutcome } from './kernel-zram.js';

const ALGORITHM = 'lz4';
const SEED = 1;

export interface ServiceBenchConfig {
  smoke: boolean;
  /** Pages in the stream (a multiple of 2 * requestPages). */
  pages: number;
  client: ClientShape;
  /** Rounds; each round does one write pass and one read pass per configuration. */
  passes: number;
  /** Pages written and read per service before timing (worker start-up, JIT). */
  warmPages: number;
  /** Whether to try the kernel's zram0. */
  kernel: boolean;
}

export function serviceConfig(smoke: boolean, kernel = true): ServiceBenchConfig {
  return smoke
    ? { smoke, pages: 512, client: { requestPages: 64, streams: 4 }, passes: 1, warmPages: 128, kernel }
    : { smoke, pages: 16384, client: { requestPages: 256, streams: 8 }, passes: 5, warmPages: 2048, kernel };
}

interface SvcConfig {
  key: string;
  workers: number;
  /** 'a': `client.streams` requests in flight; 'b': every request of the pass queued at once. */
  shape: 'a' | 'b';
}

/** 1 vs 2 workers in both client shapes (64-page ring entries, adaptive run-to-completion). */
export const SERVICE_CONFIGS: readonly SvcConfig[] = [
  { key: '1w a', workers: 1, shape: 'a' },
  { key: '2w a', workers: 2, shape: 'a' },
  { key: '1w b', workers: 1, shape: 'b' },
  { key: '2w b', workers: 2, shape: 'b' },
];

const DEVICE_WRITE = 'device writePage (1 thread, no service)';
const DEVICE_READ = 'device readPage (1 thread, no service)';
const svcName = (op: 'write' | 'read', key: string): string => `service ${op} ${key}`;
const KWRITE1 = 'kernel zram write (dd direct, 1 stream)';
const KWRITE2 = 'kernel zram write (dd direct, 2 streams)';
const KREAD1 = 'kernel zram read (dd direct, 1 stream)';
const KREAD2 = 'kernel zram read (dd direct, 2 streams)';

/** CPU accounting of one configuration and direction over all its passes. */
export interface CpuShare {
  /** Cores busy on average: process CPU / wall (at most the machine's cores). */
  processCores: number;
  /** The main thread's share of one core: main CPU / wall. */
  mainCore: number;
  /** Main-thread event-loop utilisation (0..1). */
  mainElu: number;
  /** The busiest other thread's share of a core (a compression worker). */
  thread1Core: number;
  /** The second busiest other thread's share of a core (the 2nd worker, or a helper with 1 worker). */
  thread2Core: number;
  /** Every remaining thread together (GC helpers, libuv, idle dedicated workers), cores. */
  restCores: number;
  /** Other processes' CPU over the passes, cores: machine busy (/proc/stat) minus this process. */
  otherProcessCores: number;
  /** Hypervisor steal over the passes, cores. */
  stealCores: number;
  /** Microseconds of main-thread CPU per page. */
  mainUsPerPage: number;
  /** Microseconds of every other thread's CPU per page (workers, GC helpers, libuv). */
  otherUsPerPage: number;
  /** If the process were purely CPU-bound on all cores: cores / (CPU per page), MB/s. */
  cpuBoundMbPerSec: number;
}

export interface ScalingSummary {
  /** 2 workers / 1 worker, shape (a). */
  writeSpeedup: number;
  readSpeedup: number;
  /** 2 workers / 1 worker, shape (b). */
  writeSpeedupAllQueued: number;
  readSpeedupAllQueued: number;
  /**
   * The 2-worker ceiling the 1-worker run's CPU costs predict on this machine:
   * main thread M us/page (one thread), workers W us/page (spread over 2),
   * everything sharing `cores`: min(1/M, 2/W, cores/(M+W)) over min(1/M, 1/W, cores/(M+W)).
   */
  writePredictedCeiling: number;
  readPredictedCeiling: number;
  cores: number;
  /** 1 vs 2 threads of pure CPU work, measured before the run: what 2 threads can get here. */
  parallelism: Parallelism;
  cpu: Record<string, CpuShare>;
}

export interface ServiceReport extends Omit<MicroReport, 'kind'> {
  kind: 'service';
  config: ServiceBenchConfig;
  scaling: ScalingSummary;
  kernel: { ran: boolean; reason?: string; algorithm?: string; setup?: string; verified?: boolean };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** A row from pass times (seconds per pass of `pages` pages): ns/op is per 4 KiB page. */
function rowFrom(group: string, name: string, secs: readonly number[], pages: number, baseline?: string): BenchRow {
  const per = secs.map((s) => (s * 1e9) / pages);
  const mean = per.reduce((a, b) => a + b, 0) / per.length;
  const sd = per.length > 1 ? Math.sqrt(per.reduce((a, b) => a + (b - mean) ** 2, 0) / (per.length - 1)) : 0;
  const ns = median(per);
  const row: BenchRow = {
    group,
    name,
    nsPerOp: ns,
    meanNsPerOp: mean,
    rme: mean > 0 ? ((1.96 * sd) / Math.sqrt(per.length) / mean) * 100 : 0,
    samples: per.length,
    rounds: per.length,
    ops: pages * per.length,
    opsPerSec: ns > 0 ? 1e9 / ns : 0,
    bytesPerOp: PAGE_SIZE,
  };
  if (baseline !== undefined) row.baseline = baseline;
  return row;
}

function cpuShare(samples: readonly PassSample[], pages: number, cores: number): CpuShare {
  const wall = samples.reduce((a, s) => a + s.seconds, 0);
  const proc = samples.reduce((a, s) => a + s.processCpu, 0);
  const main = samples.reduce((a, s) => a + s.mainCpu, 0);
  const total = pages * samples.length;
  const weighted = (f: (s: PassSample) => number) => samples.reduce((a, s) => a + f(s) * s.seconds, 0) / wall;
  const cpuPerPage = proc / total;
  const rank = (k: number): number => samples.reduce((a, s) => a + (s.otherThreads[k] ?? 0), 0) / wall;
  const rest = samples.reduce((a, s) => a + s.otherThreads.slice(2).reduce((x, y) => x + y, 0), 0) / wall;
  return {
    processCores: proc / wall,
    mainCore: main / wall,
    mainElu: weighted((s) => s.mainElu),
    thread1Core: rank(0),
    thread2Core: rank(1),
    restCores: rest,
    otherProcessCores: Math.max(0, (samples.reduce((a, s) => a + s.machineBusy, 0) - proc) / wall),
    stealCores: samples.reduce((a, s) => a + s.machineSteal, 0) / wall,
    mainUsPerPage: (main / total) * 1e6,
    otherUsPerPage: ((proc - main) / total) * 1e6,
    cpuBoundMbPerSec: cpuPerPage > 0 ? ((cores / cpuPerPage) * PAGE_SIZE) / 1e6 : 0,
  };
}

/** Predicted 2-worker / 1-worker ceiling from per-page CPU costs (see ScalingSummary). */
function predictedCeiling(c: CpuShare, cores: number): number {
  const m = c.mainUsPerPage;
  const w = c.otherUsPerPage;
  if (!(m > 0) || !(w > 0)) return Number.NaN;
  const one = Math.min(1 / m, 1 / w, cores / (m + w));
  const two = Math.min(1 / m, 2 / w, cores / (m + w));
  return two / one;
}

export interface RunServiceOptions {
  smoke?: boolean;
  /** Try the kernel's zram0 (default true). */
  kernel?: boolean;
  /** Where to write the JSON; null: do not. Default bench-results/service.json (service-smoke.json for --smoke). */
  jsonPath?: string | null;
  print?: boolean;
}

export async function runServiceBench(
  opts: RunServiceOptions = {},
): Promise<{ report: ServiceReport; jsonPath: string | null; kernel: KernelOutcome }> {
  const cfg = serviceConfig(opts.smoke ?? false, opts.kernel ?? true);
  const print = opts.print ?? true;
  const log = (s: string): void => {
    if (print) process.stdout.write(`${s}\n`);
  };
  const t0 = performance.now();
  const n = cfg.pages;
  const { requestPages } = cfg.client;
  if (n % (2 * requestPages) !== 0) throw new RangeError('pages must be a multiple of 2 * requestPages');
  const cores = availableParallelism();

  // how much parallel CPU this process really gets (other processes, vCPU sharing)
  const parallelism = await measureParallelism(2, cfg.smoke ? 2e6 : 1e8);
  log(
    `parallelism: 1 thread ${parallelism.oneMs.toFixed(0)} ms, 2 threads ${parallelism.togetherMs.toFixed(0)} ms: ` +
      `${parallelism.effectiveCores.toFixed(2)} effective cores of ${cores}`,
  );

  // the stream, generated once before any timing; the warm-up pages are a different stretch of it
  const stream = swapLikeStream(n, SEED);
  const warm = swapLikeStream(cfg.warmPages, SEED + 1).bytes;
  log(
    `stream: ${n} pages (${(n * PAGE_SIZE) / (1 << 20)} MiB) ${JSON.stringify(stream.kinds)}; ` +
      `${cfg.client.streams} streams of ${requestPages}-page requests, ${cfg.passes} pass(es) each`,
  );

  // services: all started first, each warmed up on pages [n, n + warm) which are then discarded
  const services = new Map<string, ZramService>();
  try {
    for (const c of SERVICE_CONFIGS) {
      const svc = await ZramService.start({
        disksize: (n + cfg.warmPages) * PAGE_SIZE,
        algorithm: ALGORITHM,
        compressionWorkers: c.workers,
        lockMode: 'class',
        compaction: false,
      });
      services.set(c.key, svc);
      await svc.writePages(n, warm);
      await svc.readPages(n, cfg.warmPages);
      await svc.discard(n * PAGE_SIZE, cfg.warmPages * PAGE_SIZE);
    }

    // the bare device on this thread: the same pages, no threads, no copies
    const dev = ZramDevice.create({
      disksize: n * PAGE_SIZE,
      maxDisksize: n * PAGE_SIZE,
      algorithm: ALGORITHM,
      name: 'zram_svc_bench',
    });
    const pageBuf = new Uint8Array(PAGE_SIZE);
    const devWrite: number[] = [];
    const devRead: number[] = [];
    const samples = new Map<string, PassSample[]>();
    for (const c of SERVICE_CONFIGS) for (const op of ['write', 'read']) samples.set(`${op} ${c.key}`, []);

    for (let round = 0; round < cfg.passes; round++) {
      log(`round ${round + 1}/${cfg.passes}`);
      dev.reset();
      dev.setDisksize(n * PAGE_SIZE);
      let t = performance.now();
      for (let i = 0; i < n; i++) dev.writePage(i, stream.pages[i]!);
      devWrite.push((performance.now() - t) / 1000);
      t = performance.now();
      for (let i = 0; i < n; i++) dev.readPage(i, pageBuf);
      devRead.push((performance.now() - t) / 1000);
      // rotate the order of the configurations from round to round (drift, thermal, GC)
      for (let k = 0; k < SERVICE_CONFIGS.length; k++) {
        const c = SERVICE_CONFIGS[(k + round) % SERVICE_CONFIGS.length]!;
        const svc = services.get(c.key)!;
        await svc.discard(0, n * PAGE_SIZE); // every write pass fills empty slots
        const shape = c.shape === 'a' ? cfg.client : { ...cfg.client, streams: n / requestPages };
        samples.get(`write ${c.key}`)!.push(await runPass(svc, 'write', n, stream.bytes, shape));
        samples.get(`read ${c.key}`)!.push(await runPass(svc, 'read', n, stream.bytes, shape));
      }
    }

    // outside timing: every service holds exactly the stream, nothing failed
    let checked = 0;
    for (const [key, svc] of services) {
      checked += await checkService(svc, n, stream.bytes, key);
      if (svc.failures.length > 0) throw new Error(`service ${key}: worker failures ${JSON.stringify(svc.failures)}`);
    }
    const svcMm = services.get('2w a')!.device.statValues().mm;
    const devMm = dev.statValues().mm;
    dev.close();

    // the kernel's zram on the same pages (or why not)
    let kernel: KernelOutcome = { ran: false, reason: 'disabled (--no-kernel)' };
    if (cfg.kernel) {
      log('kernel zram0...');
      kernel = await benchKernelZram({
        bytes: stream.bytes,
        requestPages,
        passes: cfg.passes,
        algorithm: ALGORITHM,
        log,
      });
    }
    if (!kernel.ran) log(`kernel zram comparison SKIPPED: ${kernel.reason}`);

    // rows: writes, then reads; 2 workers against 1, batch sizes against the default batch
    const rows: BenchRow[] = [];
    const cpu: Record<string, CpuShare> = {};
    for (const op of ['write', 'read'] as const) {
      rows.push(
        rowFrom('service', op === 'write' ? DEVICE_WRITE : DEVICE_READ, op === 'write' ? devWrite : devRead, n),
      );
      for (const c of SERVICE_CONFIGS) {
        const s = samples.get(`${op} ${c.key}`)!;
        const base = c.workers === 1 ? (op === 'write' ? DEVICE_WRITE : DEVICE_READ) : svcName(op, `1w ${c.shape}`);
        const row = rowFrom(
          'service',
          svcName(op, c.key),
          s.map((x) => x.seconds),
          n,
          base,
        );
        const share = cpuShare(s, n, cores);
        cpu[`${op} ${c.key}`] = share;
        const ring = services.get(c.key)!.ringStats();
        row.extra = {
          workers: c.workers,
          shape: c.shape,
          runToCompletionShare: ring.runToCompletionShare,
          workerBusyMs: ring.workers.map((w) => Math.round(w.busyMs)).join('/'),
          workerIdleMs: ring.workers.map((w) => Math.round(w.idleMs)).join('/'),
          cores: share.processCores,
          mainCore: share.mainCore,
          mainElu: share.mainElu,
          thread1: share.thread1Core,
          thread2: share.thread2Core,
          restThreads: share.restCores,
          mainUsPerPage: share.mainUsPerPage,
          otherUsPerPage: share.otherUsPerPage,
          cpuBoundMBps: share.cpuBoundMbPerSec,
          otherProcesses: share.otherProcessCores,
          steal: share.stealCores,
        };
        rows.push(row);
      }
      if (kernel.ran) {
        const k = kernel.result;
        rows.push(rowFrom('kernel', op === 'write' ? KWRITE1 : KREAD1, op === 'write' ? k.write1 : k.read1, n));
        rows.push(
          rowFrom(
            'kernel',
            op === 'write' ? KWRITE2 : KREAD2,
            op === 'write' ? k.write2 : k.read2,
            n,
            op === 'write' ? KWRITE1 : KREAD1,
          ),
        );
      }
    }
    linkBaselines(rows);
    const byName = new Map(rows.map((r) => [r.name, r] as const));
    const mbps = (name: string): number => byName.get(name)!.mbPerSec!;

    const speedup = (op: 'write' | 'read', shape: 'a' | 'b'): number =>
      mbps(svcName(op, `2w ${shape}`)) / mbps(svcName(op, `1w ${shape}`));
    const writeSpeedup = speedup('write', 'a');
    const readSpeedup = speedup('read', 'a');
    for (const op of ['write', 'read'] as const) {
      const dev1 = mbps(op === 'write' ? DEVICE_WRITE : DEVICE_READ);
      for (const shape of ['a', 'b'] as const) {
        const sp = speedup(op, shape);
        const r = byName.get(svcName(op, `2w ${shape}`))!;
        r.targets = [{ goal: '>= 1.8x one worker (MB/s)', measured: `${sp.toFixed(2)}x`, met: sp >= 1.8 }];
        r.extra = { ...r.extra, speedupVs1w: sp, vsDevice1Thread: r.mbPerSec! / dev1 };
        const r1 = byName.get(svcName(op, `1w ${shape}`))!;
        const vsDev = r1.mbPerSec! / dev1;
        r1.targets = [
          { goal: '>= 0.9x the bare device on one thread', measured: `${vsDev.toFixed(2)}x`, met: vsDev >= 0.9 },
        ];
        r1.extra = { ...r1.extra, vsDevice1Thread: vsDev };
      }
    }
    const comp = byName.get(DEVICE_WRITE)!;
    comp.extra = {
      ...stream.kinds,
      origDataSize: devMm.origDataSize,
      comprDataSize: devMm.comprDataSize,
      memUsedTotal: devMm.memUsedTotal,
      comprRatio: devMm.origDataSize / devMm.comprDataSize,
    };
    byName.get(DEVICE_READ)!.extra = { pagesChecked: checked, verified: true };
    if (kernel.ran) {
      const k = kernel.result;
      const w2 = byName.get(svcName('write', '2w a'))!;
      const wVsK = w2.mbPerSec! / mbps(KWRITE1);
      w2.targets!.push({
        goal: ">= 1.0x the kernel's single-stream write rate",
        measured: `${wVsK.toFixed(2)}x`,
        met: wVsK >= 1.0,
      });
      const kw = byName.get(KWRITE1)!;
      kw.extra = {
        algorithm: k.algorithm,
        origDataSize: k.mm.origDataSize,
        comprDataSize: k.mm.comprDataSize,
        memUsedTotal: k.mm.memUsedTotal,
        samePages: k.mm.samePages,
        hugePages: k.mm.hugePages,
        svc1wOverKernel: mbps(svcName('write', '1w a')) / mbps(KWRITE1),
        svc2wOverKernel: wVsK,
        svc2wOverKernel2streams: w2.mbPerSec! / mbps(KWRITE2),
        comprSizeSvcOverKernel: svcMm.comprDataSize / k.mm.comprDataSize,
        memUsedSvcOverKernel: svcMm.memUsedTotal / k.mm.memUsedTotal,
        svcMemUsedTotal: svcMm.memUsedTotal,
        svcComprDataSize: svcMm.comprDataSize,
      };
      byName.get(KREAD1)!.extra = {
        svc1wOverKernel: mbps(svcName('read', '1w a')) / mbps(KREAD1),
        svc2wOverKernel: mbps(svcName('read', '2w a')) / mbps(KREAD1),
        svc2wOverKernel2streams: mbps(svcName('read', '2w a')) / mbps(KREAD2),
        verified: k.verified,
      };
    }

    const scaling: ScalingSummary = {
      writeSpeedup,
      readSpeedup,
      writeSpeedupAllQueued: speedup('write', 'b'),
      readSpeedupAllQueued: speedup('read', 'b'),
      cores,
      parallelism,
      cpu,
      writePredictedCeiling: predictedCeiling(cpu['write 1w a']!, cores),
      readPredictedCeiling: predictedCeiling(cpu['read 1w a']!, cores),
    };
    const base = makeReport(rows, cfg.smoke, (performance.now() - t0) / 1000);
    const report: ServiceReport = {
      ...base,
      kind: 'service',
      config: cfg,
      scaling,
      kernel: kernel.ran
        ? {
            ran: true,
            algorithm: kernel.result.algorithm,
            setup: kernel.result.setup,
            verified: kernel.result.verified,
          }
        : { ran: false, reason: kernel.reason },
    };
    if (print) printReport(report);
    let jsonPath: string | null = null;
    if (opts.jsonPath !== null) {
      jsonPath = writeJson(
        opts.jsonPath ?? join(defaultResultsDir(), cfg.smoke ? 'service-smoke.json' : 'service.json'),
        report,
      );
      log(`\nwrote ${jsonPath}`);
    }
    return { report, jsonPath, kernel };
  } finally {
    await Promise.all([...services.values()].map((s) => s.close()));
  }
}

function printReport(r: ServiceReport): void {
  const c = r.config;
  const out: string[] = [
    '',
    `service benchmark${c.smoke ? ' (smoke)' : ''}: node ${r.node}, ${r.cpus} CPUs (${r.cpuModel}), ${r.wallSeconds.toFixed(1)} s`,
    `${c.pages} swap-like pages (${(c.pages * PAGE_SIZE) / (1 << 20)} MiB, ${ALGORITHM}), ${c.client.streams} requests of ${c.client.requestPages} pages in flight;`,
    `ns/op = ns per 4 KiB page, median of ${c.passes} pass(es); MB/s of uncompressed bytes; ratio = ns/op / baseline ns/op (below 1: faster).`,
    c.smoke ? 'SMOKE RUN: tiny counts; the figures say nothing about speed.' : '',
    '',
    formatTable(r.rows),
    '',
    'scaling (2 workers / 1 worker; shape a: requests in flight as above, shape b: every request queued at once):',
    `  parallelism check before the run: 2 spinning threads got ${r.scaling.parallelism.effectiveCores.toFixed(2)} effective cores of ${r.scaling.cores}`,
    `  shape a: write ${r.scaling.writeSpeedup.toFixed(2)}x, read ${r.scaling.readSpeedup.toFixed(2)}x; shape b: write ${r.scaling.writeSpeedupAllQueued.toFixed(2)}x, read ${r.scaling.readSpeedupAllQueued.toFixed(2)}x`,
    `  ceiling predicted from the 1-worker CPU costs on ${r.scaling.cores} cores: ` +
      `write ${r.scaling.writePredictedCeiling.toFixed(2)}x, read ${r.scaling.readPredictedCeiling.toFixed(2)}x`,
  ];
  for (const [k, s] of Object.entries(r.scaling.cpu)) {
    out.push(
      `  ${k.padEnd(13)} cores busy ${s.processCores.toFixed(2)}, main thread ${(s.mainCore * 100).toFixed(0)}% of a core ` +
        `(ELU ${(s.mainElu * 100).toFixed(0)}%), busiest threads ${(s.thread1Core * 100).toFixed(0)}% + ${(s.thread2Core * 100).toFixed(0)}% ` +
        `(rest ${(s.restCores * 100).toFixed(0)}%), ` +
        `main ${s.mainUsPerPage.toFixed(1)} us/page, other threads ${s.otherUsPerPage.toFixed(1)} us/page; ` +
        `other processes ${s.otherProcessCores.toFixed(2)} cores, steal ${s.stealCores.toFixed(2)}`,
    );
  }
  out.push(
    r.kernel.ran
      ? `kernel zram0: ${r.kernel.algorithm ?? ''}, verified ${String(r.kernel.verified)}, setup ${r.kernel.setup ?? ''}`
      : `kernel zram comparison SKIPPED: ${r.kernel.reason ?? ''}`,
  );
  process.stdout.write(`${out.join('\n')}\n`);
}
