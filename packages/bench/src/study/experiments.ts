// The study's experiments, one function each, all built on the stress bench's
// interleaved repeated runs and statistics: lock mode (class vs pool locks under
// a compaction-heavy load, per worker count), chain size, the seeds' compaction
// experiment repeated, fragmentation (buddyinfo before and after frame
// migration) and real memory (a live process's anonymous pages replayed as the
// swap stream, next to the kernel's zram when zram0 is free). Each returns a
// StudyResult: arms, comparisons with verdicts, and the experiment's own figures.

import { compactFrames, PAGE_SIZE, ZsPool } from '@zsmalloc/core';
import { ZramDevice } from '@zsmalloc/zram';
import { benchKernelZram } from '../service/kernel-zram.js';
import { configKey, defaultOptions, type RunConfig, type StressOptions } from '../stress/options.js';
import type { RunResult } from '../stress/run.js';
import { runSeeds } from '../stress/seeds.js';
import { armStat, compareArms, type ArmStat, type Comparison } from '../stress/stats.js';
import { runInterleaved } from '../stress/suite.js';
import { armSummary, compare, type ArmSummary, type Metric, type SweepComparison } from '../stress/sweeps.js';
import { PageBank, xorshift } from '../stress/workload.js';
import { readAnonPages } from './proc-pages.js';

export const EXPERIMENTS = ['lock-mode', 'chain-size', 'seeds-compaction', 'fragmentation', 'real-memory'] as const;
export type Experiment = (typeof EXPERIMENTS)[number];

export interface StudyOptions {
  smoke: boolean;
  seconds: number;
  repeat: number;
  workers: number[];
  lockdep: boolean;
  pid: number | null;
  maxPages: number;
  kernel: boolean;
  progress: boolean;
  log: (line: string) => void;
}

export interface StudyResult {
  experiment: Experiment;
  /** What the load was, in words (printed and in the report). */
  setup: string;
  arms: ArmSummary[];
  comparisons: (SweepComparison | (Comparison & { a: string; b: string; metric: string }))[];
  runs: RunResult[];
  /** Experiment-specific figures (each with samples/median/ci95 where repeated). */
  figures: Record<string, unknown>;
}

/** The stress options of a study run: the stress bench's defaults with the study's length and repeats. */
function stressOptions(o: StudyOptions): StressOptions {
  const s = defaultOptions(o.smoke);
  s.seconds = o.seconds;
  s.repeat = o.repeat;
  s.lockdep = o.lockdep;
  s.progress = o.progress;
  s.print = false;
  s.kernel = o.kernel;
  if (!o.smoke) s.workingSet = 8192;
  return s;
}

async function armsOf(
  o: StudyOptions,
  s: StressOptions,
  arms: { label: string; cfg: RunConfig }[],
): Promise<{ byLabel: Map<string, RunResult[]>; ordered: RunResult[] }> {
  const bank = new PageBank(Math.min(4096, s.workingSet), s.requestPages, s.mix, 1);
  const { results, ordered } = await runInterleaved(
    arms.map((a) => a.cfg),
    s,
    bank,
    o.log,
  );
  const byLabel = new Map<string, RunResult[]>();
  for (const a of arms) byLabel.set(a.label, results.get(configKey(a.cfg))!);
  return { byLabel, ordered };
}

/** Class locks vs one pool lock under compaction-heavy load, for each worker count. */
export async function lockMode(o: StudyOptions): Promise<StudyResult> {
  const s = stressOptions(o);
  // compaction-heavy: background compaction whenever 4 pages could be freed, checked every
  // 20 ms; writeback, swap-in and frame compaction (kcompactd) every 250 ms
  s.compactionThreshold = 4;
  s.compactionIntervalMs = 20;
  s.maintenanceMs = 250;
  const arms = o.workers.flatMap((w) =>
    (['class', 'pool'] as const).map((m) => ({
      label: `${m} ${w}w`,
      cfg: { ...s.base, workers: w, lockMode: m, compaction: true } satisfies RunConfig,
    })),
  );
  const { byLabel, ordered } = await armsOf(o, s, arms);
  const metrics: Metric[] = ['mbPerSec', 'p99Ms', 'lockWaitMs', 'contentions'];
  const comparisons = o.workers.flatMap((w) =>
    compare(
      { label: `pool ${w}w`, runs: byLabel.get(`pool ${w}w`)! },
      { label: `class ${w}w`, runs: byLabel.get(`class ${w}w`)! },
      metrics,
    ),
  );
  return {
    experiment: 'lock-mode',
    setup:
      `class vs pool locks, workers ${o.workers.join(', ')}; background compaction at ${s.compactionThreshold} pages every ${s.compactionIntervalMs} ms, ` +
      `writeback + swap-in + frame compaction every ${s.maintenanceMs} ms; ${s.workingSet} pages working set, ${s.seconds} s per run, ${s.repeat} interleaved repeats`,
    arms: arms.map((a, i) => armSummary(a.label, byLabel.get(a.label)!, i + 1)),
    comparisons,
    runs: ordered,
    figures: {},
  };
}

