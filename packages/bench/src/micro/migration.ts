// Page-migration throughput: fills a pool with objects of mixed sizes (many
// zspage frames, some huge), then migrates every movable frame with
// migratePage, pass after pass, next to a plain copy of the same number of
// 4 KiB frames inside one SharedArrayBuffer. After the timed part it runs
// pool.verify() and checks every object's bytes, so the moves were real. The
// pair is measured in RUNS separate runs (the figure varies from run to run);
// the report gives the rate ratio of each, and its min, median and max.

import { MIGRATE_OK, PAGE_SIZE, ZsPool, migratePage } from '@zsmalloc/core';
import { prng } from '@zsmalloc/zram/testing';
import { measure, type Case, type MicroConfig } from '../measure.js';
import { linkBaselines, type BenchRow } from '../report.js';

const COPY = 'copyWithin 4KiB frame (SAB)';
const MIGRATE = 'migratePage (zspage frame)';
/** frameMap() kinds that migratePage moves. */
const FRAME_ZSPAGE = 1;
const FRAME_HUGE = 2;
/** Separate measurements of the migrate/copy pair. */
export const MIGRATION_RUNS = 5;

/** Deterministic [0, 1) numbers (zram's seeded generator) so every run fills the pool the same way. */
export function rng(seed: number): () => number {
  const next = prng(seed);
  return () => next() / 4294967296;
}

/** A size mix like zram's: mostly 200..3000 bytes, some small, ~5% huge (stored raw). */
function objectSize(r: () => number, huge: number): number {
  const x = r();
  if (x < 0.05) return huge + Math.floor(r() * (PAGE_SIZE - huge + 1));
  if (x < 0.2) return 16 + Math.floor(r() * 200);
  return 200 + Math.floor(r() * 2800);
}

function patternByte(h: number, i: number): number {
  return (h * 131 + i * 7) & 0xff;
}

export interface FilledPool {
  pool: ZsPool;
  handles: Int32Array;
  sizes: Int32Array;
}

/** Fills the pool with objects until `fillFraction` of its frames are in zspages; each object gets a pattern. */
export function fillPool(maxBytes: number, fillFraction: number, seed = 1): FilledPool {
  const pool = ZsPool.create({ maxBytes, name: 'bench_migrate' });
  const r = rng(seed);
  const want = Math.floor((maxBytes / PAGE_SIZE) * fillFraction);
  const hs: number[] = [];
  const ss: number[] = [];
  const buf = new Uint8Array(PAGE_SIZE);
  while (pool.pagesUsed() < want) {
    const size = objectSize(r, pool.hugeClassSize);
    const h = pool.malloc(size);
    const b = buf.subarray(0, size);
    for (let i = 0; i < size; i++) b[i] = patternByte(h, i);
    pool.write(h, b);
    hs.push(h);
    ss.push(size);
  }
  return { pool, handles: Int32Array.from(hs), sizes: Int32Array.from(ss) };
}

/** Frame numbers migratePage can move now (zspage and huge frames). */
export function movableFrames(pool: ZsPool, out?: Int32Array): Int32Array {
  const map = pool.frameMap();
  let n = 0;
  for (let pfn = 0; pfn < map.length; pfn++) if (map[pfn] === FRAME_ZSPAGE || map[pfn] === FRAME_HUGE) n++;
  const list = out !== undefined && out.length >= n ? out.subarray(0, n) : new Int32Array(n);
  let k = 0;
  for (let pfn = 0; pfn < map.length; pfn++) if (map[pfn] === FRAME_ZSPAGE || map[pfn] === FRAME_HUGE) list[k++] = pfn;
  return list;
}

/** Reads every object back and compares it with its pattern; returns objects checked. */
export function checkContents(f: FilledPool): number {
  const buf = new Uint8Array(PAGE_SIZE);
  for (let k = 0; k < f.handles.length; k++) {
    const h = f.handles[k]!;
    const n = f.pool.read(h, buf);
    if (n !== f.sizes[k]) throw new Error(`migration: object ${h} has size ${n}, wrote ${f.sizes[k]}`);
    for (let i = 0; i < n; i++) {
      if (buf[i] !== patternByte(h, i)) throw new Error(`migration: object ${h} byte ${i} is wrong after migration`);
    }
  }
  return f.handles.length;
}

