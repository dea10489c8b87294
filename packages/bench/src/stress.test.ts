// Smoke test of the stress bench: runs the tiny --smoke version of every part
// (all sweeps, the seeds' experiment, the baselines; the kernel's zram0 is left
// out so it never races the service benchmark's test for the device), checks
// that the figures are finite and positive, the JSON is written and the HTML
// has its SVG charts. Never asserts on speed.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultOptions } from './stress/options.js';
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
});
