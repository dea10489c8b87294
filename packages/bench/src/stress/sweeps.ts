// The sweeps of the stress bench: which runs each needs (shared runs are done
// once: the base configuration serves every sweep it belongs to), and each
// sweep's side-by-side summary with ratios against its reference run —
// workers 1..cores (speedup), lock mode class vs pool (lock wait per lock
// class), chain size 4/8/16 (memory used, used ratio), background compaction
// on vs off (foreground p99 cost). With repeats, every figure of a row is the
// median over the arm's runs, and each sweep carries per-arm statistics (samples,
// median, 95% interval) and its comparisons with a verdict (stats.ts).

import { availableParallelism } from 'node:os';
import { configKey, type RunConfig, type StressOptions, type SweepName } from './options.js';
import type { RunResult } from './run.js';
import { armStat, compareArms, median, type ArmStat, type Comparison } from './stats.js';

/** One arm of a sweep over its repeats (the JSON shape: samples, median, ci95 per figure). */
export interface ArmSummary {
  label: string;
  key: string;
  runs: number;
  mbPerSec: ArmStat;
  p99Ms: ArmStat;
  memUsedTotal: ArmStat;
  lockWaitMs: ArmStat;
  /** Lock contentions over every class. */
  contentions: ArmStat;
  /** Lock wait (ms) per lock class and state. */
  lockWaitByClass: Record<string, ArmStat>;
  /** Contention points per lock class: the call sites that waited, wait (ms) and contentions. */
  contentionPoints: Record<string, { site: string; waitMs: ArmStat; contentions: ArmStat }[]>;
}

export type Metric = 'mbPerSec' | 'p99Ms' | 'memUsedTotal' | 'lockWaitMs' | 'contentions';
const METRIC: Record<Metric, { what: string; better: 'higher' | 'lower' }> = {
  mbPerSec: { what: 'MB/s', better: 'higher' },
  p99Ms: { what: 'p99 latency', better: 'lower' },
  memUsedTotal: { what: 'mem_used_total', better: 'lower' },
  lockWaitMs: { what: 'lock wait', better: 'lower' },
  contentions: { what: 'lock contentions', better: 'lower' },
};

const contentions = (r: RunResult): number => r.lockStat.reduce((a, l) => a + l.contentions, 0);

export interface SweepComparison extends Comparison {
  a: string;
  b: string;
  metric: Metric;
}

const lockLabel = (l: { name: string; state: string }): string => (l.state === '' ? l.name : `${l.name}-${l.state}`);

/** Per-arm statistics over the arm's repeated runs. */
export function armSummary(label: string, runs: RunResult[], seed = 1): ArmSummary {
  const locks = new Set<string>();
  const points = new Map<string, Set<string>>();
  for (const r of runs)
    for (const l of r.lockStat) {
      locks.add(lockLabel(l));
      for (const p of l.points) {
        const set = points.get(l.name) ?? new Set<string>();
        set.add(p.site);
        points.set(l.name, set);
      }
    }
  const lockWaitByClass: Record<string, ArmStat> = {};
  for (const lock of locks)
    lockWaitByClass[lock] = armStat(
      runs.map((r) => (r.lockStat.find((l) => lockLabel(l) === lock)?.waitTotalUs ?? 0) / 1000),
      seed,
    );
  const contentionPoints: ArmSummary['contentionPoints'] = {};
  for (const [cls, sites] of points) {
    const list = [...sites].map((site) => {
      const at = (r: RunResult) =>
        r.lockStat.flatMap((l) => (l.name === cls ? l.points : [])).find((p) => p.site === site);
      return {
        site,
        waitMs: armStat(
          runs.map((r) => (at(r)?.waitTotalUs ?? 0) / 1000),
          seed,
        ),
        contentions: armStat(
          runs.map((r) => at(r)?.contentions ?? 0),
          seed,
        ),
      };
    });
    contentionPoints[cls] = list.sort((x, y) => y.waitMs.median - x.waitMs.median);
  }
  return {
    label,
    key: runs[0]!.key,
    runs: runs.length,
    mbPerSec: armStat(
      runs.map((r) => r.mbPerSec),
      seed,
    ),
    p99Ms: armStat(
      runs.map((r) => r.latencyMs.all.p99),
      seed,
    ),
    memUsedTotal: armStat(
      runs.map((r) => r.mm.memUsedTotal),
      seed,
    ),
    lockWaitMs: armStat(runs.map(lockWaitMs), seed),
    contentions: armStat(runs.map(contentions), seed),
    lockWaitByClass,
    contentionPoints,
  };
}

