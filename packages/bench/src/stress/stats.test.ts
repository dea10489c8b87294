import { describe, expect, it } from 'vitest';
import { armStat, compareArms, median, quantileSorted, verdict } from './stats.js';

describe('bench statistics', () => {
  it('median of odd and even samples, order-independent', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
    expect(() => median([])).toThrow();
    expect(quantileSorted([0, 10], 0.25)).toBe(2.5);
  });

  it('the median interval lies within the samples and contains the median; one sample gives a point', () => {
    const s = armStat([100, 104, 98, 101, 99]);
    expect(s.median).toBe(100);
    expect(s.samples).toEqual([100, 104, 98, 101, 99]);
    expect(s.ci95[0]).toBeGreaterThanOrEqual(98);
    expect(s.ci95[1]).toBeLessThanOrEqual(104);
    expect(s.ci95[0]).toBeLessThanOrEqual(100);
    expect(s.ci95[1]).toBeGreaterThanOrEqual(100);
    // with five samples a resampled median equals the minimum (or the maximum) with probability
    // 5.8% > 2.5%, so the percentile interval reaches both extremes: five repeats bound, not pin
    expect(s.ci95).toEqual([98, 104]);
    const many = armStat(Array.from({ length: 41 }, (_, i) => 80 + i)); // 80..120
    expect(many.median).toBe(100);
    expect(many.ci95[0]).toBeGreaterThan(85);
    expect(many.ci95[1]).toBeLessThan(115);
    expect(armStat([5]).ci95).toEqual([5, 5]);
    // reproducible: the same samples give the same interval
    expect(armStat([1, 2, 3, 4, 10]).ci95).toEqual(armStat([1, 2, 3, 4, 10]).ci95);
  });

  it('two clearly separated arms: ratio of medians, an interval excluding 1, a "faster" verdict', () => {
    const a = [120, 122, 118, 121, 119];
    const b = [100, 101, 99, 102, 98];
    const c = compareArms(a, b, { a: 'pool', b: 'class', what: 'MB/s', better: 'higher' });
    expect(c.ratio).toBeCloseTo(1.2, 10);
    expect(c.ci95[0]).toBeGreaterThan(1);
    expect(c.ci95[0]).toBeLessThanOrEqual(c.ratio);
    expect(c.ci95[1]).toBeGreaterThanOrEqual(c.ratio);
    // bounded by the extreme ratios of the samples
    expect(c.ci95[0]).toBeGreaterThanOrEqual(118 / 102);
    expect(c.ci95[1]).toBeLessThanOrEqual(122 / 98);
    expect(c.verdict).toMatch(/^pool is 1\.20x faster than class in MB\/s \(CI 1\.\d\d-1\.\d\d\)$/);
    const back = compareArms(b, a, { a: 'class', b: 'pool', what: 'MB/s', better: 'higher' });
    expect(back.verdict).toMatch(/^pool is 1\.20x faster than class/);
  });

  it('overlapping noisy arms (the 1.20x / 0.74x case) are "not distinguishable"', () => {
    const a = [120, 74, 100, 95, 110];
    const b = [100, 100, 96, 118, 80];
    const c = compareArms(a, b, { a: 'pool', b: 'class', what: 'MB/s', better: 'higher' });
    expect(c.ci95[0]).toBeLessThan(1);
    expect(c.ci95[1]).toBeGreaterThan(1);
    expect(c.verdict).toMatch(/not distinguishable/);
  });

  it('lower-is-better figures say better or worse', () => {
    expect(verdict(0.5, [0.4, 0.6], { a: 'on', b: 'off', what: 'p99', better: 'lower' })).toMatch(/better/);
    expect(verdict(2, [1.5, 2.5], { a: 'on', b: 'off', what: 'p99', better: 'lower' })).toMatch(/worse/);
    expect(verdict(1, [0.9, 1.1], { a: 'on', b: 'off', what: 'p99', better: 'lower' })).toMatch(/not distinguishable/);
  });

  it('arms that are zero in some repeats (no lock wait in a short run) give a ratio and interval without NaN', () => {
    const a = [0, 0, 0, 2, 0];
    const b = [0, 0, 3, 0, 0];
    const c = compareArms(a, b, { a: 'pool', b: 'class', what: 'lock wait', better: 'lower' });
    expect(c.ratio).toBe(1);
    expect(Number.isNaN(c.ci95[0]) || Number.isNaN(c.ci95[1])).toBe(false);
    expect(c.ci95[0]).toBeLessThanOrEqual(c.ci95[1]);
    expect(c.verdict).not.toMatch(/NaN/);
  });
});
