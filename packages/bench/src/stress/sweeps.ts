// The sweeps of the stress bench: which runs each needs (shared runs are done
// once: the base configuration serves every sweep it belongs to), and each
// sweep's side-by-side summary with ratios against its reference run —
// workers 1..cores (speedup), lock mode class vs pool (lock wait per lock
// class), chain size 4/8/16 (memory used, used ratio), background compaction
// on vs off (foreground p99 cost).

import { availableParallelism } from 'node:os';
import { configKey, type RunConfig, type StressOptions, type SweepName } from './options.js';
import type { RunResult } from './run.js';

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

function row(label: string, r: RunResult, ratio: number): SweepRow {
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
    lockWaitMs: lockWaitMs(r),
    ratio,
  };
}

export function summarize(name: SweepName, base: RunConfig, results: Map<string, RunResult>): SweepSummary {
  const runs = sweepConfigs(name, base).map(({ label, cfg }) => ({ label, r: results.get(configKey(cfg))! }));
  const ref = runs[0]!;
  switch (name) {
    case 'workers':
      return {
        name,
        ratioOf: 'MB/s / MB/s with 1 worker (speedup)',
        reference: ref.label,
        rows: runs.map(({ label, r }) => row(label, r, r.mbPerSec / ref.r.mbPerSec)),
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
      };
    }
    case 'chain': {
      const mid = runs.find((x) => x.r.config.chainSize === 8) ?? ref;
      return {
        name,
        ratioOf: 'mem_used_total / mem_used_total with chain 8',
        reference: mid.label,
        rows: runs.map(({ label, r }) => row(label, r, r.mm.memUsedTotal / mid.r.mm.memUsedTotal)),
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
      };
    }
  }
}
