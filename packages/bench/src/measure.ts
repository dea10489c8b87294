// Measurement harness over tinybench: run settings for the full and the smoke
// run, and batched cases. A single sub-100 ns operation is far below the cost
// of reading a clock, so every tinybench iteration runs a batch of operations
// and reports the batch's mean per operation (overriddenDuration) while
// charging the whole batch to the time budget (overriddenIterationCost).

import { Bench, type FnReturnedObject } from 'tinybench';
import type { BenchRow } from './report.js';

export interface MicroConfig {
  smoke: boolean;
  /** Rounds of the whole case list; each case keeps its best round (noisy machines). */
  rounds: number;
  /** tinybench time budget per task and round, ms. */
  time: number;
  warmupTime: number;
  /** Minimum iterations (batches) per task and round. */
  iterations: number;
  warmupIterations: number;
  /** Multiplier for batch sizes (smoke runs use small batches). */
  batchScale: number;
  /** Pool size for the migration benchmark. */
  migrationPoolBytes: number;
  /** 4 KiB pages in the zram benchmark's swap-like stream (one pass = one batch). */
  zramPages: number;
}

export function microConfig(smoke: boolean): MicroConfig {
  return smoke
    ? {
        smoke,
        rounds: 1,
        time: 15,
        warmupTime: 5,
        iterations: 3,
        warmupIterations: 2,
        batchScale: 0.02,
        migrationPoolBytes: 4 << 20,
        zramPages: 128,
      }
    : {
        smoke,
        rounds: 3,
        time: 500,
        warmupTime: 150,
        iterations: 10,
        warmupIterations: 4,
        batchScale: 1,
        migrationPoolBytes: 64 << 20,
        zramPages: 4096,
      };
}

/** One measured operation, run in batches. */
export interface Case {
  name: string;
  group: string;
  /** Operations per tinybench iteration (scaled by config.batchScale, at least 1). */
  batch: number;
  /** Runs `n` operations; returns how many were done (the timed part). */
  run: (n: number) => number;
  /** Untimed work before each batch (e.g. listing frames to migrate). */
  prepare?: () => void;
  baseline?: string;
  bytesPerOp?: number;
}

export function scaledBatch(c: Case, cfg: MicroConfig): number {
  return Math.max(1, Math.round(c.batch * cfg.batchScale));
}

interface RoundStat {
  p50: number;
  mean: number;
  rme: number;
  samples: number;
}

/**
 * Measures the cases with tinybench, in order (put a baseline next to its
 * subject), `cfg.rounds` times over the whole list so a subject and its
 * baseline alternate. Each case reports its best round: the lowest median of
 * batch means (a batch of allocations includes its share of GC, so GC still
 * counts). Ratios are linked later (linkBaselines).
 */
export async function measure(cases: readonly Case[], cfg: MicroConfig, name = 'micro'): Promise<BenchRow[]> {
  const totals = new Map<string, number>(cases.map((c) => [c.name, 0]));
  const stats = new Map<string, RoundStat[]>(cases.map((c) => [c.name, []]));
  for (let round = 0; round < cfg.rounds; round++) {
    const bench = new Bench({
      name: `${name} #${round + 1}`,
      time: cfg.time,
      warmupTime: cfg.warmupTime,
      iterations: cfg.iterations,
      warmupIterations: cfg.warmupIterations,
      throws: true,
      warmup: true,
    });
    let counting = false;
    for (const c of cases) {
      const n = scaledBatch(c, cfg);
      const prepare = c.prepare;
      const run = c.run;
      bench.add(
        c.name,
        (): FnReturnedObject => {
          if (prepare !== undefined) prepare();
          const t0 = performance.now();
          const done = run(n);
          const dt = performance.now() - t0;
          if (counting) totals.set(c.name, totals.get(c.name)! + done);
          return { overriddenDuration: done > 0 ? dt / done : dt, overriddenIterationCost: dt };
        },
        {
          async: false,
          // only the measured phase counts operations
          beforeAll(mode) {
            counting = mode === 'run';
          },
          afterAll() {
            counting = false;
          },
        },
      );
    }
    await bench.run();
    for (const c of cases) {
      const r = bench.getTask(c.name)!.result;
      if (r.state !== 'completed' && r.state !== 'aborted-with-statistics') {
        throw r.state === 'errored' ? r.error : new Error(`task ${c.name} ended in state ${r.state}`);
      }
      stats.get(c.name)!.push({
        p50: r.latency.p50 * 1e6,
        mean: r.latency.mean * 1e6,
        rme: r.latency.rme,
        samples: r.latency.samplesCount,
      });
    }
  }
  return cases.map((c) => {
    const rs = stats.get(c.name)!;
    const best = rs.reduce((a, b) => (b.p50 < a.p50 ? b : a));
    const samples = rs.reduce((a, b) => a + b.samples, 0);
    const mean = rs.reduce((a, b) => a + b.mean * b.samples, 0) / samples;
    const row: BenchRow = {
      group: c.group,
      name: c.name,
      nsPerOp: best.p50,
      meanNsPerOp: mean,
      rme: best.rme,
      samples,
      rounds: rs.length,
      ops: totals.get(c.name)!,
      opsPerSec: best.p50 > 0 ? 1e9 / best.p50 : 0,
    };
    if (c.baseline !== undefined) row.baseline = c.baseline;
    if (c.bytesPerOp !== undefined) row.bytesPerOp = c.bytesPerOp;
    return row;
  });
}
