// The micro-benchmark suite: runs every micro-benchmark (allocator by size,
// access, locks uncontended and contended, mapping, migration, zram page I/O,
// codecs) in order, each next to its baseline, and gathers the rows into one
// report (printed and/or written as JSON by the caller or by runMicro's options).

import { join } from 'node:path';
import { microConfig, type MicroConfig } from '../measure.js';
import { defaultResultsDir, formatTable, makeReport, writeJson, type BenchRow, type MicroReport } from '../report.js';
import { benchMallocFree, benchMallocFreeWarm, benchWriteRead } from './allocator.js';
import { benchAllocatorThreads } from './allocator-threads.js';
import { benchCodecs } from './codecs.js';
import { benchContended } from './contended.js';
import { benchLocks } from './locks.js';
import { benchMapping } from './mapping.js';
import { benchMigration } from './migration.js';
import { benchStats64 } from './stats64.js';
import { benchZram } from './zram.js';

export interface MicroBenchmark {
  name: string;
  run: (cfg: MicroConfig) => Promise<BenchRow[]>;
}

export const MICRO_BENCHMARKS: readonly MicroBenchmark[] = [
  { name: 'malloc+free', run: benchMallocFree },
  { name: 'warm-pair', run: benchMallocFreeWarm },
  { name: 'threads-pair', run: benchAllocatorThreads },
  { name: 'write+read', run: benchWriteRead },
  { name: 'locks', run: benchLocks },
  { name: 'contended-locks', run: benchContended },
  { name: 'map/unmap', run: benchMapping },
  { name: 'migration', run: benchMigration },
  { name: 'zram', run: benchZram },
  { name: 'codecs', run: benchCodecs },
  { name: 'stats64', run: benchStats64 },
];

export interface RunMicroOptions {
  smoke?: boolean;
  /** Only the benchmarks whose name contains one of these. */
  only?: string[];
  /** Where to write the JSON report; null: do not write. Default bench-results/micro.json (micro-smoke.json for --smoke). */
  jsonPath?: string | null;
  /** Print progress and the table (default true). */
  print?: boolean;
}

export async function runMicro(opts: RunMicroOptions = {}): Promise<{ report: MicroReport; jsonPath: string | null }> {
  const smoke = opts.smoke ?? false;
  const print = opts.print ?? true;
  const cfg = microConfig(smoke);
  const t0 = performance.now();
  const rows: BenchRow[] = [];
  const selected = MICRO_BENCHMARKS.filter((b) => opts.only === undefined || opts.only.some((s) => b.name.includes(s)));
  for (const b of selected) {
    if (print) process.stdout.write(`running ${b.name}...\n`);
    rows.push(...(await b.run(cfg)));
  }
  const report = makeReport(rows, smoke, (performance.now() - t0) / 1000);
  if (print) {
    process.stdout.write(
      `\nmicro-benchmarks${smoke ? ' (smoke)' : ''}: node ${report.node}, ${report.cpus} CPUs (${report.cpuModel}), ${report.wallSeconds.toFixed(1)} s\n`,
    );
    process.stdout.write(
      `ns/op: median of batch means, best of ${cfg.rounds} round(s) (GC included); mean: over all batches;\n` +
        'ratio = ns/op / baseline ns/op, measured in the same run, rounds alternating.\n' +
        (smoke ? 'SMOKE RUN: tiny counts, mostly unoptimised code; the figures say nothing about speed.\n\n' : '\n'),
    );
    process.stdout.write(`${formatTable(rows)}\n`);
  }
  let jsonPath: string | null = null;
  if (opts.jsonPath !== null) {
    jsonPath = writeJson(opts.jsonPath ?? join(defaultResultsDir(), smoke ? 'micro-smoke.json' : 'micro.json'), report);
    if (print) process.stdout.write(`\nwrote ${jsonPath}\n`);
  }
  return { report, jsonPath };
}
