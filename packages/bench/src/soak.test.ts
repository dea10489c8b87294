import { describe, expect, it } from 'vitest';
import { runSoak } from './soak/run.js';

// The CI-sized soak (the long runs are `pnpm soak --seconds ...`).
describe('soak (short)', () => {
  it('runs without kills and verifies ok', async () => {
    const r = await runSoak({ seconds: 3, lockMode: 'class', killEvery: 0, pages: 512 });
    expect(r.line).toMatch(/^soak: \d+ page ops, \d+ pages verified, 0 mismatches, 0 worker deaths, verify ok$/);
  }, 60_000);

  it('stops after the page operations asked for, not at the time limit', async () => {
    const r = await runSoak({ seconds: 600, ops: 2000, lockMode: 'class', killEvery: 0, pages: 512 });
    // each lane stops at its next operation once the count is reached: at most one
    // more run of pages per lane (8 lanes of up to 8 pages)
    expect(r.pageOps).toBeGreaterThanOrEqual(2000);
    expect(r.pageOps).toBeLessThan(2000 + 8 * 8);
    expect(r.verify).toBe('ok');
  }, 120_000);

  for (const [lockMode, percpuCache] of [
    ['class', false],
    ['pool', false],
    ['class', true],
  ] as const) {
    it(`verifies every page read against the last acknowledged write while workers are killed and restarted (lockMode ${lockMode}, percpuCache ${percpuCache})`, async () => {
      const seed = lockMode === 'class' ? (percpuCache ? 5 : 3) : 4;
      const r = await runSoak({ seconds: 6, lockMode, percpuCache, killEvery: 1, pages: 512, seed });
      console.log(r.line);
      // never a wrong page, and the soak goes on across every death: what a death left
      // half done is repaired, never fenced
      expect(r.line).toMatch(/^soak: \d+ page ops, \d+ pages verified, 0 mismatches, \d+ worker deaths, verify ok$/);
      expect(r.deaths).toBeGreaterThan(0);
      expect(r.verified).toBeGreaterThan(0);
    }, 120_000);
  }
});
