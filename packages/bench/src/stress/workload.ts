// Swap-like workload pieces for the stress bench: a bank of page contents drawn
// by the kind mix (generated once; requests write views of it, so issuing a
// request allocates nothing of ours), a seeded xorshift for request choices, and
// the latency recorder (a preallocated Float64Array ring; percentiles at the end).

import { PAGE_SIZE } from '@zsmalloc/core';
import { fillPage, PAGE_KINDS, prng, type PageKind } from '@zsmalloc/zram/testing';
import type { KindMix } from './options.js';

/** Page kind for a uniform draw r in [0, 1) under the mix. */
export function kindFor(mix: KindMix, r: number): PageKind {
  let total = 0;
  for (const k of PAGE_KINDS) total += mix[k];
  let x = r * total;
  for (const k of PAGE_KINDS) {
    x -= mix[k];
    if (x < 0) return k;
  }
  return 'text';
}

/**
 * `pages` pages of content by the mix, stored twice back to back so a request of
 * up to `pages` pages may start anywhere; views[k] is the request-sized view at page k.
 */
export class PageBank {
  readonly pages: number;
  readonly bytes: Uint8Array;
  readonly kinds: PageKind[] = [];
  private readonly views: Uint8Array[];

  constructor(pages: number, requestPages: number, mix: KindMix, seed: number) {
    this.pages = pages;
    this.bytes = new Uint8Array(2 * pages * PAGE_SIZE);
    const rnd = prng(seed);
    for (let i = 0; i < pages; i++) {
      const kind = kindFor(mix, rnd() / 2 ** 32);
      this.kinds.push(kind);
      fillPage(this.bytes.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE), kind, seed * 7919 + i);
    }
    this.bytes.copyWithin(pages * PAGE_SIZE, 0, pages * PAGE_SIZE);
    this.views = [];
    for (let k = 0; k < pages; k++) this.views.push(this.bytes.subarray(k * PAGE_SIZE, (k + requestPages) * PAGE_SIZE));
  }

  /** The request-sized view starting at bank page k (0 <= k < pages). */
  view(k: number): Uint8Array {
    return this.views[k]!;
  }

  /** Page i of the bank. */
  page(i: number): Uint8Array {
    const k = i % this.pages;
    return this.bytes.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE);
  }
}

/** xorshift32 state in a closure: integers only, no allocation per draw. */
export function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

export interface Percentiles {
  count: number;
  mean: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
}

/**
 * Request latencies in ms, into a preallocated ring (the newest `capacity` are
 * kept; count and sum cover all). record() only stores a number.
 */
export class LatencyRecorder {
  private readonly ring: Float64Array;
  private n = 0;
  private sum = 0;
  private maxv = 0;

  constructor(capacity = 1 << 18) {
    this.ring = new Float64Array(capacity);
  }

  record(ms: number): void {
    this.ring[this.n % this.ring.length] = ms;
    this.n++;
    this.sum += ms;
    if (ms > this.maxv) this.maxv = ms;
  }

  get count(): number {
    return this.n;
  }

  percentiles(): Percentiles {
    const k = Math.min(this.n, this.ring.length);
    const s = this.ring.slice(0, k).sort();
    const at = (q: number): number => (k === 0 ? 0 : s[Math.min(k - 1, Math.floor(q * k))]!);
    return {
      count: this.n,
      mean: this.n === 0 ? 0 : this.sum / this.n,
      p50: at(0.5),
      p99: at(0.99),
      p999: at(0.999),
      max: this.maxv,
    };
  }
}
