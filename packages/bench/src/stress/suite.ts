// The stress bench as a whole: plans the distinct runs the sweeps need (each
// configuration once per repeat, the arms interleaved A B A B ... so drift hits
// every arm alike), runs them, then the seeds' experiment and the baselines,
// assembles the report with per-arm intervals and verdicts, prints a text
// summary and writes bench-results/stress.json and stress.html
// (stress-smoke.* for --smoke).

import { writeFileSync, mkdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { PAGE_SIZE } from '@zsmalloc/core';
import { defaultResultsDir, writeJson } from '../report.js';
import { runBaselines } from './baselines.js';
import { renderHtml } from './html.js';
import type { StressReport } from './report-shape.js';
import { configKey, type RunConfig, type StressOptions } from './options.js';
import { runOne, type RunResult } from './run.js';
import { runSeeds } from './seeds.js';
import { plannedConfigs, summarize } from './sweeps.js';
import { PageBank } from './workload.js';

export type { StressReport } from './report-shape.js';

export interface StressOutcome {
  report: StressReport;
  jsonPath: string | null;
  htmlPath: string | null;
}

export async function runStress(opts: StressOptions): Promise<StressOutcome> {
  const t0 = performance.now();
  const log = (s: string): void => {
    if (opts.print) process.stdout.write(`${s}\n`);
  };
  const configs = plannedConfigs(opts);
  log(
    `stress bench${opts.smoke ? ' (smoke)' : ''}: ${configs.length} configuration(s) x ${opts.repeat} interleaved repeat(s) of ${opts.seconds} s, then the seeds' experiment and the baselines`,
  );
  const bank = new PageBank(
    Math.min(4096, Math.max(opts.requestPages, opts.workingSet)),
    opts.requestPages,
    opts.mix,
    1,
  );
  const { results, ordered } = await runInterleaved(configs, opts, bank, log);
  const sweeps = opts.sweeps.map((s) => summarize(s, opts.base, results));
  for (const s of sweeps) for (const c of s.comparisons) log(`  verdict [${s.name}] ${c.verdict}`);
  const seeds = await runSeeds(opts);
  const baselines = await runBaselines(opts, () => undefined);
  const cpu = cpus();
  const report: StressReport = {
    kind: 'stress',
    smoke: opts.smoke,
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpu.length,
    cpuModel: cpu[0]?.model ?? 'unknown',
    command: `node packages/bench/dist/stress.js ${process.argv.slice(2).join(' ')}`.trim(),
    wallSeconds: (performance.now() - t0) / 1000,
    repeat: opts.repeat,
    workload: {
      seconds: opts.seconds,
      workingSet: opts.workingSet,
      requestPages: opts.requestPages,
      streams: opts.streams,
      mix: opts.mix,
      rw: opts.rw,
    },
    baseKey: configKey(opts.base),
    runs: ordered,
    sweeps,
    seeds,
    baselines,
  };
  if (opts.print) process.stdout.write(`${summaryText(report)}\n`);
  const dir = defaultResultsDir();
  const stem = opts.smoke ? 'stress-smoke' : 'stress';
  const jsonPath = opts.jsonPath === null ? null : writeJson(opts.jsonPath ?? join(dir, `${stem}.json`), report);
  let htmlPath: string | null = null;
  if (opts.htmlPath !== null) {
    htmlPath = opts.htmlPath ?? join(dir, `${stem}.html`);
    mkdirSync(dirname(htmlPath), { recursive: true });
    writeFileSync(htmlPath, renderHtml(report));
  }
  if (jsonPath !== null) log(`wrote ${jsonPath}`);
  if (htmlPath !== null) log(`wrote ${htmlPath}`);
  return { report, jsonPath, htmlPath };
}

/**
 * Runs every configuration `opts.repeat` times, interleaved: round 1 runs A B C,
 * round 2 runs A B C again, ... Returns each configuration's runs, and every run in the order run.
 */
export async function runInterleaved(
  configs: RunConfig[],
  opts: StressOptions,
  bank: PageBank,
  log: (s: string) => void,
): Promise<{ results: Map<string, RunResult[]>; ordered: RunResult[] }> {
  const results = new Map<string, RunResult[]>();
  const ordered: RunResult[] = [];
  const total = configs.length * opts.repeat;
  let n = 0;
  for (let rep = 0; rep < opts.repeat; rep++) {
    for (const cfg of configs) {
      n++;
      const label = `run ${n}/${total}: ${configKey(cfg)}${opts.repeat > 1 ? ` #${rep + 1}` : ''}`;
      const r = await runOne(cfg, opts, bank, label);
      r.repeat = rep;
      const list = results.get(r.key) ?? [];
      list.push(r);
      results.set(r.key, list);
      ordered.push(r);
      log(
        `  ${`${configKey(cfg)}${opts.repeat > 1 ? ` #${rep + 1}` : ''}`.padEnd(42)} ${r.mbPerSec.toFixed(1).padStart(7)} MB/s  p50 ${r.latencyMs.all.p50.toFixed(2)} p99 ${r.latencyMs.all.p99.toFixed(2)} p99.9 ${r.latencyMs.all.p999.toFixed(2)} ms  used ${(r.usedRatio * 100).toFixed(1)}%`,
      );
    }
  }
  return { results, ordered };
}

const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;
const MiB = (b: number): string => `${(b / (1 << 20)).toFixed(2)} MiB`;

export function summaryText(r: StressReport): string {
  const out: string[] = [
    '',
    `stress bench${r.smoke ? ' (smoke: figures mean nothing)' : ''}: node ${r.node}, ${r.cpus} CPUs (${r.cpuModel}), ${r.wallSeconds.toFixed(1)} s`,
  ];
  for (const s of r.sweeps) {
    out.push('', `sweep ${s.name}: ratio = ${s.ratioOf}`);
    for (const x of s.rows) {
      out.push(
        `  ${x.label.padEnd(15)} ${x.mbPerSec.toFixed(1).padStart(7)} MB/s  p50 ${x.p50Ms.toFixed(2).padStart(6)}  p99 ${x.p99Ms.toFixed(2).padStart(7)}  p99.9 ${x.p999Ms.toFixed(2).padStart(7)} ms` +
          `  mem ${MiB(x.memUsedTotal).padStart(10)}  used ${pct(x.usedRatio).padStart(7)}  lock wait ${x.lockWaitMs.toFixed(1).padStart(8)} ms  ratio ${x.ratio.toFixed(3)}x`,
      );
    }
    if (s.lockWaitByClass !== undefined) {
      const keys = s.rows.map((x) => x.label);
      out.push(`  lock wait ms per class (${keys.join(' / ')}):`);
      for (const l of s.lockWaitByClass) {
        if (keys.every((k) => (l.waitMs[k] ?? 0) === 0 && (l.contentions[k] ?? 0) === 0)) continue;
        out.push(
          `    ${l.lock.padEnd(22)} ${keys.map((k) => `${(l.waitMs[k] ?? 0).toFixed(2)} (${l.contentions[k] ?? 0} cont.)`).join(' / ')}`,
        );
      }
    }
    for (const a of s.arms)
      if (a.runs > 1)
        out.push(
          `  ${a.label.padEnd(15)} over ${a.runs} runs: MB/s median ${a.mbPerSec.median.toFixed(1)} (CI ${a.mbPerSec.ci95[0].toFixed(1)}-${a.mbPerSec.ci95[1].toFixed(1)}), ` +
            `p99 median ${a.p99Ms.median.toFixed(2)} ms (CI ${a.p99Ms.ci95[0].toFixed(2)}-${a.p99Ms.ci95[1].toFixed(2)})`,
        );
    for (const c of s.comparisons) out.push(`  verdict: ${c.verdict}`);
    if (s.notes !== undefined)
      out.push(
        `  ${Object.entries(s.notes)
          .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(3)}`)
          .join(', ')}`,
      );
  }
  const s = r.seeds;
  out.push(
    '',
    `seeds' experiment (${s.pages} pages, ${s.rounds} swap in/out rounds, then compaction):`,
    `  allocated object bytes ${s.before.allocatedObjectBytes}, total used ${s.before.totalUsed} -> ${s.after.totalUsed}, ` +
      `used ratio ${pct(s.before.usedRatio)} -> ${pct(s.after.usedRatio)}, pages compacted ${s.pagesCompacted} (${s.compactMs.toFixed(1)} ms)`,
    `  seed (2015): allocated object bytes ${s.seed.allocatedObjectBytes}, total used ${s.seed.totalUsedBefore} -> ${s.seed.totalUsedAfter}, ` +
      `used ratio ${pct(s.seed.usedRatioBefore)} -> ${pct(s.seed.usedRatioAfter)}`,
    `  buddyinfo before ${s.before.buddyinfo.join(' ')} | after ${s.after.buddyinfo.join(' ')}`,
  );
  const b = r.baselines;
  out.push(
    '',
    `baselines on the same ${b.pages} pages (${MiB(b.pages * PAGE_SIZE)}):`,
    `  bare zram device (1 thread):  write ${b.device.writeMbPerSec.toFixed(1)} MB/s, read ${b.device.readMbPerSec.toFixed(1)} MB/s, mem_used_total ${MiB(b.device.memUsedTotal)}`,
    `  naive Map of lz4 outputs:     write ${b.naive.writeMbPerSec.toFixed(1)} MB/s, read ${b.naive.readMbPerSec.toFixed(1)} MB/s, real memory ${MiB(b.naive.realBytes)} ` +
      `(heap ${MiB(b.naive.heapDelta)}, external ${MiB(b.naive.externalDelta)}, payload ${MiB(b.naive.payloadBytes)}) = ${b.naiveOverZram.toFixed(3)}x zram's mem_used_total`,
    `  density: zsmalloc ${b.density.zsmallocPages} pages (used ${pct(b.density.zsmallocUsedRatio)}), zbud model ${b.density.zbud.pages} pages ` +
      `(used ${pct(b.density.zbudUsedRatio)}) = ${b.density.zbudOverZsmalloc.toFixed(3)}x`,
    b.kernel.ran
      ? `  kernel zram0: write ${b.kernel.writeMbPerSec.toFixed(1)} MB/s, read ${b.kernel.readMbPerSec.toFixed(1)} MB/s, mem_used_total ${MiB(b.kernel.memUsedTotal)}; this device's mem_used / kernel's ${b.kernel.memUsedDeviceOverKernel.toFixed(3)}x`
      : `  kernel zram0 SKIPPED: ${b.kernel.reason}`,
  );
  return out.join('\n');
}
