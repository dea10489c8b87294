import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fillWord, sameFilled, type FillWord } from './same-page.js';

const PAGE = 4096;

/** The kernel's definition, word by word. */
function reference(page: Uint8Array): boolean {
  for (let i = 8; i < PAGE; i++) if (page[i] !== page[i & 7]) return false;
  return true;
}

function filled(word: readonly number[], into = new Uint8Array(PAGE)): Uint8Array {
  for (let i = 0; i < PAGE; i++) into[i] = word[i & 7]!;
  return into;
}

describe('sameFilled', () => {
  const w: FillWord = { lo: 0, hi: 0 };

  it('finds zero and same-filled pages and gives their word', () => {
    expect(sameFilled(new Uint8Array(PAGE), w)).toBe(true);
    expect(w).toEqual({ lo: 0, hi: 0 });
    expect(sameFilled(filled([1, 2, 3, 4, 5, 6, 7, 0x88]), w)).toBe(true);
    expect(w).toEqual({ lo: 0x04030201, hi: 0x88070605 | 0 });
  });

  it('refuses a page that differs from the word in any one byte', () => {
    for (const at of [8, 9, 15, 16, 2047, 2048, 4000, 4087, 4088, 4095]) {
      const p = filled([9, 9, 9, 9, 9, 9, 9, 9]);
      p[at] = 10;
      expect(sameFilled(p, w)).toBe(false);
    }
  });

  it('reads pages at any byte offset and in shared memory', () => {
    const sab = new Uint8Array(new SharedArrayBuffer(3 * PAGE));
    for (const off of [0, 1, 3, 8, PAGE + 5]) {
      const p = filled([7, 0, 7, 0, 7, 0, 7, 1], sab.subarray(off, off + PAGE));
      expect(sameFilled(p, w)).toBe(true);
      p[PAGE - 1] = 2;
      expect(sameFilled(p, w)).toBe(false);
    }
  });

  it('agrees with the word-by-word definition, and fillWord writes back the page it found', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 8, maxLength: 8 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: PAGE - 1 }), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
        (word, changes) => {
          const p = filled(word);
          for (const [at, v] of changes) p[at] = v;
          const got = sameFilled(p, w);
          expect(got).toBe(reference(p));
          if (got) {
            const back = new Uint8Array(PAGE);
            fillWord(back, w.lo, w.hi);
            expect(back).toEqual(p);
          }
        },
      ),
    );
  });
});
