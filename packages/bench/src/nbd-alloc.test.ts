// Smoke test of the NBD allocation benchmark, and the claim it measures: the
// NBD connection's 4 KiB path allocates nothing per request in steady state but
// a WRITE payload's view. Runs the built bench (it re-runs itself with a young
// generation no window fills, so the heap's growth is what was allocated)
// against the null backend (the protocol code alone) and the ZramService
// backend. Bytes, not time: nothing here is timed.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

interface Row {
  name: string;
  requests: number;
  heapBytesPerRequest: number;
  mainCpuUsPerRequest: number;
}

const script = fileURLToPath(new URL('../dist/nbd-alloc.js', import.meta.url));

function bench(dir: string, args: string[]): Row[] {
  const json = join(dir, `${args.join('_').replace(/[^a-z0-9_]/gi, '')}.json`);
  const r = spawnSync(process.execPath, [script, '--requests', '4000', '--json', json, ...args], { encoding: 'utf8' });
  expect(r.status, r.stderr + r.stdout).toBe(0);
  const rows = (JSON.parse(readFileSync(json, 'utf8')) as { rows: Row[] }).rows;
  for (const row of rows) {
    expect(row.requests).toBeGreaterThanOrEqual(4000);
    expect(Number.isFinite(row.heapBytesPerRequest)).toBe(true);
    expect(row.heapBytesPerRequest).toBeGreaterThanOrEqual(0);
  }
  return rows;
}

const row = (rows: Row[], prefix: string): Row => rows.find((r) => r.name.startsWith(prefix))!;

describe('bench:nbd-alloc', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zs-nbd-alloc-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(['simple', 'structured'])(
    'the protocol code (null backend, %s replies) allocates nothing per READ and only the payload view per WRITE',
    (replies) => {
      const rows = bench(dir, ['--backend', 'null', ...(replies === 'structured' ? ['--structured'] : [])]);
      const driver = row(rows, 'driver alone').heapBytesPerRequest;
      // the driver's one setImmediate and emit per burst is all a READ costs
      expect(row(rows, 'READ').heapBytesPerRequest).toBeLessThan(driver + 16);
      // a WRITE adds its payload's view (~96 bytes); the record, the reply and the
      // dispatch add nothing (before the reused record this path took ~700 bytes)
      expect(row(rows, 'WRITE').heapBytesPerRequest).toBeLessThan(driver + 96 + 160);
    },
    60_000,
  );

  it('runs over the ZramService backend and reports every figure', () => {
    const rows = bench(dir, ['--backend', 'service', '--rtc', 'never', '--workers', '1']);
    expect(rows.map((r) => r.name.split(' ')[0])).toEqual(['WRITE', 'READ', 'driver']);
  }, 60_000);
});
