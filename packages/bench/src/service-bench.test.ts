// Smoke test of the service benchmark: runs the smoke mode (tiny stream, one
// pass, the kernel's zram0 only if present and unused, else a skip reason) and
// checks every figure is finite and positive and the JSON is written. Never
// asserts on speed (targets are reported, not tested).

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runServiceBench, SERVICE_CONFIGS } from './service/suite.js';

const positive = (v: unknown): void => {
  expect(typeof v).toBe('number');
  expect(Number.isFinite(v as number)).toBe(true);
  expect(v as number).toBeGreaterThan(0);
};

describe('service benchmark (smoke)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zs-svc-bench-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs, yields finite positive figures and writes the JSON', async () => {
    const path = join(dir, 'service.json');
    const { report, jsonPath, kernel } = await runServiceBench({ smoke: true, jsonPath: path, print: false });
    expect(jsonPath).toBe(path);
    expect(report.kind).toBe('service');
    expect(report.smoke).toBe(true);
    const names = new Set(report.rows.map((r) => r.name));
    for (const op of ['write', 'read'])
      for (const c of SERVICE_CONFIGS) expect(names.has(`service ${op} ${c.key}`)).toBe(true);
    for (const r of report.rows) {
      for (const v of [r.nsPerOp, r.meanNsPerOp, r.opsPerSec, r.mbPerSec]) positive(v);
      expect(r.ops).toBeGreaterThan(0);
      if (r.baseline !== undefined) {
        expect(names.has(r.baseline)).toBe(true);
        positive(r.ratio);
      }
      for (const t of r.targets ?? []) expect(typeof t.met).toBe('boolean');
    }
    positive(report.scaling.writeSpeedup);
    positive(report.scaling.readSpeedup);
    for (const s of Object.values(report.scaling.cpu)) {
      positive(s.processCores);
      expect(Number.isFinite(s.otherUsPerPage)).toBe(true);
      expect(Number.isFinite(s.mainElu)).toBe(true);
    }
    expect(report.rows.find((r) => r.name.startsWith('device readPage'))!.extra?.verified).toBe(true);
    if (kernel.ran) {
      expect(kernel.result.verified).toBe(true);
      const kw = report.rows.find((r) => r.name === 'kernel zram write (dd direct, 1 stream)')!;
      for (const k of ['svc2wOverKernel', 'comprSizeSvcOverKernel', 'memUsedSvcOverKernel']) positive(kw.extra?.[k]);
    } else {
      expect(kernel.reason.length).toBeGreaterThan(0);
      expect(report.kernel.reason).toBe(kernel.reason);
    }
    const json = JSON.parse(readFileSync(path, 'utf8')) as typeof report;
    expect(json.rows.map((r) => r.name)).toEqual(report.rows.map((r) => r.name));
  });
});
