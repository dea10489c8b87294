// Smoke test of the stress bench: runs the tiny --smoke version of every part
// (all sweeps, the seeds' experiment, the baselines; the kernel's zram0 is left
// out so it never races the service benchmark's test for the device), checks
// that the figures are finite and positive, the JSON is written and the HTML
// has its SVG charts. Never asserts on speed.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultOptions, parseStressArgs } from './stress/options.js';
import { runStress, type StressReport } from './stress/suite.js';
import { zbudPages, ZBUD_MAX } from './stress/zbud.js';

const positive = (v: unknown, what: string): void => {
  expect(typeof v, what).toBe('number');
  expect(Number.isFinite(v as number), what).toBe(true);
  expect(v as number, what).toBeGreaterThan(0);
};

describe('zbud model', () => {
  it('pairs at most two objects per page, first fit', () => {
    expect(zbudPages([1984, 1984, 1984]).pages).toBe(2); // 31 chunks each: two fit in 63
    expect(zbudPages([2000, 2000]).pages).toBe(2); // 32 + 32 > 63
    expect(zbudPages([100, 100, 100, 100]).pages).toBe(2);
    expect(zbudPages([3000, 1500]).pages).toBe(2);
    const r = zbudPages([ZBUD_MAX + 1, 64, 64]);
    expect(r).toMatchObject({ pages: 2, whole: 1, buddied: 1 });
  });
});