/** Chain size 4 / 8 / 16: memory used and throughput, each against chain 8. */
export async function chainSize(o: StudyOptions): Promise<StudyResult> {
  const s = stressOptions(o);
  const w = o.workers[o.workers.length - 1]!;
  const arms = [4, 8, 16].map((c) => ({ label: `chain ${c}`, cfg: { ...s.base, workers: w, chainSize: c } }));
  const { byLabel, ordered } = await armsOf(o, s, arms);
  const ref = { label: 'chain 8', runs: byLabel.get('chain 8')! };
  const comparisons = [4, 16].flatMap((c) =>
    compare({ label: `chain ${c}`, runs: byLabel.get(`chain ${c}`)! }, ref, ['memUsedTotal', 'mbPerSec', 'p99Ms']),
  );
  const usedRatio: Record<string, ArmStat> = {};
  for (const a of arms) usedRatio[a.label] = armStat(byLabel.get(a.label)!.map((r) => r.usedRatio));
  return {
    experiment: 'chain-size',
    setup: `chain size 4 / 8 / 16, ${w} workers, ${s.seconds} s per run, ${s.repeat} interleaved repeats`,
    arms: arms.map((a, i) => armSummary(a.label, byLabel.get(a.label)!, i + 1)),
    comparisons,
    runs: ordered,
    figures: { usedRatio },
  };
}

/** The seeds' experiment, repeated: used ratio before and after compaction. */
export async function seedsCompaction(o: StudyOptions): Promise<StudyResult> {
  const s = stressOptions(o);
  const before: number[] = [];
  const after: number[] = [];
  const compacted: number[] = [];
  const ms: number[] = [];
  for (let i = 0; i < o.repeat; i++) {
    const r = await runSeeds(s);
    before.push(r.before.usedRatio);
    after.push(r.after.usedRatio);
    compacted.push(r.pagesCompacted);
    ms.push(r.compactMs);
    o.log(
      `  seeds #${i + 1}: used ratio ${(r.before.usedRatio * 100).toFixed(2)}% -> ${(r.after.usedRatio * 100).toFixed(2)}%, ${r.pagesCompacted} pages compacted in ${r.compactMs.toFixed(1)} ms`,
    );
  }
  const c = compareArms(after, before, {
    a: 'after compaction',
    b: 'before',
    what: 'used ratio',
    better: 'higher',
    word: 'higher',
  });
  return {
    experiment: 'seeds-compaction',
    setup: `${s.seedsPages} pages, ${s.seedsRounds} swap in/out rounds, then one compaction; ${o.repeat} repeats`,
    arms: [],
    comparisons: [{ a: 'after compaction', b: 'before', metric: 'usedRatio', ...c }],
    runs: [],
    figures: {
      usedRatioBefore: armStat(before),
      usedRatioAfter: armStat(after),
      pagesCompacted: armStat(compacted),
      compactMs: armStat(ms),
    },
  };
}

const highestFree = (bi: number[]): number => bi.reduce((top, n, order) => (n > 0 ? order : top), -1);
const blocksAtLeast = (bi: number[], order: number): number =>
  bi.reduce((a, n, o) => (o >= order ? a + n * 2 ** (o - order) : a), 0);

/**
 * Fragmentation: fill a pool with objects of random sizes, free a random 60% of
 * them (scattered holes), compact zspages, then run frame migration (the frame
 * compactor for the highest order); buddyinfo before and after, per repeat.
 */
