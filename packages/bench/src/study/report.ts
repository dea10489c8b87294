// The study's report: the JSON (experiment, setup, arms with samples/median/ci95,
// comparisons with ratio/ci95/verdict, figures, runs) and a self-contained HTML
// page (error bars with the verdicts beside them, lock wait and contention
// points per class and call site, lock wait per 250 ms per class with
// compaction marked, the experiment's own figures), and the verdict lines.

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname } from 'node:path';
import { writeJson } from '../report.js';
import { armsHtml, lockWaitOverTimeHtml, pageHtml, tableHtml } from '../stress/html-stats.js';
import { esc } from '../stress/svg.js';
import type { StudyResult } from './experiments.js';

export interface StudyReport extends StudyResult {
  kind: 'study';
  date: string;
  node: string;
  cpus: number;
  cpuModel: string;
  command: string;
  wallSeconds: number;
}

export function studyReport(r: StudyResult, wallSeconds: number): StudyReport {
  const cpu = cpus();
  return {
    kind: 'study',
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpu.length,
    cpuModel: cpu[0]?.model ?? 'unknown',
    command: `node packages/bench/dist/study.js ${process.argv.slice(2).join(' ')}`.trim(),
    wallSeconds,
    ...r,
  };
}

export function verdictLines(r: StudyResult): string[] {
  return r.comparisons.map((c) => `verdict [${r.experiment}] ${c.verdict}`);
}

function isArmStat(v: unknown): v is { samples: number[]; median: number; ci95: [number, number] } {
  return typeof v === 'object' && v !== null && 'median' in v && 'ci95' in v && 'samples' in v;
}

function figuresHtml(figures: Record<string, unknown>): string {
  const rows: (string | number)[][] = [];
  for (const [k, v] of Object.entries(figures)) {
    if (isArmStat(v))
      rows.push([
        k,
        `${v.median.toPrecision(4)} [${v.ci95[0].toPrecision(4)}, ${v.ci95[1].toPrecision(4)}]`,
        v.samples.map((x) => x.toPrecision(4)).join(' '),
      ]);
    else if (typeof v === 'number') rows.push([k, Number.isInteger(v) ? v : v.toPrecision(4), '']);
    else if (typeof v === 'object' && v !== null && !Array.isArray(v))
      for (const [k2, v2] of Object.entries(v))
        rows.push([
          `${k}.${k2}`,
          isArmStat(v2)
            ? `${v2.median.toPrecision(4)} [${v2.ci95[0].toPrecision(4)}, ${v2.ci95[1].toPrecision(4)}]`
            : typeof v2 === 'number' && !Number.isInteger(v2)
              ? v2.toPrecision(4)
              : String(v2),
          '',
        ]);
    else rows.push([k, JSON.stringify(v), '']);
  }
  return rows.length > 0 ? tableHtml(['figure', 'value (median [95% CI])', 'samples'], rows) : '';
}

export function renderStudyHtml(r: StudyReport): string {
  const parts: string[] = [
    `<h1>Study: ${esc(r.experiment)}</h1>`,
    `<p>${esc(r.date)} · node ${esc(r.node)} · ${r.cpus} CPUs (${esc(r.cpuModel)}) · ${r.wallSeconds.toFixed(1)} s · <code>${esc(r.command)}</code></p>`,
    `<p>${esc(r.setup)}</p>`,
    `<h2>Verdicts</h2><ul>${r.comparisons.map((c) => `<li>${esc(c.verdict)}</li>`).join('')}</ul>`,
  ];
  if (r.arms.length > 0) {
    parts.push('<h2>Arms</h2>');
    parts.push(armsHtml(r.arms, r.comparisons as Parameters<typeof armsHtml>[1]));
    parts.push('<h2>Lock wait over time</h2>');
    for (const a of r.arms) {
      const first = r.runs.find((x) => x.key === a.key);
      if (first !== undefined)
        parts.push(lockWaitOverTimeHtml(first, `Lock wait per 250 ms per lock class: ${a.label} (first run)`));
    }
  }
  parts.push('<h2>Figures</h2>', figuresHtml(r.figures));
  return pageHtml(`study ${r.experiment}`, parts.join('\n'));
}

export function writeStudy(r: StudyReport, jsonPath: string | null, htmlPath: string | null): string[] {
  const wrote: string[] = [];
  if (jsonPath !== null) wrote.push(writeJson(jsonPath, r));
  if (htmlPath !== null) {
    mkdirSync(dirname(htmlPath), { recursive: true });
    writeFileSync(htmlPath, renderStudyHtml(r));
    wrote.push(htmlPath);
  }
  return wrote;
}
