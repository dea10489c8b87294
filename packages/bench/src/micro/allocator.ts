// Allocator micro-benchmarks: malloc+free pairs at several sizes (small, mid,
// 1 KiB, a size whose objects straddle frames, the huge class); the warm pair
// (20,000 live objects of mixed sizes, so zspages stay) with the per-CPU caches
// off (the kernel's path) and on, and the cold pair (a zspage built and torn down
// each time); and a write+read of a 1 KiB object on a ZsPool, each next to what a
// JavaScript user would write instead (a Map of Uint8Arrays under integer keys).

import { ZsPool } from '@zsmalloc/core';
import { measure, type Case, type MicroConfig } from '../measure.js';
import { linkBaselines, type BenchRow } from '../report.js';

export const OBJ_SIZE = 1024;
/** Live objects kept in the pool (and the Map), so the pair runs in steady state, not on an empty class. */
const LIVE = 100;

/**
 * Sizes of the malloc+free pairs: small, mid, 1 KiB (the original row and its
 * targets), 3000 B (objects straddle frame boundaries, near the huge
 * threshold) and 4 KiB (the huge class: one object per frame).
 */
export const MALLOC_SIZES: readonly number[] = [32, 256, 1024, 3000, 4096];

export function sizeLabel(size: number): string {
  return size % 1024 === 0 ? `${size / 1024}KiB` : `${size}B`;
}

const mapName = (size: number): string => `Map+Uint8Array alloc/delete ${sizeLabel(size)}`;
const zsName = (size: number): string => `zs malloc+free ${sizeLabel(size)}`;

/** malloc+free of an object of each size vs new Uint8Array in a Map, set then deleted, at the same size. */
export async function benchMallocFree(cfg: MicroConfig): Promise<BenchRow[]> {
  const pool = ZsPool.create({ maxBytes: 16 << 20, name: 'bench_malloc' });
  const live: number[] = [];
  const cases: Case[] = [];
  let key = LIVE;
  for (const size of MALLOC_SIZES) {
    for (let i = 0; i < LIVE; i++) live.push(pool.malloc(size));
    const map = new Map<number, Uint8Array>();
    for (let i = 0; i < LIVE; i++) map.set(i, new Uint8Array(size));
    cases.push(
      {
        name: mapName(size),
        group: 'allocator',
        batch: 20_000,
        run(n) {
          for (let i = 0; i < n; i++) {
            const k = key;
            map.set(k, new Uint8Array(size));
            map.delete(k);
            key = k + 1 < 1 << 30 ? k + 1 : LIVE;
          }
          return n;
        },
      },
      {
        name: zsName(size),
        group: 'allocator',
        batch: 20_000,
        baseline: mapName(size),
        run(n) {
          for (let i = 0; i < n; i++) pool.free(pool.malloc(size));
          return n;
        },
      },
    );
  }
  const rows = linkBaselines(await measure(cases, cfg, 'malloc+free'));
  pool.verify();
  for (const h of live) pool.free(h);
  pool.verify();
  pool.detach();
  const zs = rows.find((r) => r.name === zsName(OBJ_SIZE))!;
  zs.targets = [
    { goal: '<= 100 ns per malloc+free pair', measured: `${zs.nsPerOp.toFixed(1)} ns`, met: zs.nsPerOp <= 100 },
    {
      goal: 'faster than the Map+Uint8Array baseline',
      measured: `${(zs.ratio ?? NaN).toFixed(2)}x`,
      met: (zs.ratio ?? Infinity) < 1,
    },
  ];
  return rows;
}

/** Live objects that keep the warm pair's zspages in place. */
export const WARM_LIVE = 20_000;
/** The sizes the warm pair cycles through (several classes, some objects straddling frames). */
const WARM_SIZES = [100, 300, 700, 1024, 1500, 2000, 2500, 3000] as const;
const WARM_MAP = 'Map+Uint8Array alloc/delete, mixed sizes';
const WARM_OFF = 'zs malloc+free warm, caches off (kernel path)';
const WARM_ON = 'zs malloc+free warm, percpuCache';
const COLD_OFF = 'zs malloc+free cold (zspage built and freed)';

/**
 * A pool holding WARM_LIVE objects of seeded mixed sizes (32..3031 bytes), and
 * for each pair size an anchor object alone in a fresh zspage: every pair size
 * then has a non-full zspage that its pair's free never empties.
 */
function warmPool(percpuCache: boolean): ZsPool {
  const pool = ZsPool.create({ maxBytes: 128 << 20, name: 'bench_warm', percpuCache });
  let s = 1;
  for (let i = 0; i < WARM_LIVE; i++) {
    s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
    pool.malloc(32 + (s % 3000));
  }
  for (const size of WARM_SIZES) {
    for (let pages = pool.pagesUsed(); pool.pagesUsed() === pages; ) pool.malloc(size);
  }
  return pool;
}

/**
 * The warm malloc+free pair, caches off and on, and the cold pair, next to the
 * Map+Uint8Array baseline at the same sizes, in one run.
 */