export async function benchMigration(cfg: MicroConfig): Promise<BenchRow[]> {
  const filled = fillPool(cfg.migrationPoolBytes, 0.75);
  const { pool } = filled;
  const before = pool.migrationStats().framesMigrated;
  let frames = movableFrames(pool);
  const scratch = new Int32Array(pool.maxFrames);
  const nFrames = frames.length;
  let failed = 0;
  let passes = 0;

  // the copy baseline: the same frame numbers, each copied to a frame half the memory away
  const total = pool.maxFrames;
  const copyMem = new Uint8Array(new SharedArrayBuffer(total * PAGE_SIZE));
  for (let i = 0; i < copyMem.length; i += 64) copyMem[i] = i & 0xff;
  const copyFrames = frames.slice();
  const half = total >>> 1;

  const cases: Case[] = [
    {
      name: COPY,
      group: 'migration',
      batch: nFrames,
      bytesPerOp: PAGE_SIZE,
      run() {
        const list = copyFrames;
        for (let k = 0; k < list.length; k++) {
          const src = list[k]!;
          const dst = src >= half ? src - half : src + half;
          copyMem.copyWithin(dst * PAGE_SIZE, src * PAGE_SIZE, src * PAGE_SIZE + PAGE_SIZE);
        }
        return list.length;
      },
    },
    {
      name: MIGRATE,
      group: 'migration',
      batch: nFrames,
      bytesPerOp: PAGE_SIZE,
      baseline: COPY,
      prepare() {
        frames = movableFrames(pool, scratch);
      },
      run() {
        const list = frames;
        let ok = 0;
        for (let k = 0; k < list.length; k++) {
          if (migratePage(pool, list[k]!) === MIGRATE_OK) ok++;
        }
        failed += list.length - ok;
        passes++;
        return ok;
      },
    },
  ];
  // batch sizes are whole passes over the frames, not scaled; RUNS runs, the median one reported
  const runs: BenchRow[][] = [];
  for (let r = 0; r < (cfg.smoke ? 2 : MIGRATION_RUNS); r++)
    runs.push(linkBaselines(await measure(cases, { ...cfg, batchScale: 1 }, 'migration')));
  const ratios = runs.map((rs) => rs[0]!.nsPerOp / rs[1]!.nsPerOp);
  const order = ratios.map((_, i) => i).sort((a, b) => ratios[a]! - ratios[b]!);
  const rows = runs[order[order.length >>> 1]!]!;
  const sorted = order.map((i) => ratios[i]!);
  // outside the timed part: the pool is consistent and every byte is where it belongs
  pool.verify();
  const checked = checkContents(filled);
  const moved = pool.migrationStats().framesMigrated - before;
  const mig = rows[1]!;
  const copy = rows[0]!;
  const rateRatio = copy.nsPerOp / mig.nsPerOp;
  const min = sorted[0]!;
  const max = sorted[sorted.length - 1]!;
  mig.targets = [
    {
      goal: `>= 0.5x the plain copy rate in every one of ${runs.length} runs`,
      measured: `min ${min.toFixed(2)}x, median ${rateRatio.toFixed(2)}x, max ${max.toFixed(2)}x`,
      met: min >= 0.5,
    },
  ];
  mig.extra = {
    framesPerPass: nFrames,
    poolMiB: cfg.migrationPoolBytes / (1 << 20),
    objects: filled.handles.length,
    passes,
    framesMigrated: moved,
    failed,
    framesPerSec: mig.opsPerSec,
    rateVsCopy: rateRatio,
    rateVsCopyRuns: ratios.map((x) => Number(x.toFixed(3))).join(','),
    rateVsCopyMin: min,
    rateVsCopyMax: max,
    verified: true,
    objectsChecked: checked,
  };
  copy.extra = { framesPerSec: copy.opsPerSec };
  pool.detach();
  return rows;
}
