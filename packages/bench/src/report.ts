// Benchmark report: the row format every benchmark produces, the plain-text
// table printed to the console and the JSON file written under bench-results/.
// Owns formatting and output only; it measures nothing.

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A target from the issue, checked against one row (never asserted in tests). */
export interface TargetCheck {
  /** e.g. "<= 100 ns/op", "<= 1.5x baseline", ">= 50% of copy rate". */
  goal: string;
  /** The measured value in the goal's terms, e.g. "430.2 ns", "1.71x", "43%". */
  measured: string;
  met: boolean;
}

export interface BenchRow {
  /** Benchmark family: 'allocator', 'access', 'locks', 'mapping', 'migration'. */
  group: string;
  name: string;
  /**
   * Nanoseconds per operation: the median over samples of each batch's mean,
   * in the best of the rounds (robust to a noisy machine; a batch's GC is in it).
   */
  nsPerOp: number;
  /** Plain mean over every sample of every round, ns per operation (noise included). */
  meanNsPerOp: number;
  /** Relative margin of error of the mean in the best round, percent. */
  rme: number;
  /** Samples (batches) over all rounds. */
  samples: number;
  rounds: number;
  /** Operations measured in all samples. */
  ops: number;
  opsPerSec: number;
  /** Name of the row this one is compared with, measured in the same run. */
  baseline?: string;
  /** nsPerOp / baseline's nsPerOp (below 1: faster than the baseline). */
  ratio?: number;
  /** Bytes moved per operation, when that means something (gives MB/s). */
  bytesPerOp?: number;
  mbPerSec?: number;
  targets?: TargetCheck[];
  /** Anything else worth keeping (counts, checks done after the timed part). */
  extra?: Record<string, number | string | boolean>;
}

export interface MicroReport {
  kind: 'micro';
  smoke: boolean;
  date: string;
  node: string;
  cpus: number;
  cpuModel: string;
  /** Wall time of the whole run, seconds. */
  wallSeconds: number;
  rows: BenchRow[];
}

/** Fills ratio (and MB/s) of every row that names a baseline present in `rows`. */
export function linkBaselines(rows: BenchRow[]): BenchRow[] {
  const byName = new Map(rows.map((r) => [r.name, r] as const));
  for (const r of rows) {
    if (r.bytesPerOp !== undefined && r.nsPerOp > 0) r.mbPerSec = (r.bytesPerOp / r.nsPerOp) * 1e3;
    if (r.baseline === undefined) continue;
    const b = byName.get(r.baseline);
    if (b !== undefined && b.nsPerOp > 0) r.ratio = r.nsPerOp / b.nsPerOp;
  }
  return rows;
}

function fmt(n: number | undefined, digits = 1): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  if (Math.abs(n) >= 1e6) return n.toExponential(2);
  return n.toFixed(digits);
}

/** The report as a fixed-width text table (one line per row, targets after). */
export function formatTable(rows: readonly BenchRow[]): string {
  const head = ['group', 'benchmark', 'ns/op', 'mean', '±%', 'ops/s', 'MB/s', 'ratio', 'vs baseline'];
  const body = rows.map((r) => [
    r.group,
    r.name,
    fmt(r.nsPerOp),
    fmt(r.meanNsPerOp),
    fmt(r.rme),
    fmt(r.opsPerSec, 0),
    fmt(r.mbPerSec, 0),
    r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}x`,
    r.baseline ?? '',
  ]);
  const width = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const left = new Set([0, 1, 8]);
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (left.has(i) ? c.padEnd(width[i]!) : c.padStart(width[i]!)))
      .join('  ')
      .trimEnd();
  const out = [line(head), width.map((w) => '-'.repeat(w)).join('  ')];
  for (const b of body) out.push(line(b));
  const targets = rows.filter((r) => r.targets !== undefined && r.targets.length > 0);
  if (targets.length > 0) {
    out.push('', 'targets:');
    for (const r of targets) {
      for (const t of r.targets!)
        out.push(`  [${t.met ? 'met' : 'MISSED'}] ${r.name}: ${t.goal} (measured ${t.measured})`);
    }
  }
  const extras = rows.filter((r) => r.extra !== undefined);
  if (extras.length > 0) {
    out.push('', 'notes:');
    for (const r of extras) {
      out.push(
        `  ${r.name}: ${Object.entries(r.extra!)
          .map(([k, v]) => `${k}=${typeof v === 'number' ? fmt(v, Number.isInteger(v) ? 0 : 2) : String(v)}`)
          .join(', ')}`,
      );
    }
  }
  return out.join('\n');
}

export function makeReport(rows: BenchRow[], smoke: boolean, wallSeconds: number): MicroReport {
  const cpu = cpus();
  return {
    kind: 'micro',
    smoke,
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpu.length,
    cpuModel: cpu[0]?.model ?? 'unknown',
    wallSeconds,
    rows,
  };
}

/** bench-results/ at the repository root (this file is packages/bench/{src,dist}/report.*). */
export function defaultResultsDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bench-results');
}

/** Where a command's JSON report goes: --json PATH, none with --no-json, else `name` in the results folder. */
export function jsonReportPath(json: string | undefined, noJson: boolean | undefined, name: string): string | null {
  return noJson ? null : (json ?? join(defaultResultsDir(), name));
}

/** Writes the report as JSON, creating the folder; returns the path written. */
export function writeJson(path: string, report: unknown): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(report, null, 2)}\n`);
  return path;
}
