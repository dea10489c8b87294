// The self-contained HTML report of the stress bench: configuration, each
// sweep's side-by-side table, the SVG charts (throughput scaling over workers,
// lock wait per lock class per lock mode, used ratio over time with compaction
// runs marked, lock wait per 250 ms per lock class with compaction runs marked,
// each sweep arm's median with its 95% interval as error bars and the verdicts
// beside, contention points per call site, physical memory before and after
// compaction), the seeds'
// experiment next to the seed's figures and the baselines. No scripts, no
// external resources.

import { PAGE_SIZE } from '@zsmalloc/core';
import type { StressReport } from './report-shape.js';
import { armsHtml, lockWaitOverTimeHtml, pageHtml, runContentionHtml, tableHtml as table } from './html-stats.js';
import { esc, frameGrid, groupedBars, lineChart, type Series } from './svg.js';

const MiB = (b: number): string => `${(b / (1 << 20)).toFixed(2)} MiB`;
const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;
const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : '-');

export function renderHtml(r: StressReport): string {
  const parts: string[] = [];
  const base = r.runs.find((x) => x.key === r.baseKey)!;
  parts.push(`<h1>zsmalloc / zram stress bench${r.smoke ? ' (smoke)' : ''}</h1>`);
  parts.push(
    `<p>${esc(r.date)} · node ${esc(r.node)} · ${r.cpus} CPUs (${esc(r.cpuModel)}) · ${f(r.wallSeconds, 1)} s in all · <code>${esc(r.command)}</code></p>`,
  );
  parts.push(
    `<p>Workload: ${r.workload.workingSet} pages working set (${MiB(r.workload.workingSet * PAGE_SIZE)}), requests of ${r.workload.requestPages} pages, ${r.workload.streams} in flight, ${f(r.workload.seconds, 1)} s per run; page kinds ${esc(JSON.stringify(r.workload.mix))}; requests ${esc(JSON.stringify(r.workload.rw))}. Every run also has the swap I/O worker writing idle pages back and swapping a range in each second, and frame compaction each second for a free block one order above the largest free one (kcompactd for a pending high-order allocation).</p>`,
  );
  if (r.smoke)
    parts.push('<p class="warn">SMOKE RUN: tiny sizes and durations; the figures say nothing about speed.</p>');

  // runs
  parts.push('<h2>Runs</h2>');
  parts.push(
    table(
      [
        'run',
        'MB/s',
        'req/s',
        'p50 ms',
        'p99 ms',
        'p99.9 ms',
        'mem_used',
        'used ratio',
        'lock wait ms',
        'compaction runs',
        'pages written back',
        'frames migrated',
      ],
      r.runs.map((x) => [
        r.repeat > 1 ? `${x.key} #${x.repeat + 1}` : x.key,
        f(x.mbPerSec, 1),
        f(x.requestsPerSec, 0),
        f(x.latencyMs.all.p50, 3),
        f(x.latencyMs.all.p99, 3),
        f(x.latencyMs.all.p999, 3),
        MiB(x.mm.memUsedTotal),
        pct(x.usedRatio),
        f(x.lockStat.reduce((a, l) => a + l.waitTotalUs, 0) / 1000, 1),
        x.compactionWorker?.runs ?? '-',
        x.swap.pagesWrittenBack,
        x.migration.framesMigrated,
      ]),
    ),
  );

  // sweeps
  for (const s of r.sweeps) {
    parts.push(`<h2>Sweep: ${esc(s.name)}</h2><p>ratio = ${esc(s.ratioOf)} (reference: ${esc(s.reference)})</p>`);
    parts.push(
      table(
        ['', 'MB/s', 'req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'mem_used', 'used ratio', 'lock wait ms', 'ratio'],
        s.rows.map((x) => [
          x.label,
          f(x.mbPerSec, 1),
          f(x.requestsPerSec, 0),
          f(x.p50Ms, 3),
          f(x.p99Ms, 3),
          f(x.p999Ms, 3),
          MiB(x.memUsedTotal),
          pct(x.usedRatio),
          f(x.lockWaitMs, 1),
          `${f(x.ratio, 3)}x`,
        ]),
      ),
    );
    parts.push(armsHtml(s.arms, s.comparisons));
    if (s.name === 'lock-mode')
      for (const a of s.arms) {
        const first = r.runs.find((x) => x.key === a.key);
        if (first !== undefined)
          parts.push(lockWaitOverTimeHtml(first, `Lock wait per 250 ms per lock class: ${a.label} (first run)`));
      }
    if (s.name === 'workers') {
      const ref = s.rows[0]!;
      const pts = s.rows.map((x, i) => [i + 1, x.mbPerSec] as [number, number]);
      parts.push(
        lineChart(
          [
            { name: 'measured MB/s', points: pts },
            {
              name: 'linear from 1 worker',
              points: pts.map(([w]) => [w, ref.mbPerSec * w]),
              dashed: true,
              color: '#999',
            },
          ],
          {
            title: 'Throughput scaling over compression workers',
            xLabel: 'compression workers',
            yLabel: 'MB/s (read + write)',
            discreteX: true,
          },
        ),
      );
    }
    if (s.name === 'lock-mode' && s.lockWaitByClass !== undefined) {
      const keys = s.rows.map((x) => x.label);
      const groups = s.lockWaitByClass
        .filter((l) => keys.some((k) => (l.waitMs[k] ?? 0) > 0 || (l.contentions[k] ?? 0) > 0))
        .map((l) => ({ category: l.lock, values: l.waitMs }));
      parts.push(
        groups.length > 0
          ? groupedBars(groups, keys, {
              title: 'Lock wait time per lock class, per lock mode',
              xLabel: 'total wait, ms (lock_stat waittime-total)',
            })
          : '<p>No lock waited in either mode.</p>',
      );
      parts.push(
        table(
          ['lock class', ...keys.map((k) => `${k} wait ms`), ...keys.map((k) => `${k} contentions`)],
          s.lockWaitByClass.map((l) => [
            l.lock,
            ...keys.map((k) => f(l.waitMs[k] ?? 0, 2)),
            ...keys.map((k) => l.contentions[k] ?? 0),
          ]),
        ),
      );
    }
    if (s.notes !== undefined)
      parts.push(
        `<p>${Object.entries(s.notes)
          .map(([k, v]) => `${esc(k)} = ${f(v, Number.isInteger(v) ? 0 : 3)}`)
          .join(' · ')}</p>`,
      );
  }

  // used ratio over time
  const series: Series[] = [];
  const withTime = r.runs.filter((x) => x.key === base.key || !x.config.compaction);
  for (const x of withTime)
    series.push({
      name: x.key.replace(/ chain\d+/, ''),
      points: x.samples.filter((p) => p.t >= 0).map((p) => [p.t, p.usedRatio * 100]),
    });
  parts.push(
    '<h2>Used ratio over time</h2><p>compr_data_size / mem_used_total sampled every 250 ms; dashed lines: samples where pages_compacted grew in the base run (background compaction ran).</p>',
  );
  parts.push(
    lineChart(series, {
      title: 'Used ratio over time',
      xLabel: 'seconds',
      yLabel: 'used ratio, %',
      yMax: 100,
      markers: base.compactionMarks.map((x) => ({ x, color: '#d62728' })),
      markerLabel: 'compaction (base run)',
    }),
  );
  if (!r.sweeps.some((s) => s.name === 'lock-mode')) {
    const groups = base.lockStat
      .filter((l) => l.waitTotalUs > 0)
      .map((l) => ({
        category: l.state ? `${l.name}-${l.state}` : l.name,
        values: { [base.config.lockMode]: l.waitTotalUs / 1000 },
      }));
    if (groups.length > 0)
      parts.push(
        groupedBars(groups, [base.config.lockMode], {
          title: 'Lock wait time per lock class (base run)',
          xLabel: 'ms',
        }),
      );
  }
  parts.push('<h3>lock_stat of the base run</h3>');
  parts.push(
    table(
      ['class', 'state', 'acquisitions', 'contentions', 'wait total µs', 'wait max µs', 'hold total µs'],
      base.lockStat.map((l) => [
        l.name,
        l.state,
        l.acquisitions,
        l.contentions,
        f(l.waitTotalUs, 1),
        f(l.waitMaxUs, 1),
        f(l.holdTotalUs, 1),
      ]),
    ),
  );
  parts.push('<h3>Contention points of the base run (call sites that waited)</h3>');
  parts.push(runContentionHtml(base));
  parts.push('<h3>Lock wait over time (base run)</h3>');
  parts.push(lockWaitOverTimeHtml(base, 'Lock wait per 250 ms per lock class (base run)'));
  parts.push(
    `<p>buddyinfo after the base run: <code>${base.buddyinfo.join(' ')}</code>; migration: ${esc(JSON.stringify(base.migration))}</p>`,
  );

  // seeds
  const s = r.seeds;
  parts.push("<h2>The seeds' experiment: compaction after heavy swap in/out</h2>");
  parts.push(
    `<p>${s.pages} pages of high-ratio data (text and heap-like), ${s.rounds} rounds of swap-in (half of the resident pages read and freed) and swap-out, background compaction off, then one compaction (${f(s.compactMs, 1)} ms). ${s.pagesPresent} pages resident at the end.</p>`,
  );
  parts.push(
    table(
      ['', 'this run', 'seed (2015, 8 GB zram swap)'],
      [
        ['allocated object bytes', s.before.allocatedObjectBytes, s.seed.allocatedObjectBytes],
        ['total used before', s.before.totalUsed, s.seed.totalUsedBefore],
        ['total used after', s.after.totalUsed, s.seed.totalUsedAfter],
        [
          'used ratio before → after',
          `${pct(s.before.usedRatio)} → ${pct(s.after.usedRatio)}`,
          `${pct(s.seed.usedRatioBefore)} → ${pct(s.seed.usedRatioAfter)}`,
        ],
        ['pages compacted', s.pagesCompacted, (s.seed.totalUsedBefore - s.seed.totalUsedAfter) / PAGE_SIZE],
      ],
    ),
  );
  parts.push(
    `<div class="row">${frameGrid(s.before.frameMap, { title: 'Physical memory before compaction' })}${frameGrid(s.after.frameMap, { title: 'after compaction' })}</div>`,
  );
  parts.push(
    `<p>buddyinfo before: <code>${s.before.buddyinfo.join(' ')}</code> · after: <code>${s.after.buddyinfo.join(' ')}</code></p>`,
  );

  // baselines
  const b = r.baselines;
  parts.push(`<h2>Baselines (same ${b.pages} pages)</h2>`);
  const k = b.kernel;
  parts.push(
    table(
      ['store', 'write MB/s', 'read MB/s', 'memory', 'vs zram mem_used_total'],
      [
        ['zram service, base run (threads, mixed requests)', `${f(base.prefill.mbPerSec, 1)} (prefill)`, '-', '-', '-'],
        [
          'bare zram device, this thread',
          f(b.device.writeMbPerSec, 1),
          f(b.device.readMbPerSec, 1),
          MiB(b.device.memUsedTotal),
          '1.00x',
        ],
        [
          `naive JS Map of lz4 outputs${b.naive.gcForced ? ' (GC forced)' : ''}`,
          f(b.naive.writeMbPerSec, 1),
          f(b.naive.readMbPerSec, 1),
          `${MiB(b.naive.realBytes)} (heap ${MiB(b.naive.heapDelta)} + external ${MiB(b.naive.externalDelta)}; payload ${MiB(b.naive.payloadBytes)})`,
          `${f(b.naiveOverZram, 3)}x`,
        ],
        k.ran
          ? [
              'kernel zram0 (lz4, dd direct I/O)',
              f(k.writeMbPerSec, 1),
              f(k.readMbPerSec, 1),
              MiB(k.memUsedTotal),
              `${f(1 / k.memUsedDeviceOverKernel, 3)}x`,
            ]
          : ['kernel zram0', 'skipped', '', k.reason, ''],
      ],
    ),
  );
  const d = b.density;
  parts.push(
    table(
      ['allocator (same object sizes)', 'pages', 'used ratio', 'vs zsmalloc'],
      [
        ['zsmalloc (this pool)', d.zsmallocPages, pct(d.zsmallocUsedRatio), '1.00x'],
        [
          `zbud model (≤ 2 objects per page; ${d.zbud.buddied} pairs, ${d.zbud.unbuddied} alone, ${d.zbud.whole} whole pages)`,
          d.zbud.pages,
          pct(d.zbudUsedRatio),
          `${f(d.zbudOverZsmalloc, 3)}x`,
        ],
      ],
    ),
  );

  return pageHtml('zsmalloc stress bench', parts.join('\n'));
}