/** Compares arm a with arm b on each metric: ratio of medians a/b, its interval and the verdict. */
export function compare(
  a: { label: string; runs: RunResult[] },
  b: { label: string; runs: RunResult[] },
  metrics: Metric[],
): SweepComparison[] {
  const pick: Record<Metric, (r: RunResult) => number> = {
    mbPerSec: (r) => r.mbPerSec,
    p99Ms: (r) => r.latencyMs.all.p99,
    memUsedTotal: (r) => r.mm.memUsedTotal,
    lockWaitMs,
    contentions,
  };
  return metrics.map((metric) => ({
    a: a.label,
    b: b.label,
    metric,
    ...compareArms(a.runs.map(pick[metric]), b.runs.map(pick[metric]), { a: a.label, b: b.label, ...METRIC[metric] }),
  }));
}

export interface SweepRow {
  label: string;
  key: string;
  mbPerSec: number;
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  memUsedTotal: number;
  usedRatio: number;
  /** Total lock wait over every lock class, ms. */
  lockWaitMs: number;
  /** The sweep's own figure against the reference row (see SweepSummary.ratioOf). */
  ratio: number;
}

export interface SweepSummary {
  name: SweepName;
  /** What `ratio` divides: e.g. "MB/s / MB/s of 1 worker". */
  ratioOf: string;
  reference: string;
  rows: SweepRow[];
  /** Lock sweep: wait time (ms) per lock class and state, per row label. */
  lockWaitByClass?: { lock: string; waitMs: Record<string, number>; contentions: Record<string, number> }[];
  /** Compaction sweep: compaction runs and pages compacted in the "on" run. */
  notes?: Record<string, number>;
  /** Per-arm statistics over the repeats, in row order. */
  arms: ArmSummary[];
  /** Each arm against the sweep's reference, per metric, with a verdict. */
  comparisons: SweepComparison[];
}

export function sweepConfigs(name: SweepName, base: RunConfig): { label: string; cfg: RunConfig }[] {
  switch (name) {
    case 'workers': {
      const cores = Math.max(1, availableParallelism());
      return Array.from({ length: cores }, (_, i) => ({
        label: `${i + 1} worker${i === 0 ? '' : 's'}`,
        cfg: { ...base, workers: i + 1 },
      }));
    }
    case 'lock-mode':
      return (['class', 'pool'] as const).map((m) => ({ label: m, cfg: { ...base, lockMode: m } }));
    case 'chain':
      return [4, 8, 16].map((c) => ({ label: `chain ${c}`, cfg: { ...base, chainSize: c } }));
    case 'compaction':
      return [true, false].map((on) => ({
        label: on ? 'compaction on' : 'compaction off',
        cfg: { ...base, compaction: on },
      }));
  }
}

/** Every distinct configuration the options need, the base first. */
export function plannedConfigs(opts: StressOptions): RunConfig[] {
  const out = new Map<string, RunConfig>([[configKey(opts.base), opts.base]]);
  for (const s of opts.sweeps) for (const { cfg } of sweepConfigs(s, opts.base)) out.set(configKey(cfg), cfg);
  return [...out.values()];
}

const lockWaitMs = (r: RunResult): number => r.lockStat.reduce((a, l) => a + l.waitTotalUs, 0) / 1000;

/** Median over an arm's runs of one figure. */
const med = (runs: RunResult[], f: (r: RunResult) => number): number => median(runs.map(f));

/** A run whose every figure is the median of the arm's repeats (a single run is itself). */
function medianRun(runs: RunResult[]): RunResult {
  if (runs.length === 1) return runs[0]!;
  const first = runs[0]!;
  const lat = (k: 'p50' | 'p99' | 'p999') => med(runs, (r) => r.latencyMs.all[k]);
  return {
    ...first,
    mbPerSec: med(runs, (r) => r.mbPerSec),
    requestsPerSec: med(runs, (r) => r.requestsPerSec),
    latencyMs: {
      ...first.latencyMs,
      all: { ...first.latencyMs.all, p50: lat('p50'), p99: lat('p99'), p999: lat('p999') },
    },
    mm: { ...first.mm, memUsedTotal: med(runs, (r) => r.mm.memUsedTotal) },
    usedRatio: med(runs, (r) => r.usedRatio),
    lockStat: first.lockStat.map((l) => ({
      ...l,
      contentions: med(runs, (r) => r.lockStat.find((x) => lockLabel(x) === lockLabel(l))?.contentions ?? 0),
      waitTotalUs: med(runs, (r) => r.lockStat.find((x) => lockLabel(x) === lockLabel(l))?.waitTotalUs ?? 0),
    })),
  };
}

