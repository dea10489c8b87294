// One stress run through ZramService: N compression workers, the swap I/O worker
// (idle marking, writeback of idle pages, swap-in of written-back ranges) and the
// compaction/migration worker (background compaction when on, frame compaction
// as kcompactd would) over the swap-like workload. Prefills the working set, then
// runs request streams for the given seconds and measures throughput, request
// latency percentiles, mm_stat every 250 ms, lock_stat per lock class,
// compaction and migration statistics and buddyinfo.

import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PAGE_SIZE, type LockClassStats, type MigrationStats } from '@zsmalloc/core';
import type { MmStat } from '@zsmalloc/zram';
import { ZramService } from '@zsmalloc/workers';
import { configKey, type RunConfig, type StressOptions } from './options.js';
import { Progress } from './progress.js';
import { LatencyRecorder, type PageBank, xorshift, type Percentiles } from './workload.js';

export interface MmSample {
  /** Seconds since the timed phase began (negative: prefill). */
  t: number;
  origDataSize: number;
  comprDataSize: number;
  memUsedTotal: number;
  /** comprDataSize / memUsedTotal: how full the frames are. */
  usedRatio: number;
  pagesCompacted: number;
  /** Pages compaction could free now (the shrinker's count). */
  compactable: number;
}

export interface LockRow {
  name: string;
  state: string;
  acquisitions: number;
  contentions: number;
  /** Microseconds. */
  waitTotalUs: number;
  waitMaxUs: number;
  holdTotalUs: number;
  /** Contention points: the call sites that waited for this class, most wait first (on the write/only row). */
  points: { site: string; contentions: number; waitTotalUs: number }[];
}

/** Lock wait (ms) per lock class (all states) in each 250 ms interval of the timed phase. */
export interface LockWaitSeries {
  /** End of each interval, seconds since the timed phase began. */
  t: number[];
  ms: Record<string, number[]>;
}

export interface RunResult {
  key: string;
  /** Which repeat of its configuration this run was (0-based). */
  repeat: number;
  config: RunConfig;
  seconds: number;
  prefill: { pages: number; seconds: number; mbPerSec: number };
  requests: number;
  requestsPerSec: number;
  /** Pages read + written per second (discards excluded). */
  pagesPerSec: number;
  /** Uncompressed MB/s of pages read + written. */
  mbPerSec: number;
  pages: { read: number; written: number; discarded: number };
  latencyMs: { all: Percentiles; read: Percentiles; write: Percentiles; discard: Percentiles };
  samples: MmSample[];
  /** Sample times (s) at which pages_compacted grew: compaction ran in between. */
  compactionMarks: number[];
  /** Times (s) at which the maintenance loop ran frame compaction (kcompactd). */
  frameCompactionMarks: number[];
  lockWaitSeries: LockWaitSeries;
  mm: MmStat;
  usedRatio: number;
  lockStat: LockRow[];
  migration: MigrationStats;
  compactionWorker: { runs: number; pagesFreed: number; frameCompactions: number; framesMigrated: number } | null;
  swap: { writebacks: number; pagesWrittenBack: number; swapIns: number; pagesSwappedIn: number };
  buddyinfo: number[];
  failures: number;
}

function sample(svc: ZramService, t: number): MmSample {
  const mm = svc.device.statValues().mm;
  return {
    t,
    origDataSize: mm.origDataSize,
    comprDataSize: mm.comprDataSize,
    memUsedTotal: mm.memUsedTotal,
    usedRatio: mm.memUsedTotal > 0 ? mm.comprDataSize / mm.memUsedTotal : 0,
    pagesCompacted: mm.pagesCompacted,
    compactable: svc.pool.compactable(),
  };
}

function lockRows(stats: LockClassStats[]): LockRow[] {
  return stats.map((s) => ({
    name: s.name,
    state: s.state,
    acquisitions: s.acquisitions,
    contentions: s.contentions,
    waitTotalUs: s.waitTotal,
    waitMaxUs: s.waitMax,
    holdTotalUs: s.holdTotal,
    points: s.points.map((p) => ({ site: p.site, contentions: p.contentions, waitTotalUs: p.waitTotal })),
  }));
}

