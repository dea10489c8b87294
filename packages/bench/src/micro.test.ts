// Smoke test of the micro-benchmarks: each runs with tiny counts and must
// produce finite positive figures and a ratio to its baseline. Never asserts
// on speed (targets are reported, not tested).

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { microConfig } from './measure.js';
import { MALLOC_SIZES, sizeLabel } from './micro/allocator.js';
import { MICRO_BENCHMARKS, runMicro } from './micro/suite.js';
import { formatTable, type BenchRow } from './report.js';

const cfg = microConfig(true);

function checkRows(rows: BenchRow[]): void {
  expect(rows.length).toBeGreaterThan(0);
  const names = new Set(rows.map((r) => r.name));
  for (const r of rows) {
    for (const v of [r.nsPerOp, r.meanNsPerOp, r.opsPerSec]) {
      expect(Number.isFinite(v)).toBe(true);
      expect(v).toBeGreaterThan(0);
    }
    expect(r.samples).toBeGreaterThan(0);
    expect(r.ops).toBeGreaterThan(0);
    if (r.baseline !== undefined) {
      expect(names.has(r.baseline)).toBe(true);
      expect(Number.isFinite(r.ratio)).toBe(true);
      expect(r.ratio!).toBeGreaterThan(0);
    }
    if (r.bytesPerOp !== undefined) expect(r.mbPerSec!).toBeGreaterThan(0);
    for (const t of r.targets ?? []) expect(typeof t.met).toBe('boolean');
  }
  // every benchmark compares something with a baseline from the same run
  expect(rows.some((r) => r.ratio !== undefined)).toBe(true);
}

describe('micro-benchmarks (smoke)', () => {
  for (const b of MICRO_BENCHMARKS) {
    it(`${b.name} runs and yields figures and a ratio`, async () => {
      const rows = await b.run(cfg);
      checkRows(rows);
      if (b.name === 'migration') {
        const mig = rows.find((r) => r.baseline !== undefined)!;
        expect(mig.extra?.verified).toBe(true);
        expect(mig.extra?.failed).toBe(0);
        expect(mig.extra?.framesMigrated as number).toBeGreaterThan(0);
        expect(mig.targets?.length).toBe(1);
      }
      if (b.name === 'zram') {
        const write = rows.find((r) => r.name === 'zram writePage 4KiB')!;
        const read = rows.find((r) => r.name === 'zram readPage 4KiB')!;
        const overwrite = rows.find((r) => r.name === 'zram writePage 4KiB (overwrite)')!;
        expect(overwrite.extra?.overwriteVsCompress as number).toBeGreaterThan(0);
        expect(overwrite.targets?.length).toBe(1);
        for (const r of [write, overwrite, read]) {
          expect(r.baseline).toBeDefined();
          expect(r.mbPerSec!).toBeGreaterThan(0);
        }
        for (const r of rows) expect(Number.isFinite(r.mbPerSec)).toBe(true);
        const figures = [
          write.extra?.writeVsCompress,
          read.extra?.readVsDecompress,
          write.extra?.memUsedOverCompr,
          write.extra?.comprRatio,
          write.extra?.effectiveRatio,
        ];
        for (const v of figures) {
          expect(typeof v).toBe('number');
          expect(Number.isFinite(v as number)).toBe(true);
          expect(v as number).toBeGreaterThan(0);
        }
        expect(write.targets?.length).toBe(2);
        expect(read.targets?.length).toBe(1);
        expect(read.extra?.verified).toBe(true);
        expect(write.extra?.pages).toBe(cfg.zramPages);
      }
      if (b.name === 'malloc+free') {
        // one malloc+free row per size, each next to its Map+Uint8Array baseline
        for (const size of MALLOC_SIZES) {
          const zs = rows.find((r) => r.name === `zs malloc+free ${sizeLabel(size)}`)!;
          expect(zs.baseline).toBe(`Map+Uint8Array alloc/delete ${sizeLabel(size)}`);
          expect(zs.ratio!).toBeGreaterThan(0);
        }
        expect(rows.length).toBe(2 * MALLOC_SIZES.length);
      }
      if (b.name === 'contended-locks') {
        expect(rows.length).toBe(2);
        const mutex = rows.find((r) => r.baseline !== undefined)!;
        expect(mutex.extra?.threads).toBe(2);
        expect(mutex.extra?.verified).toBe(true);
        expect(rows[0]!.extra?.verified).toBe(true);
        // lock_stat counted exactly the acquisitions both workers made (warm-up included), no more, no less
        expect(mutex.extra?.acquisitions as number).toBeGreaterThanOrEqual(mutex.ops);
        expect(mutex.extra?.acquisitions).toBe(mutex.extra?.expectedAcquisitions);
        // every contention is attributed to the one call site the workers lock from, none elsewhere
        expect(mutex.extra?.benchSiteContentions).toBe(mutex.extra?.contentions);
        expect(mutex.extra?.otherSiteContentions).toBe(0);
        expect(mutex.extra?.contentions as number).toBeLessThanOrEqual(mutex.extra?.acquisitions as number);
      }
      if (b.name === 'codecs') {
        for (const label of ['lz4-wasm', 'lz4-napi', 'deflate', 'brotli']) {
          const c = rows.find((r) => r.name === `${label} compress 4KiB`)!;
          const d = rows.find((r) => r.name === `${label} decompress 4KiB`)!;
          for (const r of [c, d]) {
            expect(Number.isFinite(r.mbPerSec)).toBe(true);
            expect(r.mbPerSec!).toBeGreaterThan(0);
            if (label !== 'lz4-wasm') expect(r.ratio!).toBeGreaterThan(0);
          }
          expect(c.extra?.verified).toBe(true);
          expect(Number.isFinite(c.extra?.comprRatio as number)).toBe(true);
          expect(c.extra?.comprRatio as number).toBeGreaterThan(0);
        }
      }
    });
  }

  const dir = mkdtempSync(join(tmpdir(), 'zs-bench-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runMicro prints a table and writes the JSON report', async () => {
    const path = join(dir, 'micro.json');
    const { report, jsonPath } = await runMicro({ smoke: true, jsonPath: path, print: false });
    expect(jsonPath).toBe(path);
    checkRows(report.rows);
    expect(report.smoke).toBe(true);
    const json = JSON.parse(readFileSync(path, 'utf8')) as typeof report;
    expect(json.rows.map((r) => r.name)).toEqual(report.rows.map((r) => r.name));
    const table = formatTable(report.rows);
    for (const r of report.rows) expect(table).toContain(r.name);
    expect(table).toContain('targets:');
  });
});
