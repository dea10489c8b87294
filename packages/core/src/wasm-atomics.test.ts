import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { WASM_PAGE, atomicOps, createAtomicMemory } from './wasm-atomics.js';

describe('atomic words in a shared WebAssembly memory', () => {
  it('compare-and-swaps, exchanges, adds, loads and stores Int32 words, returning old values', () => {
    const mem = createAtomicMemory(64);
    const w = new Int32Array(mem.buffer);
    const ops = atomicOps(mem);
    expect(mem.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(ops.cas(3, 0, 5)).toBe(0);
    expect(w[3]).toBe(5);
    expect(ops.cas(3, 1, 9)).toBe(5); // expected value wrong: unchanged
    expect(w[3]).toBe(5);
    expect(ops.exchange(3, -7)).toBe(5);
    expect(ops.add(3, 2)).toBe(-7);
    expect(ops.load(3)).toBe(-5);
    ops.store(4, 0x7fffffff);
    expect(w[4]).toBe(0x7fffffff);
    expect(ops.add(4, 1)).toBe(0x7fffffff); // wraps as Int32
    expect(w[4]).toBe(-0x80000000);
    expect(w[2]).toBe(0); // nothing else written
  });

  it('adds signed 32-bit amounts to 64-bit words, carrying into the high half, as BigInt64Array reads them', () => {
    const mem = createAtomicMemory(64);
    const c64 = new BigInt64Array(mem.buffer, 0, 8);
    const ops = atomicOps(mem);
    c64[2] = 0xffff_fff0n;
    ops.add64(2, 0x20); // the low half wraps: the carry lands in the high half
    expect(c64[2]).toBe(0x1_0000_0010n);
    ops.add64(2, -0x21); // and a borrow comes back out of it
    expect(c64[2]).toBe(0xffff_ffefn);
    ops.add64(3, -1);
    expect(c64[3]).toBe(-1n);
    ops.add64(3, 0x7fff_ffff);
    expect(c64[3]).toBe(0x7fff_fffen);
    expect(c64[1]).toBe(0n); // neighbours untouched
    expect(c64[4]).toBe(0n);
  });

  it('grows to its maximum and no further; a grown memory is seen through a fresh buffer', () => {
    const mem = createAtomicMemory(WASM_PAGE, 3 * WASM_PAGE);
    const ops = atomicOps(mem);
    expect(mem.grow(2)).toBe(1);
    expect(mem.buffer.byteLength).toBe(3 * WASM_PAGE);
    ops.store(3 * (WASM_PAGE / 4) - 1, 42);
    expect(new Int32Array(mem.buffer)[3 * (WASM_PAGE / 4) - 1]).toBe(42);
    expect(() => mem.grow(1)).toThrow(RangeError);
    expect(() => ops.load(3 * (WASM_PAGE / 4))).toThrow(); // past the end: a trap, not a wrong word
  });

  it('keeps a compare-and-swap counter exact between threads, and interoperates with Atomics', async () => {
    const mem = createAtomicMemory(64);
    const per = 200_000;
    const src = `
      const { workerData, parentPort } = require('node:worker_threads');
      const { mem, per, url } = workerData;
      import(url).then(({ atomicOps }) => {
        const ops = atomicOps(mem);
        const w = new Int32Array(mem.buffer);
        for (let k = 0; k < per; k++) {
          for (;;) { const v = ops.load(0); if (ops.cas(0, v, v + 1) === v) break; }
          Atomics.add(w, 1, 1);
        }
        parentPort.postMessage('done');
      });`;
    const url = new URL('./wasm-atomics.js', import.meta.url).href.replace('/src/', '/dist/');
    const run = () =>
      new Promise<void>((resolve, reject) => {
        const wk = new Worker(src, { eval: true, workerData: { mem, per, url } });
        wk.on('message', () => resolve());
        wk.on('error', reject);
      });
    await Promise.all([run(), run()]);
    const w = new Int32Array(mem.buffer);
    expect(w[0]).toBe(2 * per);
    expect(w[1]).toBe(2 * per);
  });
});
