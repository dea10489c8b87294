// The byte-range check and the page span: edge cases one by one, then a
// property test of the span against a byte-by-byte walk, then the device's
// byte I/O refusing bad ranges with ZramRangeError and changing nothing.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ZramDevice } from './device.js';
import { ZramRangeError } from './errors.js';
import { checkRange, newPageSpan, pageSpan, type PageSpan } from './range.js';

const PAGE = 4096;
const SIZE = 16 * PAGE;

function span(offset: number, length: number): PageSpan {
  return { ...pageSpan(offset, length) };
}

describe('pageSpan', () => {
  it('cuts a zero-length range into nothing, aligned or not', () => {
    expect(span(0, 0)).toEqual({ head: 0, first: 0, pages: 0, tail: 0 });
    expect(span(3 * PAGE, 0)).toEqual({ head: 0, first: 3, pages: 0, tail: 0 });
    expect(span(3 * PAGE + 5, 0)).toEqual({ head: 0, first: 4, pages: 0, tail: 0 });
  });

  it('keeps a range with unaligned head and tail inside one page as the head alone', () => {
    expect(span(100, 200)).toEqual({ head: 200, first: 1, pages: 0, tail: 0 });
    expect(span(PAGE + 1, PAGE - 2)).toEqual({ head: PAGE - 2, first: 2, pages: 0, tail: 0 });
    // ends exactly at the page's end: still only a head
    expect(span(PAGE + 1, PAGE - 1)).toEqual({ head: PAGE - 1, first: 2, pages: 0, tail: 0 });
  });

  it('an aligned start with a partial page is all tail', () => {
    expect(span(2 * PAGE, 10)).toEqual({ head: 0, first: 2, pages: 0, tail: 10 });
    expect(span(0, 5000)).toEqual({ head: 0, first: 0, pages: 1, tail: 5000 - PAGE });
  });

  it('two partial pages across one boundary: a head and a tail, no whole page', () => {
    expect(span(4000, 200)).toEqual({ head: 96, first: 1, pages: 0, tail: 104 });
  });

  it('an exactly page-aligned range is whole pages only', () => {
    expect(span(0, PAGE)).toEqual({ head: 0, first: 0, pages: 1, tail: 0 });
    expect(span(2 * PAGE, 3 * PAGE)).toEqual({ head: 0, first: 2, pages: 3, tail: 0 });
    expect(span(0, SIZE)).toEqual({ head: 0, first: 0, pages: 16, tail: 0 });
  });

  it('head, whole pages and tail together, up to the device end', () => {
    expect(span(PAGE - 1, 2 * PAGE + 2)).toEqual({ head: 1, first: 1, pages: 2, tail: 1 });
    expect(span(SIZE - PAGE - 7, PAGE + 7)).toEqual({ head: 7, first: 15, pages: 1, tail: 0 });
  });

  it('fills and returns the span it is given (no allocation per call)', () => {
    const out = newPageSpan();
    expect(pageSpan(5, 10_000, out)).toBe(out);
    expect(out).toEqual({ head: PAGE - 5, first: 1, pages: 1, tail: 10_000 - (PAGE - 5) - PAGE });
    pageSpan(0, 0, out);
    expect(out).toEqual({ head: 0, first: 0, pages: 0, tail: 0 });
  });

  it('its pieces cover exactly the range, in order, at page boundaries (property)', () => {
    fc.assert(
      fc.property(fc.nat(1 << 24), fc.nat(1 << 16), (offset, length) => {
        const s = span(offset, length);
        expect(s.head + s.pages * PAGE + s.tail).toBe(length);
        expect(s.head).toBeLessThan(PAGE);
        expect(s.tail).toBeLessThan(PAGE);
        // the head ends inside the page it starts in; whole pages start at a boundary
        if (s.head > 0) expect(Math.floor(offset / PAGE)).toBe(Math.floor((offset + s.head - 1) / PAGE));
        if (s.pages > 0 || s.tail > 0) expect(offset + s.head).toBe(s.first * PAGE);
        // against a byte-by-byte walk: the pages the range touches fully
        let whole = 0;
        for (let p = Math.floor(offset / PAGE); p * PAGE < offset + length; p++)
          if (p * PAGE >= offset && (p + 1) * PAGE <= offset + length) whole++;
        expect(s.pages).toBe(whole);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('checkRange', () => {
  const refuse = (offset: number, length: number): ZramRangeError => {
    try {
      checkRange(offset, length, SIZE, 'op');
    } catch (e) {
      expect(e).toBeInstanceOf(ZramRangeError);
      expect(e).toBeInstanceOf(RangeError);
      return e as ZramRangeError;
    }
    throw new Error(`checkRange accepted [${offset}, +${length})`);
  };

  it('accepts ranges inside the device, including zero length and ending at its size', () => {
    for (const [o, l] of [
      [0, 0],
      [0, SIZE],
      [SIZE - 1, 1],
      [SIZE - 10, 10],
      [SIZE, 0],
      [123, 0],
      [5, 4000],
    ] as const) {
      expect(() => checkRange(o, l, SIZE, 'op'), `[${o}, +${l})`).not.toThrow();
    }
  });

  it('refuses ranges past the end', () => {
    refuse(SIZE - 10, 11);
    refuse(SIZE, 1);
    refuse(SIZE + 1, 0);
    refuse(0, SIZE + 1);
    expect(() => checkRange(0, 1, 0, 'op')).toThrow(ZramRangeError); // an uninitialized device holds nothing
  });

  it('refuses negative, NaN, fractional, infinite, unsafe and non-number offsets and lengths', () => {
    const bad = [-1, -0.5, Number.NaN, 1.5, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 ** 53];
    for (const b of bad) {
      refuse(b, 1);
      refuse(0, b);
    }
    refuse('1' as unknown as number, 1);
    refuse(0, undefined as unknown as number);
  });

  it('names the operation, the range and the device size, and keeps them on the error', () => {
    const e = refuse(SIZE - 1, 2);
    expect(e.message).toBe(`op: range [${SIZE - 1}, +2) outside the device (${SIZE} bytes)`);
    expect(e.name).toBe('RangeError'); // survives a structured clone as a RangeError
    expect(e.code).toBe('ERANGE');
    expect([e.op, e.offset, e.length, e.size]).toEqual(['op', SIZE - 1, 2, SIZE]);
  });
});

describe('ZramDevice byte I/O uses the one range check', () => {
  it('refuses bad ranges with ZramRangeError naming the call, changing nothing', () => {
    const dev = ZramDevice.create({ disksize: SIZE });
    const data = new Uint8Array(SIZE).map((_, i) => (i * 7) & 0xff);
    dev.write(0, data);
    const mm = dev.mmStat();
    const io = dev.ioStat();
    for (const [f, op] of [
      [() => dev.write(SIZE - 1, new Uint8Array(2)), 'write'],
      [() => dev.write(Number.NaN, new Uint8Array(1)), 'write'],
      [() => dev.read(-1, new Uint8Array(1)), 'read'],
      [() => dev.read(0.5, new Uint8Array(1)), 'read'],
      [() => dev.discard(0, SIZE + 1), 'discard'],
      [() => dev.discard(PAGE, -PAGE), 'discard'],
    ] as const) {
      expect(f).toThrow(ZramRangeError);
      expect(f).toThrow(new RegExp(`^${op}: range`));
    }
    // zero-length I/O at the very end is inside, and does nothing
    dev.write(SIZE, new Uint8Array(0));
    dev.read(SIZE, new Uint8Array(0));
    dev.discard(SIZE, 0);
    const back = new Uint8Array(SIZE);
    dev.read(0, back);
    expect(Buffer.compare(back, data)).toBe(0);
    expect(dev.mmStat()).toBe(mm);
    expect(dev.ioStat()).toBe(io);
    dev.verify();
    dev.close();
  });

  it('reads and writes across head, whole pages and tail like a flat buffer', () => {
    const dev = ZramDevice.create({ disksize: SIZE });
    const flat = new Uint8Array(SIZE);
    const ranges: [number, number][] = [
      [100, 200],
      [4000, 200],
      [PAGE - 1, 2 * PAGE + 2],
      [3 * PAGE, 2 * PAGE],
      [SIZE - PAGE - 7, PAGE + 7],
      [5 * PAGE, 10],
    ];
    let seed = 1;
    for (const [o, l] of ranges) {
      const src = new Uint8Array(l).map(() => {
        seed = (seed * 1103515245 + 12345) >>> 0;
        return seed >>> 24;
      });
      dev.write(o, src);
      flat.set(src, o);
      const got = new Uint8Array(l);
      dev.read(o, got);
      expect(Buffer.compare(got, src), `[${o}, +${l})`).toBe(0);
    }
    const all = new Uint8Array(SIZE);
    dev.read(0, all);
    expect(Buffer.compare(all, flat)).toBe(0);
    dev.verify();
    dev.close();
  });
});
