// Synthetic 4 KiB page contents for tests and benchmarks: deterministic
// (seeded) zero, same-filled, text-like, binary-like and random pages, and a
// swap-like mix of them. Generators fill a caller's buffer (no allocation).

export type PageKind = 'zero' | 'same' | 'text' | 'binary' | 'random';
export const PAGE_KINDS: readonly PageKind[] = Object.freeze(['zero', 'same', 'text', 'binary', 'random']);

/** mulberry32: a small fast seeded PRNG; returns a function giving uint32 values. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

const WORDS = (
  'the page slot zram zsmalloc class object handle free used compact memory swap kernel lock ' +
  'thread worker write read block device size limit idle huge same fill data index offset ' +
  'return static const struct unsigned long int void if else for while break value count'
).split(' ');

/** Fills dst (any length) with the given kind of content, deterministically from seed. */
export function fillPage(dst: Uint8Array, kind: PageKind, seed: number): Uint8Array {
  const rnd = prng(seed);
  const n = dst.length;
  switch (kind) {
    case 'zero':
      dst.fill(0);
      break;
    case 'same': {
      const lo = rnd() | 1;
      const hi = rnd();
      for (let i = 0; i < n; i++) {
        const k = i & 7;
        dst[i] = (k < 4 ? lo >>> (8 * k) : hi >>> (8 * (k - 4))) & 0xff;
      }
      break;
    }
    case 'text': {
      let i = 0;
      while (i < n) {
        const w = WORDS[rnd() % WORDS.length]!;
        for (let k = 0; k < w.length && i < n; k++) dst[i++] = w.charCodeAt(k);
        if (i < n) dst[i++] = rnd() % 11 === 0 ? 10 : 32;
      }
      break;
    }
    case 'binary': {
      // Little-endian records of small integers and pointers, like a heap page.
      const base = rnd() & 0xfffff000;
      for (let i = 0; i < n; i += 16) {
        putLe32(dst, i, rnd() % 64);
        putLe32(dst, i + 4, 0);
        putLe32(dst, i + 8, base + (rnd() % 256) * 16);
        putLe32(dst, i + 12, rnd() % 3);
      }
      break;
    }
    case 'random':
      for (let i = 0; i < n; i += 4) {
        const v = rnd();
        for (let k = 0; k < 4 && i + k < n; k++) dst[i + k] = (v >>> (8 * k)) & 0xff;
      }
      break;
    default:
      throw new TypeError(`unknown page kind ${String(kind)}`);
  }
  return dst;
}

/** The kind of page number i in a swap-like stream: mostly text/binary, some zero, same-filled and random. */
export function swapLikeKind(i: number, seed = 1): PageKind {
  const r = prng((seed * 0x9e3779b1) ^ i)() % 100;
  if (r < 20) return 'zero';
  if (r < 25) return 'same';
  if (r < 60) return 'text';
  if (r < 90) return 'binary';
  return 'random';
}

function putLe32(dst: Uint8Array, at: number, v: number): void {
  for (let k = 0; k < 4 && at + k < dst.length; k++) dst[at + k] = (v >>> (8 * k)) & 0xff;
}
