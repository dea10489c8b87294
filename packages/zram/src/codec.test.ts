import { describe, expect, it } from 'vitest';
import { ALGORITHMS, algorithmId, algorithmListing, createCodec } from './codec.js';
import { PAGE_KINDS, fillPage } from './pages.js';

describe('codecs', () => {
  it('knows lz4, deflate, brotli and zstd, lz4 first', () => {
    expect([...ALGORITHMS]).toEqual(['lz4', 'deflate', 'brotli', 'zstd']);
  });

  for (const name of ALGORITHMS) {
    it(`${name} round-trips every kind of page exactly`, () => {
      const codec = createCodec(name);
      expect(codec.name).toBe(name);
      const src = new Uint8Array(4096);
      const dst = new Uint8Array(4096);
      for (const kind of PAGE_KINDS) {
        for (let seed = 1; seed <= 4; seed++) {
          fillPage(src, kind, seed);
          const c = codec.compress(src);
          // Copy out into a larger buffer: decompress must honour srcLen.
          const stored = new Uint8Array(8192);
          stored.set(c);
          stored.fill(0xee, c.length);
          dst.fill(0x55);
          expect(codec.decompress(stored, c.length, dst)).toBe(4096);
          expect(Buffer.compare(dst, src)).toBe(0);
          if (kind === 'zero' || kind === 'same') expect(c.length).toBeLessThan(64);
          if (kind === 'text' || kind === 'binary') expect(c.length).toBeLessThan(3000);
        }
      }
    });

    it(`${name} rejects corrupt input`, () => {
      const codec = createCodec(name);
      const src = fillPage(new Uint8Array(4096), 'text', 9);
      const c = Uint8Array.from(codec.compress(src));
      const dst = new Uint8Array(4096);
      // Truncated data cannot produce a whole page.
      expect(() => codec.decompress(c, Math.floor(c.length / 3), dst)).toThrow();
    });
  }

  it('lz4 stores the bare LZ4 block (no 4-byte length prefix)', () => {
    const codec = createCodec('lz4');
    const zero = new Uint8Array(4096);
    // An all-zero page is a handful of bytes of LZ4 block.
    expect(codec.compress(zero).length).toBeLessThan(32);
  });

  it('unknown algorithm names the known ones', () => {
    expect(() => algorithmId('lz4hc')).toThrow(/lz4hc.*lz4, deflate, brotli, zstd/);
    expect(() => createCodec('lzo-rle')).toThrow(/known algorithms: lz4, deflate, brotli, zstd/);
    try {
      algorithmId('lz4hc');
    } catch (e) {
      expect((e as { code?: string }).code).toBe('EINVAL');
    }
  });

  it('lists algorithms in the kernel layout', () => {
    expect(algorithmListing('lz4')).toBe('[lz4] deflate brotli zstd \n');
    expect(algorithmListing('brotli')).toBe('lz4 deflate [brotli] zstd \n');
  });
});
