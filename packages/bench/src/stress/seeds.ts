// The seeds' experiment (the zsmalloc compaction cover letter, 2015): high-ratio
// data on a zram device, heavy swap in and out (pages read back and freed, new
// pages written), background compaction off so fragmentation stays, then one
// compaction. Reports allocated object bytes (compr_data_size), total used
// (mem_used_total), used ratio before and after and pages compacted, next to the
// seed's figures, plus the frame map and buddyinfo before and after.

import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PAGE_SIZE } from '@zsmalloc/core';
import { ZramService } from '@zsmalloc/workers';
import type { StressOptions } from './options.js';
import { Progress } from './progress.js';
import { PageBank, xorshift } from './workload.js';

/** The cover letter's figures (8 GB zram swap, high-ratio data, heavy swap in/out). */
export const SEED = {
  allocatedObjectBytes: 60_212_066,
  totalUsedBefore: 140_103_680,
  totalUsedAfter: 76_185_600,
  usedRatioBefore: 0.4298,
  usedRatioAfter: 0.7903,
} as const;

export interface SeedsSide {
  allocatedObjectBytes: number;
  totalUsed: number;
  usedRatio: number;
  objAllocated: number;
  objUsed: number;
  buddyinfo: number[];
  /** Frame kinds (0 free, 1 zspage, 2 huge, 3 isolated, 4 allocPages), one byte per frame. */
  frameMap: number[];
}

export interface SeedsResult {
  pages: number;
  rounds: number;
  pagesPresent: number;
  swapIns: number;
  swapOuts: number;
  before: SeedsSide;
  after: SeedsSide;
  pagesCompacted: number;
  compactMs: number;
  seed: typeof SEED;
  seconds: number;
}

async function side(svc: ZramService): Promise<SeedsSide> {
  const mm = svc.device.statValues().mm;
  const ps = svc.pool.stats();
  return {
    allocatedObjectBytes: mm.comprDataSize,
    totalUsed: mm.memUsedTotal,
    usedRatio: mm.memUsedTotal > 0 ? mm.comprDataSize / mm.memUsedTotal : 0,
    objAllocated: ps.objAllocated,
    objUsed: ps.objUsed,
    buddyinfo: svc.pool.buddyinfo(),
    frameMap: Array.from(svc.pool.frameMap()),
  };
}

/** Runs `fn` over `items` with `width` in flight. */
async function pool<T>(items: readonly T[], width: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

export async function runSeeds(opts: StressOptions): Promise<SeedsResult> {
  const n = opts.seedsPages;
  const t0 = performance.now();
  // high-ratio data: text and heap-like pages only (nothing same-filled or random)
  const bank = new PageBank(Math.min(n, 4096), 1, { zero: 0, same: 0, text: 55, binary: 45, random: 0 }, 2015);
  const backingFile = join(tmpdir(), `zs-seeds-${process.pid}.img`);
  const svc = await ZramService.start({
    disksize: n * PAGE_SIZE,
    compressionWorkers: opts.base.workers,
    chainSize: 8,
    lockMode: 'class',
    compaction: false,
    backingFile,
  });
  const progress = new Progress(opts.progress, 'seeds: swap in/out, then compact');
  const steps = 2 * opts.seedsRounds;
  let step = 0;
  try {
    const rnd = xorshift(0x5eed);
    const present = new Uint8Array(n);
    let version = 0;
    const write = async (i: number): Promise<void> => {
      await svc.writePages(i, bank.page(i * 31 + version));
      present[i] = 1;
    };
    const swapIn = async (i: number): Promise<void> => {
      await svc.readPages(i, 1);
      await svc.discard(i * PAGE_SIZE, PAGE_SIZE);
      present[i] = 0;
    };
    // swap out every page
    const all = Array.from({ length: n }, (_, i) => i);
    await pool(all, 32, write);
    progress.update(++step / steps, 'filled', true);
    let swapIns = 0;
    let swapOuts = n;
    const pick = (want: (i: number) => boolean, share: number): number[] =>
      all.filter((i) => want(i) && rnd() / 2 ** 32 < share);
    for (let r = 0; r < opts.seedsRounds; r++) {
      // heavy swap-in: most resident pages come back (read, then freed as swap does)
      const ins = pick((i) => present[i] === 1, 0.5);
      await pool(ins, 32, swapIn);
      swapIns += ins.length;
      progress.update(++step / steps, `round ${r + 1}: ${ins.length} swapped in`, true);
      if (r === opts.seedsRounds - 1) break;
      // swap-out of other pages (new contents)
      version++;
      const outs = pick((i) => present[i] === 0, 0.5);
      await pool(outs, 32, write);
      swapOuts += outs.length;
      progress.update(++step / steps, `round ${r + 1}: ${outs.length} swapped out`, true);
    }
    const before = await side(svc);
    const c0 = performance.now();
    const freed = await svc.compact();
    const compactMs = performance.now() - c0;
    const after = await side(svc);
    progress.finish();
    let pagesPresent = 0;
    for (let i = 0; i < n; i++) pagesPresent += present[i]!;
    const compacted = svc.device.statValues().mm.pagesCompacted;
    return {
      pages: n,
      rounds: opts.seedsRounds,
      pagesPresent,
      swapIns,
      swapOuts,
      before,
      after,
      pagesCompacted: Math.max(freed, compacted),
      compactMs,
      seed: SEED,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    progress.finish();
    await svc.close();
    rmSync(backingFile, { force: true });
  }
}