describe('stress bench (smoke)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zs-stress-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs every part, yields finite positive figures, writes JSON and an HTML report with SVG', async () => {
    const opts = {
      ...defaultOptions(true),
      kernel: false,
      print: false,
      progress: false,
      jsonPath: join(dir, 's.json'),
      htmlPath: join(dir, 's.html'),
    };
    const { report, jsonPath, htmlPath } = await runStress(opts);
    expect(jsonPath).toBe(opts.jsonPath);
    const json = JSON.parse(readFileSync(jsonPath!, 'utf8')) as StressReport;
    expect(json.kind).toBe('stress');
    expect(json.runs.length).toBe(report.runs.length);
    expect(json.sweeps.map((s) => s.name)).toEqual(['workers', 'lock-mode', 'chain', 'compaction']);
    for (const r of json.runs) {
      for (const [k, v] of Object.entries({
        mbPerSec: r.mbPerSec,
        requestsPerSec: r.requestsPerSec,
        p50: r.latencyMs.all.p50,
        p99: r.latencyMs.all.p99,
        p999: r.latencyMs.all.p999,
        memUsedTotal: r.mm.memUsedTotal,
        usedRatio: r.usedRatio,
        prefill: r.prefill.mbPerSec,
      }))
        positive(v, `${r.key} ${k}`);
      expect(r.samples.length).toBeGreaterThan(1);
      expect(r.lockStat.some((l) => l.acquisitions > 0)).toBe(true);
      expect(r.buddyinfo.length).toBe(11);
      expect(r.failures).toBe(0);
    }
    for (const s of json.sweeps) for (const row of s.rows) positive(row.ratio, `${s.name} ${row.label} ratio`);
    const seeds = json.seeds;
    for (const v of [
      seeds.before.allocatedObjectBytes,
      seeds.before.totalUsed,
      seeds.after.totalUsed,
      seeds.before.usedRatio,
      seeds.after.usedRatio,
      seeds.pagesCompacted,
    ]) {
      positive(v, 'seeds');
    }
    expect(seeds.after.totalUsed).toBeLessThanOrEqual(seeds.before.totalUsed);
    expect(seeds.before.frameMap.length).toBeGreaterThan(0);
    const b = json.baselines;
    for (const v of [
      b.naive.writeMbPerSec,
      b.naive.readMbPerSec,
      b.naive.payloadBytes,
      b.device.memUsedTotal,
      b.density.zsmallocPages,
      b.density.zbud.pages,
      b.density.zbudOverZsmalloc,
    ]) {
      positive(v, 'baselines');
    }
    expect(b.kernel.ran).toBe(false);
    const html = readFileSync(htmlPath!, 'utf8');
    expect((html.match(/<svg[\s>]/g) ?? []).length).toBeGreaterThanOrEqual(5);
    expect(html).toContain('</html>');
    expect(html).not.toMatch(/NaN|undefined/);
  }, 60_000);

  it('--repeat 2 runs the arms interleaved and reports samples, median and ci95 per arm, ratio/ci95/verdict per comparison', async () => {
    const opts = parseStressArgs([
      '--smoke',
      '--repeat',
      '2',
      '--sweep',
      'lock-mode',
      '--seconds',
      '0.3',
      '--no-kernel',
      '--no-progress',
      '--json',
      join(dir, 'r.json'),
      '--html',
      join(dir, 'r.html'),
    ]);
    opts.print = false;
    expect(opts.repeat).toBe(2);
    const { jsonPath, htmlPath } = await runStress(opts);
    const json = JSON.parse(readFileSync(jsonPath!, 'utf8')) as StressReport;
    expect(json.repeat).toBe(2);
    // interleaved: class #1, pool #1, class #2, pool #2 (the base, class, is the lock-mode sweep's first arm)
    expect(json.runs.map((r) => `${r.config.lockMode}#${r.repeat}`)).toEqual([
      'class#0',
      'pool#0',
      'class#1',
      'pool#1',
    ]);
    const sweep = json.sweeps.find((s) => s.name === 'lock-mode')!;
    expect(sweep.arms.map((a) => a.label)).toEqual(['class', 'pool']);
    const isArm = (x: unknown, what: string): void => {
      const a = x as { samples: number[]; median: number; ci95: [number, number] };
      expect(Object.keys(a).sort(), what).toEqual(['ci95', 'median', 'samples']);
      expect(a.samples.length, what).toBe(2);
      for (const v of a.samples) positive(v, what);
      expect(a.median, what).toBeCloseTo((a.samples[0]! + a.samples[1]!) / 2, 9);
      expect(a.ci95.length, what).toBe(2);
      expect(a.ci95[0], what).toBeLessThanOrEqual(a.median);
      expect(a.ci95[1], what).toBeGreaterThanOrEqual(a.median);
    };
    for (const a of sweep.arms) {
      isArm(a.mbPerSec, `${a.label} MB/s`);
      isArm(a.p99Ms, `${a.label} p99`);
      // the samples are the arm's runs, in order
      const runs = json.runs.filter((r) => r.key === a.key);
      expect(a.mbPerSec.samples).toEqual(runs.map((r) => r.mbPerSec));
      expect(a.p99Ms.samples).toEqual(runs.map((r) => r.latencyMs.all.p99));
    }
    expect(sweep.comparisons.map((c) => c.metric)).toEqual(['mbPerSec', 'p99Ms', 'lockWaitMs']);
    for (const c of sweep.comparisons) {
      expect(Object.keys(c).sort()).toEqual(['a', 'b', 'ci95', 'metric', 'ratio', 'verdict']);
      expect(c.a).toBe('pool');
      expect(c.b).toBe('class');
      if (c.metric !== 'lockWaitMs') positive(c.ratio, c.metric);
      expect(c.verdict).toMatch(/not distinguishable|faster|better|worse/);
    }
    const mb = sweep.comparisons[0]!;
    const pool = sweep.arms[1]!.mbPerSec;
    const cls = sweep.arms[0]!.mbPerSec;
    expect(mb.ratio).toBeCloseTo(pool.median / cls.median, 9);
    const html = readFileSync(htmlPath!, 'utf8');
    expect(html).toContain('Throughput per arm (median, 95% CI, samples)');
    expect(html).toContain(mb.verdict.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;'));
    expect(html).toContain('Lock wait per 250 ms per lock class');
    expect(html).not.toMatch(/NaN|undefined/);
  }, 120_000);
});
