import { describe, expect, it } from 'vitest';
import { buildSizeClasses, chainLength, classIndexFor } from './size-class.js';
import { ZsError } from './errors.js';

describe('size classes', () => {
  it('has 255 classes of 32 + 16*i bytes, the last one a page', () => {
    const t = buildSizeClasses(8);
    expect(t.size.length).toBe(255);
    expect(t.size[0]).toBe(32);
    expect(t.size[254]).toBe(4096);
  });

  it('reproduces the published distinct-class counts 69 / 123 / 191 (rule of the chain-size patch)', () => {
    expect(buildSizeClasses(4, 'percent').distinct.length).toBe(69);
    expect(buildSizeClasses(8, 'percent').distinct.length).toBe(123);
    expect(buildSizeClasses(16, 'percent').distinct.length).toBe(191);
  });

  it('gives the current min-waste rule its own counts (69 / 119 / 192)', () => {
    expect(buildSizeClasses(4).distinct.length).toBe(69);
    expect(buildSizeClasses(8).distinct.length).toBe(119);
    expect(buildSizeClasses(16).distinct.length).toBe(192);
  });

  it('has huge_class_size 3264 / 3632 / 3840 for chain 4 / 8 / 16 under both rules', () => {
    for (const rule of ['waste', 'percent'] as const) {
      expect(buildSizeClasses(4, rule).hugeClassSize).toBe(3264);
      expect(buildSizeClasses(8, rule).hugeClassSize).toBe(3632);
      expect(buildSizeClasses(16, rule).hugeClassSize).toBe(3840);
    }
  });

  it('gives class 208 three pages (16 B waste) under the current rule, two under the percent rule', () => {
    expect(chainLength(208, 8, 'waste')).toBe(3);
    expect((3 * 4096) % 208).toBe(16);
    expect(chainLength(208, 8, 'percent')).toBe(2);
    expect((2 * 4096) % 208).toBe(80);
  });

  it('gives power-of-two sizes one page', () => {
    for (const s of [32, 64, 128, 256, 512, 1024, 2048, 4096]) expect(chainLength(s, 16, 'waste')).toBe(1);
  });

  it('merges classes 95..99 into class 100 (1632 bytes, 2 pages, 5 objects) with chain 4', () => {
    const t = buildSizeClasses(4);
    for (let i = 95; i <= 99; i++) expect(t.merged[i]).toBe(100);
    expect(t.size[100]).toBe(1632);
    expect(t.pagesPerZspage[100]).toBe(2);
    expect(t.objsPerZspage[100]).toBe(5);
  });

  it('stores 13 objects of 1568 bytes in 6 pages with chain 4 and in 5 pages with a 5-page chain', () => {
    const pagesFor = (chain: number) => {
      const t = buildSizeClasses(chain);
      const c = t.merged[96]!; // 32 + 16*96 = 1568
      return Math.ceil(13 / t.objsPerZspage[c]!) * t.pagesPerZspage[c]!;
    };
    expect(buildSizeClasses(4).size[96]).toBe(1568);
    expect(pagesFor(4)).toBe(6);
    expect(pagesFor(5)).toBe(5);
  });

  it('merges every huge class (one object in one page) into class 254', () => {
    const t = buildSizeClasses(8);
    for (let i = 0; i < 255; i++) if (t.huge[i]) expect(t.merged[i]).toBe(254);
    expect(t.huge[254]).toBe(1);
  });

  it('places a request of n bytes in the class for n + 8 (the handle header)', () => {
    const t = buildSizeClasses(8);
    expect(classIndexFor(t, 24)).toBe(t.merged[0]);
    expect(classIndexFor(t, 25)).toBe(t.merged[1]);
    expect(t.size[classIndexFor(t, 3624)]).toBe(3632);
    expect(t.huge[classIndexFor(t, 3625)]).toBe(1);
    expect(classIndexFor(t, 4096)).toBe(254);
  });

  it("answers every request size 0..4096 from its table exactly as the kernel's formula does", () => {
    for (const chain of [4, 8, 16])
      for (const rule of ['waste', 'percent'] as const) {
        const t = buildSizeClasses(chain, rule);
        for (let n = 0; n <= 4096; n++) {
          const formula = n + 8 <= 32 ? 0 : Math.min(Math.ceil((n + 8 - 32) / 16), 254);
          if (t.bySize[n] !== t.merged[formula]) throw new Error(`chain ${chain} ${rule}: size ${n}`);
          expect(classIndexFor(t, n)).toBe(t.merged[formula]);
        }
      }
    // a size outside the table (not an integer) still gets the formula's answer
    const t = buildSizeClasses(8);
    expect(classIndexFor(t, 100.5)).toBe(t.merged[Math.ceil((100.5 + 8 - 32) / 16)]);
  });

  it('rejects chain sizes outside 4..16', () => {
    expect(() => buildSizeClasses(3)).toThrow(ZsError);
    expect(() => buildSizeClasses(17)).toThrow(ZsError);
    expect(() => buildSizeClasses(8.5)).toThrow(ZsError);
  });
});