/** Total lock wait (us) per class name, all states summed. */
function waitByClass(stats: LockClassStats[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const s of stats) m.set(s.name, (m.get(s.name) ?? 0) + s.waitTotal);
  return m;
}

function diffMigration(a: MigrationStats, b: MigrationStats): MigrationStats {
  const out = { ...b };
  for (const k of Object.keys(out) as (keyof MigrationStats)[]) out[k] = b[k] - a[k];
  return out;
}

/** Runs one configuration; `bank` holds the page contents written. */
export async function runOne(cfg: RunConfig, opts: StressOptions, bank: PageBank, label: string): Promise<RunResult> {
  const ws = opts.workingSet;
  const rp = opts.requestPages;
  const backingFile = join(tmpdir(), `zs-stress-${process.pid}-${Math.floor(Math.random() * 1e9)}.img`);
  const svc = await ZramService.start({
    disksize: ws * PAGE_SIZE,
    compressionWorkers: cfg.workers,
    lockMode: cfg.lockMode,
    percpuCache: cfg.percpuCache ?? false,
    chainSize: cfg.chainSize,
    lockStat: true,
    lockdep: opts.lockdep,
    compaction: cfg.compaction
      ? { thresholdPages: opts.compactionThreshold, intervalMs: opts.compactionIntervalMs }
      : false,
    backingFile,
  });
  const progress = new Progress(opts.progress, label);
  try {
    // prefill: the whole working set, sequentially, from the bank
    const p0 = performance.now();
    {
      let next = 0;
      const fill = async (): Promise<void> => {
        for (;;) {
          const first = next;
          next += rp;
          if (first >= ws) return;
          const n = Math.min(rp, ws - first);
          const v = bank.view(first % bank.pages);
          await svc.writePages(first, n === rp ? v : v.subarray(0, n * PAGE_SIZE));
          progress.update(first / ws, 'prefill');
        }
      };
      await Promise.all(Array.from({ length: opts.streams }, fill));
    }
    const prefillSec = (performance.now() - p0) / 1000;
    svc.pool.clearLockStat();
    const mig0 = svc.pool.migrationStats();
    const cw0 = (await svc.stats()).compaction;

    const lat = {
      all: new LatencyRecorder(),
      read: new LatencyRecorder(),
      write: new LatencyRecorder(),
      discard: new LatencyRecorder(),
    };
    const pages = { read: 0, written: 0, discarded: 0 };
    const swap = { writebacks: 0, pagesWrittenBack: 0, swapIns: 0, pagesSwappedIn: 0 };
    const rwTotal = opts.rw.read + opts.rw.write + opts.rw.discard;
    const readCut = (opts.rw.read / rwTotal) * 4294967296;
    const writeCut = ((opts.rw.read + opts.rw.write) / rwTotal) * 4294967296;
    const samples: MmSample[] = [];
    const t0 = performance.now();
    const deadline = t0 + opts.seconds * 1000;
    let stop = false;
    samples.push(sample(svc, 0));
    const series: LockWaitSeries = { t: [], ms: {} };
    const frameMarks: number[] = [];
    let lastWait = waitByClass(svc.pool.lockStats(false));
    const timer = setInterval(() => {
      const t = (performance.now() - t0) / 1000;
      const s = sample(svc, t);
      samples.push(s);
      const now = waitByClass(svc.pool.lockStats(false));
      const i = series.t.length;
      series.t.push(t);
      for (const [name, us] of now) {
        let col = series.ms[name];
        if (col === undefined) {
          col = new Array<number>(i).fill(0);
          series.ms[name] = col;
        }
        col.push((us - (lastWait.get(name) ?? 0)) / 1000);
      }
      lastWait = now;
      progress.update(
        t / opts.seconds,
        `${(((pages.read + pages.written) * PAGE_SIZE) / (1 << 20) / Math.max(t, 1e-3)).toFixed(0)} MB/s, used ${(s.usedRatio * 100).toFixed(1)}%`,
      );
    }, 250);

    const stream = async (id: number): Promise<void> => {
      const rnd = xorshift(0x1234567 + id * 7919);
      const span = ws - rp + 1;
      while (!stop) {
        const r = rnd();
        const first = rnd() % span;
        const a = performance.now();
        if (r < readCut) {
          await svc.readPages(first, rp);
          const d = performance.now() - a;
          lat.read.record(d);
          lat.all.record(d);
          pages.read += rp;
        } else if (r < writeCut) {
          await svc.writePages(first, bank.view(rnd() % bank.pages));
          const d = performance.now() - a;
          lat.write.record(d);
          lat.all.record(d);
          pages.written += rp;
        } else {
          await svc.discard(first * PAGE_SIZE, rp * PAGE_SIZE);
          const d = performance.now() - a;
          lat.discard.record(d);
          lat.all.record(d);
          pages.discarded += rp;
        }
        if (performance.now() >= deadline) stop = true;
      }
    };
    // the swap I/O worker and kcompactd: every second, write back pages idle
    // since the last mark, mark everything idle again, swap a written-back range
    // in, and run frame compaction for a block one order above the largest free one
    const maintenance = async (): Promise<void> => {
      const rnd = xorshift(4242);
      const period = Math.min(opts.maintenanceMs, (opts.seconds * 1000) / 3);
      svc.idle('all');
      while (!stop) {
        await new Promise((r) => setTimeout(r, period));
        if (stop) break;
        swap.pagesWrittenBack += await svc.writeback('idle');
        swap.writebacks++;
        svc.idle('all');
        const first = rnd() % Math.max(1, ws - 256);
        swap.pagesSwappedIn += await svc.readback(first, Math.min(256, ws - first));
        swap.swapIns++;
        // kcompactd for a pending high-order request: one order above the largest free block (3..10)
        const bi = svc.pool.buddyinfo();
        let top = -1;
        for (let o = 0; o < bi.length; o++) if (bi[o]! > 0) top = o;
        frameMarks.push((performance.now() - t0) / 1000);
        await svc.frameCompact(Math.min(10, Math.max(3, top + 1)));
      }
    };
    await Promise.all([...Array.from({ length: opts.streams }, (_, i) => stream(i)), maintenance()]);
    const seconds = (performance.now() - t0) / 1000;
    clearInterval(timer);
    samples.push(sample(svc, seconds));
    progress.finish();

    const st = await svc.stats();
    const marks: number[] = [];
    for (let i = 1; i < samples.length; i++)
      if (samples[i]!.pagesCompacted > samples[i - 1]!.pagesCompacted) marks.push(samples[i]!.t);
    const cw = st.compaction;
    const requests = lat.all.count;
    const moved = pages.read + pages.written;
    const mm = svc.device.statValues().mm;
    return {
      key: configKey(cfg),
      repeat: 0,
      config: { ...cfg },
      seconds,
      prefill: { pages: ws, seconds: prefillSec, mbPerSec: (ws * PAGE_SIZE) / (1 << 20) / prefillSec },
      requests,
      requestsPerSec: requests / seconds,
      pagesPerSec: moved / seconds,
      mbPerSec: (moved * PAGE_SIZE) / (1 << 20) / seconds,
      pages,
      latencyMs: {
        all: lat.all.percentiles(),
        read: lat.read.percentiles(),
        write: lat.write.percentiles(),
        discard: lat.discard.percentiles(),
      },
      samples,
      compactionMarks: marks,
      frameCompactionMarks: frameMarks,
      lockWaitSeries: series,
      mm,
      usedRatio: mm.memUsedTotal > 0 ? mm.comprDataSize / mm.memUsedTotal : 0,
      lockStat: lockRows(svc.pool.lockStats()),
      migration: diffMigration(mig0, svc.pool.migrationStats()),
      compactionWorker:
        cw === null || cw0 === null
          ? null
          : {
              runs: cw.runs - cw0.runs,
              pagesFreed: cw.pagesFreed - cw0.pagesFreed,
              frameCompactions: cw.frameCompactions - cw0.frameCompactions,
              framesMigrated: cw.framesMigrated - cw0.framesMigrated,
            },
      swap,
      buddyinfo: svc.pool.buddyinfo(),
      failures: st.failures.length,
    };
  } finally {
    progress.finish();
    await svc.close();
    rmSync(backingFile, { force: true });
  }
}