function rowOf(label: string, r: RunResult, ratio: number, runs: RunResult[]): SweepRow {
  const l = r.latencyMs.all;
  return {
    label,
    key: r.key,
    mbPerSec: r.mbPerSec,
    requestsPerSec: r.requestsPerSec,
    p50Ms: l.p50,
    p99Ms: l.p99,
    p999Ms: l.p999,
    memUsedTotal: r.mm.memUsedTotal,
    usedRatio: r.usedRatio,
    lockWaitMs: med(runs, lockWaitMs),
    ratio,
  };
}

const SWEEP_METRICS: Record<SweepName, Metric[]> = {
  workers: ['mbPerSec', 'p99Ms'],
  'lock-mode': ['mbPerSec', 'p99Ms', 'lockWaitMs'],
  chain: ['memUsedTotal', 'mbPerSec'],
  compaction: ['p99Ms', 'mbPerSec', 'memUsedTotal'],
};

/** The sweep's summary over every arm's repeated runs (`results`: key -> runs in order). */
export function summarize(name: SweepName, base: RunConfig, results: Map<string, RunResult[]>): SweepSummary {
  const arms = sweepConfigs(name, base).map(({ label, cfg }) => ({ label, runs: results.get(configKey(cfg))! }));
  const s = summarizeOne(name, arms);
  const refLabel = s.reference;
  const ref = arms.find((a) => a.label === refLabel)!;
  s.arms = arms.map((a, i) => armSummary(a.label, a.runs, i + 1));
  s.comparisons = arms.filter((a) => a !== ref).flatMap((a) => compare(a, ref, SWEEP_METRICS[name]));
  return s;
}

function summarizeOne(name: SweepName, arms: { label: string; runs: RunResult[] }[]): SweepSummary {
  const runs = arms.map(({ label, runs }) => ({ label, r: medianRun(runs), all: runs }));
  const ref = runs[0]!;
  const row = (label: string, r: RunResult, ratio: number): SweepRow =>
    rowOf(label, r, ratio, runs.find((x) => x.label === label)!.all);
  switch (name) {
    case 'workers':
      return {
        name,
        ratioOf: 'MB/s / MB/s with 1 worker (speedup)',
        reference: ref.label,
        rows: runs.map(({ label, r }) => row(label, r, r.mbPerSec / ref.r.mbPerSec)),
        arms: [],
        comparisons: [],
      };
    case 'lock-mode': {
      const locks = new Map<
        string,
        { lock: string; waitMs: Record<string, number>; contentions: Record<string, number> }
      >();
      for (const { label, r } of runs) {
        for (const l of r.lockStat) {
          const lock = l.state === '' ? l.name : `${l.name}-${l.state}`;
          const e = locks.get(lock) ?? { lock, waitMs: {}, contentions: {} };
          e.waitMs[label] = l.waitTotalUs / 1000;
          e.contentions[label] = l.contentions;
          locks.set(lock, e);
        }
      }
      return {
        name,
        ratioOf: 'MB/s / MB/s with per-class locks',
        reference: ref.label,
        rows: runs.map(({ label, r }) => row(label, r, r.mbPerSec / ref.r.mbPerSec)),
        lockWaitByClass: [...locks.values()],
        arms: [],
        comparisons: [],
      };
    }
    case 'chain': {
      const mid = runs.find((x) => x.r.config.chainSize === 8) ?? ref;
      return {
        name,
        ratioOf: 'mem_used_total / mem_used_total with chain 8',
        reference: mid.label,
        rows: runs.map(({ label, r }) => row(label, r, r.mm.memUsedTotal / mid.r.mm.memUsedTotal)),
        arms: [],
        comparisons: [],
      };
    }
    case 'compaction': {
      const off = runs[1]!;
      const on = runs[0]!;
      return {
        name,
        ratioOf: 'foreground p99 / p99 with compaction off',
        reference: off.label,
        rows: runs.map(({ label, r }) => row(label, r, r.latencyMs.all.p99 / off.r.latencyMs.all.p99)),
        notes: {
          compactionRunsOn: on.r.compactionWorker?.runs ?? 0,
          pagesFreedOn: on.r.compactionWorker?.pagesFreed ?? 0,
          pagesCompactedOn: on.r.mm.pagesCompacted,
          writeP99On: on.r.latencyMs.write.p99,
          writeP99Off: off.r.latencyMs.write.p99,
          memUsedOnOverOff: on.r.mm.memUsedTotal / off.r.mm.memUsedTotal,
        },
        arms: [],
        comparisons: [],
      };
    }
  }
}
