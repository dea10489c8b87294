// Helpers the core's tests share (not part of the package's API): a reproducible
// byte pattern for an object, and a byte compare of what a handle holds.

import type { ZsPool } from './pool.js';

/** n bytes of a pattern that differs by seed and along the object (so a shifted copy shows). */
export function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let k = 0; k < n; k++) b[k] = (seed * 131 + k * 7 + (k >>> 8)) & 255;
  return b;
}

/** Does handle h hold exactly `data`? (A byte compare: expect's deep equality is slow on thousands of objects.) */
export function holds(pool: ZsPool, h: number, data: Uint8Array): boolean {
  const out = new Uint8Array(pool.objSize(h));
  pool.read(h, out);
  return Buffer.from(out.buffer).equals(data);
}