export async function fragmentation(o: StudyOptions): Promise<StudyResult> {
  const orderGoal = 3;
  const hiBefore: number[] = [];
  const hiAfter: number[] = [];
  const blkBefore: number[] = [];
  const blkAfter: number[] = [];
  const migrated: number[] = [];
  const buddyinfo: { before: number[]; after: number[] }[] = [];
  const bytes = o.smoke ? 8 << 20 : 64 << 20;
  for (let i = 0; i < o.repeat; i++) {
    const pool = ZsPool.create({ maxBytes: bytes, lockdep: o.lockdep, name: 'frag' });
    const rnd = xorshift(0xf4a6 + i * 7919);
    const hs: number[] = [];
    const buf = new Uint8Array(PAGE_SIZE);
    for (;;) {
      const size = 32 + (rnd() % 3000);
      let h: number;
      try {
        h = pool.malloc(size);
      } catch {
        break;
      }
      pool.write(h, buf.subarray(0, size));
      hs.push(h);
      if (pool.stats().pagesUsed * PAGE_SIZE > bytes * 0.85) break;
    }
    for (const h of hs) if (rnd() % 100 < 60) pool.free(h);
    pool.compact();
    const before = pool.buddyinfo();
    const r = compactFrames(pool, before.length - 1);
    const after = pool.buddyinfo();
    pool.verify();
    buddyinfo.push({ before, after });
    hiBefore.push(highestFree(before));
    hiAfter.push(highestFree(after));
    blkBefore.push(blocksAtLeast(before, orderGoal));
    blkAfter.push(blocksAtLeast(after, orderGoal));
    migrated.push(r.migrated);
    pool.detach();
    o.log(
      `  fragmentation #${i + 1}: buddyinfo ${before.join(' ')} -> ${after.join(' ')} (${r.migrated} frames migrated)`,
    );
  }
  const c = compareArms(blkAfter, blkBefore, {
    a: 'after frame migration',
    b: 'before',
    what: `free blocks of order >= ${orderGoal}`,
    better: 'higher',
    word: 'more',
  });
  return {
    experiment: 'fragmentation',
    setup: `pool of ${bytes >> 20} MiB filled to 85% with 32..3032-byte objects, 60% freed at random, zspages compacted, then frame migration toward the highest order; ${o.repeat} repeats`,
    arms: [],
    comparisons: [{ a: 'after frame migration', b: 'before', metric: `blocks>=order${orderGoal}`, ...c }],
    runs: [],
    figures: {
      highestFreeOrderBefore: armStat(hiBefore),
      highestFreeOrderAfter: armStat(hiAfter),
      blocksBefore: armStat(blkBefore),
      blocksAfter: armStat(blkAfter),
      framesMigrated: armStat(migrated),
      buddyinfo,
    },
  };
}

/**
 * Real memory: a live process's anonymous pages replayed as the swap stream into
 * a zram device (every page written once, then half swapped in and freed, then
 * compaction), and into the kernel's zram0 when it is free.
 */
export async function realMemory(o: StudyOptions): Promise<StudyResult> {
  if (o.pid === null) throw new Error('real-memory needs --pid PID');
  const p = readAnonPages(o.pid, o.maxPages);
  o.log(
    `  read ${p.pages} anonymous pages of process ${p.pid} (${p.mappings.length} mappings, ${p.pagesMapped} pages mapped${p.unreadable > 0 ? `, ${p.unreadable} unreadable skipped` : ''})`,
  );
  if (p.pages === 0) throw new Error(`process ${p.pid} has no readable anonymous pages`);
  const dev = ZramDevice.create({
    disksize: p.pages * PAGE_SIZE,
    pool: { maxBytes: Math.max(p.pages * PAGE_SIZE * 1.25 + (1 << 20), 16 << 20), lockdep: o.lockdep },
  });
  try {
    for (let i = 0; i < p.pages; i++) dev.writePage(i, p.bytes.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
    const full = dev.statValues().mm;
    // swap-in: half the pages, picked at random, read and freed
    const rnd = xorshift(0x5a5a);
    for (let i = 0; i < p.pages; i++) if (rnd() & 1) dev.slotFreeNotify(i);
    const before = dev.statValues().mm;
    const compacted = dev.compact();
    const after = dev.statValues().mm;
    const ratio = (m: { comprDataSize: number; memUsedTotal: number }) =>
      m.memUsedTotal > 0 ? m.comprDataSize / m.memUsedTotal : 0;
    const figures: Record<string, unknown> = {
      pid: p.pid,
      pages: p.pages,
      pagesMapped: p.pagesMapped,
      mappings: p.mappings.length,
      compressionRatio: full.comprDataSize > 0 ? full.origDataSize / full.comprDataSize : 0,
      sameFilledShare: full.samePages / p.pages,
      hugeShare: full.hugePages / p.pages,
      memUsedTotal: full.memUsedTotal,
      usedRatioBeforeCompaction: ratio(before),
      usedRatioAfterCompaction: ratio(after),
      pagesCompacted: compacted,
    };
    if (!o.kernel) figures.kernel = { ran: false, reason: 'turned off (--no-kernel)' };
    else {
      const whole = Math.floor(p.pages / 128) * 128;
      if (whole === 0) figures.kernel = { ran: false, reason: 'fewer than 128 pages read' };
      else {
        const k = await benchKernelZram({
          bytes: p.bytes.subarray(0, whole * PAGE_SIZE),
          requestPages: 64,
          passes: 1,
          algorithm: 'lz4',
        });
        figures.kernel = k.ran
          ? {
              ran: true,
              pages: whole,
              compressionRatio: k.result.mm.origDataSize / Math.max(1, k.result.mm.comprDataSize),
              sameFilledShare: k.result.mm.samePages / whole,
              hugeShare: k.result.mm.hugePages / whole,
              memUsedTotal: k.result.mm.memUsedTotal,
            }
          : { ran: false, reason: k.reason };
      }
    }
    return {
      experiment: 'real-memory',
      setup: `process ${p.pid}: ${p.pages} anonymous pages written once, a random half swapped in (freed), then compaction`,
      arms: [],
      comparisons: [],
      runs: [],
      figures,
    };
  } finally {
    dev.close();
  }
}
