// HTML sections shared by the stress report and the study reports: each arm's
// median with its 95% interval as error bars and the verdicts beside the chart,
// lock wait and contention points (call sites) per lock class with intervals,
// and lock wait per 250 ms per lock class with compaction runs marked.

import type { RunResult } from './run.js';
import type { ArmSummary, Metric, SweepComparison } from './sweeps.js';
import { esc, errorBars, lineChart, type Series } from './svg.js';

const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : '-');
const ci = (s: { median: number; ci95: [number, number] }, d = 2): string =>
  `${f(s.median, d)} [${f(s.ci95[0], d)}, ${f(s.ci95[1], d)}]`;

export function tableHtml(head: string[], rows: (string | number)[][]): string {
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${esc(String(c))}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

const CHART: Record<'mbPerSec' | 'p99Ms', { title: string; x: string }> = {
  mbPerSec: { title: 'Throughput per arm (median, 95% CI, samples)', x: 'MB/s (read + write)' },
  p99Ms: { title: 'p99 request latency per arm (median, 95% CI, samples)', x: 'ms' },
};

/** Error-bar charts for MB/s and p99 with each chart's verdicts beside it, then per-class lock wait. */
export function armsHtml(arms: ArmSummary[], comparisons: SweepComparison[]): string {
  if (arms.length === 0) return '';
  const parts: string[] = [`<p>${arms[0]!.runs} run(s) per arm, interleaved.</p>`];
  for (const m of ['mbPerSec', 'p99Ms'] as const) {
    const chart = errorBars(
      arms.map((a) => ({
        label: a.label,
        median: a[m].median,
        lo: a[m].ci95[0],
        hi: a[m].ci95[1],
        samples: a[m].samples,
      })),
      { title: CHART[m].title, xLabel: CHART[m].x },
    );
    const verdicts = comparisons.filter((c) => c.metric === m);
    parts.push(
      `<div class="row"><div>${chart}</div><div class="verdicts"><h4>Verdicts</h4>${
        verdicts.length > 0
          ? `<ul>${verdicts.map((c) => `<li>${esc(c.verdict)}</li>`).join('')}</ul>`
          : '<p>(no comparison)</p>'
      }</div></div>`,
    );
  }
  const other = comparisons.filter((c) => c.metric !== 'mbPerSec' && c.metric !== 'p99Ms');
  if (other.length > 0) parts.push(`<ul>${other.map((c) => `<li>${esc(c.verdict)}</li>`).join('')}</ul>`);
  const classes = [...new Set(arms.flatMap((a) => Object.keys(a.lockWaitByClass)))].filter((c) =>
    arms.some((a) => (a.lockWaitByClass[c]?.ci95[1] ?? 0) > 0),
  );
  if (classes.length > 0) {
    parts.push('<h4>Lock wait per lock class, ms (median [95% CI])</h4>');
    parts.push(
      tableHtml(
        ['lock class', ...arms.map((a) => a.label)],
        classes.map((c) => [c, ...arms.map((a) => (a.lockWaitByClass[c] ? ci(a.lockWaitByClass[c]!) : '-'))]),
      ),
    );
  }
  parts.push(contentionPointsHtml(arms));
  return parts.join('\n');
}

/** Contention points per lock class: the call sites that waited, per arm, with intervals. */
export function contentionPointsHtml(arms: ArmSummary[], top = 4): string {
  const rows: (string | number)[][] = [];
  const classes = [...new Set(arms.flatMap((a) => Object.keys(a.contentionPoints)))];
  for (const cls of classes) {
    const sites = [...new Set(arms.flatMap((a) => (a.contentionPoints[cls] ?? []).slice(0, top).map((p) => p.site)))];
    for (const site of sites)
      rows.push([
        cls,
        site,
        ...arms.map((a) => {
          const p = a.contentionPoints[cls]?.find((x) => x.site === site);
          return p ? `${ci(p.waitMs)} ms, ${f(p.contentions.median, 0)} cont.` : '-';
        }),
      ]);
  }
  if (rows.length === 0) return '<p>No contention points (no lock waited).</p>';
  return `<h4>Contention points: call sites that waited, per lock class (wait median [95% CI], contentions median)</h4>${tableHtml(
    ['lock class', 'call site', ...arms.map((a) => a.label)],
    rows,
  )}`;
}

/** lock_stat's contention points of one run, as lockStatText() lists them under each class. */
export function runContentionHtml(run: RunResult): string {
  const rows: (string | number)[][] = [];
  for (const l of run.lockStat)
    for (const p of l.points) rows.push([l.name, p.site, p.contentions, f(p.waitTotalUs, 1)]);
  if (rows.length === 0) return '<p>No contention points.</p>';
  return tableHtml(['lock class', 'call site', 'contentions', 'wait total µs'], rows);
}

/** Lock wait per 250 ms per lock class, with background-compaction and frame-compaction runs marked. */
export function lockWaitOverTimeHtml(run: RunResult, title: string): string {
  const w = run.lockWaitSeries;
  const series: Series[] = Object.entries(w.ms)
    .filter(([, v]) => v.some((x) => x > 0))
    .map(([name, v]) => ({ name, points: v.map((y, i) => [w.t[i] ?? 0, y] as [number, number]) }));
  if (series.length === 0) return `<p>${esc(title)}: no lock waited.</p>`;
  const markers = [
    ...run.compactionMarks.map((x) => ({ x, color: '#d62728' })),
    ...run.frameCompactionMarks.map((x) => ({ x, color: '#2ca02c' })),
  ];
  return lineChart(series, {
    title,
    xLabel: 'seconds',
    yLabel: 'lock wait per 250 ms, ms',
    markers,
    markerLabel: 'compaction (red: zspage, green: frame)',
  });
}

export type { Metric };

const CSS = `body{font:14px/1.4 system-ui,sans-serif;margin:24px;max-width:1200px;color:#222}table{border-collapse:collapse;margin:8px 0 16px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f4f4f4}
.chart{display:block;margin:8px 0 20px}.chart .title{font-weight:600;font-size:14px}.chart .tick,.chart .legend{font-size:11px;fill:#333}
.chart .small{font-size:10px;fill:#555}.chart .label{font-size:12px;fill:#333}.chart .grid{stroke:#e6e6e6}.chart .axis{stroke:#555}
.row{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}.verdicts{max-width:520px}.warn{color:#a00;font-weight:600}code{background:#f4f4f4;padding:1px 4px}`;

/** A self-contained page: no scripts, no external resources. */
export function pageHtml(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><style>${CSS}</style></head><body>${body}</body></html>\n`;
}