export async function benchMallocFreeWarm(cfg: MicroConfig): Promise<BenchRow[]> {
  const off = warmPool(false);
  const on = warmPool(true);
  const cold = ZsPool.create({ maxBytes: 16 << 20, name: 'bench_cold' });
  const map = new Map<number, Uint8Array>();
  for (let i = 0; i < LIVE; i++) map.set(i, new Uint8Array(1024));
  let key = LIVE;
  const pairs = (pool: ZsPool) => (n: number) => {
    for (let i = 0; i < n; i++) pool.free(pool.malloc(WARM_SIZES[i & 7]!));
    return n;
  };
  const cases: Case[] = [
    {
      name: WARM_MAP,
      group: 'allocator',
      batch: 20_000,
      run(n) {
        for (let i = 0; i < n; i++) {
          const k = key;
          map.set(k, new Uint8Array(WARM_SIZES[i & 7]!));
          map.delete(k);
          key = k + 1 < 1 << 30 ? k + 1 : LIVE;
        }
        return n;
      },
    },
    { name: WARM_OFF, group: 'allocator', batch: 20_000, baseline: WARM_MAP, run: pairs(off) },
    { name: WARM_ON, group: 'allocator', batch: 20_000, baseline: WARM_MAP, run: pairs(on) },
    {
      name: COLD_OFF,
      group: 'allocator',
      batch: 20_000,
      baseline: WARM_MAP,
      run(n) {
        for (let i = 0; i < n; i++) cold.free(cold.malloc(1024));
        return n;
      },
    },
  ];
  const rows = linkBaselines(await measure(cases, cfg, 'warm malloc+free'));
  for (const p of [off, on, cold]) p.verify();
  on.drainCaches();
  on.verify();
  const rowOff = rows.find((r) => r.name === WARM_OFF)!;
  const rowOn = rows.find((r) => r.name === WARM_ON)!;
  rowOn.targets = [
    { goal: '<= 100 ns per pair (percpuCache)', measured: `${rowOn.nsPerOp.toFixed(1)} ns`, met: rowOn.nsPerOp <= 100 },
  ];
  rowOff.targets = [
    {
      goal: 'report; aim <= 150 ns per pair (caches off)',
      measured: `${rowOff.nsPerOp.toFixed(1)} ns`,
      met: rowOff.nsPerOp <= 150,
    },
  ];
  rowOn.extra = { live: WARM_LIVE, sizes: WARM_SIZES.join(','), vsCachesOff: rowOn.nsPerOp / rowOff.nsPerOp };
  rowOff.extra = { live: WARM_LIVE, sizes: WARM_SIZES.join(',') };
  for (const p of [off, on, cold]) p.detach();
  return rows;
}

/** write+read of a preallocated 1 KiB object vs Map.get + Uint8Array set/copy. */
export async function benchWriteRead(cfg: MicroConfig): Promise<BenchRow[]> {
  const pool = ZsPool.create({ maxBytes: 16 << 20, name: 'bench_access' });
  const h = pool.malloc(OBJ_SIZE); // first object of its zspage: lies inside one frame
  const src = new Uint8Array(OBJ_SIZE);
  for (let i = 0; i < OBJ_SIZE; i++) src[i] = (i * 7 + 3) & 0xff;
  const dst = new Uint8Array(OBJ_SIZE);
  // the same two copies into and out of shared memory, without the pool: what the memory model costs
  const shared = new Uint8Array(new SharedArrayBuffer(4 * OBJ_SIZE));
  const map = new Map<number, Uint8Array>();
  for (let i = 0; i < LIVE; i++) map.set(i, new Uint8Array(OBJ_SIZE));
  const key = 42;

  const cases: Case[] = [
    {
      name: 'Map.get+set/copy 1KiB',
      group: 'access',
      batch: 20_000,
      bytesPerOp: 2 * OBJ_SIZE,
      run(n) {
        for (let i = 0; i < n; i++) {
          const b = map.get(key)!;
          b.set(src);
          dst.set(b);
        }
        return n;
      },
    },
    {
      name: 'SAB set+copy 1KiB (no pool)',
      group: 'access',
      batch: 20_000,
      bytesPerOp: 2 * OBJ_SIZE,
      baseline: 'Map.get+set/copy 1KiB',
      run(n) {
        for (let i = 0; i < n; i++) {
          shared.set(src, OBJ_SIZE);
          dst.set(shared.subarray(OBJ_SIZE, 2 * OBJ_SIZE));
        }
        return n;
      },
    },
    {
      name: 'zs write+read 1KiB',
      group: 'access',
      batch: 20_000,
      bytesPerOp: 2 * OBJ_SIZE,
      baseline: 'Map.get+set/copy 1KiB',
      run(n) {
        for (let i = 0; i < n; i++) {
          pool.write(h, src);
          pool.read(h, dst);
        }
        return n;
      },
    },
  ];
  const rows = linkBaselines(await measure(cases, cfg, 'write+read'));
  const zs = rows[2]!;
  zs.extra = { vsSabCopy: zs.nsPerOp / rows[1]!.nsPerOp, overPoolFreeSabCopyNs: zs.nsPerOp - rows[1]!.nsPerOp };
  // the bytes really went through the pool
  dst.fill(0);
  pool.read(h, dst);
  for (let i = 0; i < OBJ_SIZE; i++)
    if (dst[i] !== src[i]) throw new Error(`write+read: byte ${i} differs after the run`);
  pool.free(h);
  pool.verify();
  pool.detach();
  return rows;
}
