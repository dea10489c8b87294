// The pool's statistics: objects used and bytes stored per class (the class
// counters plus what the per-CPU caches have not folded in yet), the pages
// compaction could free (zs_can_compact), the pool, class and migration
// statistics, and the debugfs "classes" text.

import { NR_FULLNESS_GROUPS, ZS_INUSE_RATIO_10, ZS_SIZE_CLASSES } from './constants.js';
import { PerCpuCache } from './percpu-cache.js';
import {
  P_KC_FAIL,
  P_KC_RUNS,
  P_KC_SUCCESS,
  P_MIGRATED,
  P_MIG_EBUSY,
  P_MIG_ENOMEM,
  P_MIG_GONE,
  P_MIG_SETTLED,
  P_PAGES_ALLOCATED,
  P_PAGES_COMPACTED,
  P_ZS_COMPACT_RUNS,
} from './pool-layout.js';
import type { SizeClassTable } from './size-class.js';
import { CL_COUNT, CL_GHOSTS, CL_MOVED, CL_OBJ_ALLOCATED, CL_OBJ_USED, CL_WORDS } from './zspage.js';

export interface PoolStats {
  pagesUsed: number;
  pagesCompacted: number;
  objAllocated: number;
  objUsed: number;
  bytesStored: number;
}

export interface ClassStat {
  index: number;
  size: number;
  fullness: number[];
  objAllocated: number;
  objUsed: number;
  pagesUsed: number;
  pagesPerZspage: number;
  freeable: number;
}

export interface MigrationStats {
  framesMigrated: number;
  failedBusy: number; // zspage mapped or being read (EBUSY)
  failedNoMem: number; // no free frame to move into
  failedGone: number; // frame no longer part of a zspage when isolated or migrated
  settledAtTakeover: number; // dead threads' migrations settled by the thread taking over their lock
  ghostsFreed: number; // copies a killed compactor left (their handle names the other copy), freed by compaction
  compactRuns: number; // frame-compaction runs
  compactSuccess: number; // runs that produced a free block of the requested order
  compactFail: number;
  objectsMoved: number; // objects moved by zspage compaction (memcpy calls)
  zsCompactRuns: number;
}

/** What the statistics read: the counters and the per-CPU caches' unfolded deltas (null without caches). */
export interface StatSpace {
  readonly table: SizeClassTable;
  readonly ctl: Int32Array;
  readonly cls: Int32Array;
  readonly clsBytes: Float64Array;
  readonly pcpWords: Int32Array | null;
  readonly pcpBytes: Float64Array | null;
}

/** Objects in use in class c: the class counter plus every CPU cache's unfolded count. */
export function objUsedOf(s: StatSpace, c: number): number {
  const n = s.cls[c * CL_WORDS + CL_OBJ_USED]!;
  return s.pcpWords !== null ? n + PerCpuCache.usedDelta(s.pcpWords, c) : n;
}

/** Bytes stored in class c (class counter plus the CPU caches' unfolded bytes). */
export function bytesOf(s: StatSpace, c: number): number {
  const n = s.clsBytes[c]!;
  return s.pcpBytes !== null ? n + PerCpuCache.bytesDelta(s.pcpBytes, c) : n;
}

/** Pages compaction could free in class c (zs_can_compact). */
export function canCompact(s: StatSpace, c: number): number {
  const wasted = s.cls[c * CL_WORDS + CL_OBJ_ALLOCATED]! - objUsedOf(s, c);
  return Math.floor(wasted / s.table.objsPerZspage[c]!) * s.table.pagesPerZspage[c]!;
}

export function poolStats(s: StatSpace): PoolStats {
  let objAllocated = 0;
  let objUsed = 0;
  let bytes = 0;
  for (const c of s.table.distinct) {
    objAllocated += s.cls[c * CL_WORDS + CL_OBJ_ALLOCATED]!;
    objUsed += objUsedOf(s, c);
    bytes += bytesOf(s, c);
  }
  return {
    pagesUsed: Atomics.load(s.ctl, P_PAGES_ALLOCATED),
    pagesCompacted: Atomics.load(s.ctl, P_PAGES_COMPACTED),
    objAllocated,
    objUsed,
    bytesStored: bytes,
  };
}

export function migrationStats(s: StatSpace): MigrationStats {
  const c = s.ctl;
  let moved = 0;
  let ghosts = 0;
  for (const k of s.table.distinct) {
    moved += s.cls[k * CL_WORDS + CL_MOVED]!;
    ghosts += s.cls[k * CL_WORDS + CL_GHOSTS]!;
  }
  return {
    framesMigrated: Atomics.load(c, P_MIGRATED),
    failedBusy: Atomics.load(c, P_MIG_EBUSY),
    failedNoMem: Atomics.load(c, P_MIG_ENOMEM),
    failedGone: Atomics.load(c, P_MIG_GONE),
    settledAtTakeover: Atomics.load(c, P_MIG_SETTLED),
    compactRuns: Atomics.load(c, P_KC_RUNS),
    compactSuccess: Atomics.load(c, P_KC_SUCCESS),
    compactFail: Atomics.load(c, P_KC_FAIL),
    objectsMoved: moved,
    ghostsFreed: ghosts,
    zsCompactRuns: Atomics.load(c, P_ZS_COMPACT_RUNS),
  };
}

export function classStats(s: StatSpace): ClassStat[] {
  const out: ClassStat[] = [];
  const t = s.table;
  for (let c = 0; c < ZS_SIZE_CLASSES; c++) {
    if (t.merged[c] !== c) continue;
    const cb = c * CL_WORDS;
    const fullness: number[] = [];
    for (let g = 0; g < NR_FULLNESS_GROUPS; g++) fullness.push(s.cls[cb + CL_COUNT + g]!);
    out.push({
      index: c,
      size: t.size[c]!,
      fullness,
      objAllocated: s.cls[cb + CL_OBJ_ALLOCATED]!,
      objUsed: objUsedOf(s, c),
      pagesUsed: (s.cls[cb + CL_OBJ_ALLOCATED]! / t.objsPerZspage[c]!) * t.pagesPerZspage[c]!,
      pagesPerZspage: t.pagesPerZspage[c]!,
      freeable: canCompact(s, c),
    });
  }
  return out;
}

/** The debugfs "classes" file of a pool, from its class statistics. */
export function classesText(stats: readonly ClassStat[]): string {
  const head = [
    ' class',
    ' size',
    ...['10%', '20%', '30%', '40%', '50%', '60%', '70%', '80%', '90%', '99%', '100%'].map((s) => s.padStart(9)),
  ];
  const lines = [
    `${' class'.padStart(6)} ${'size'.padStart(5)} ${head.slice(2).join(' ')} ${'obj_allocated'.padStart(13)} ${'obj_used'.padStart(10)} ${'pages_used'.padStart(10)} ${'pages_per_zspage'.padStart(16)} ${'freeable'.padStart(8)}`,
  ];
  const totals = new Array<number>(NR_FULLNESS_GROUPS).fill(0);
  let tAlloc = 0;
  let tUsed = 0;
  let tPages = 0;
  let tFree = 0;
  for (const s of stats) {
    let line = ` ${String(s.index).padStart(5)} ${String(s.size).padStart(5)} `;
    for (let g = ZS_INUSE_RATIO_10; g < NR_FULLNESS_GROUPS; g++) {
      totals[g]! += s.fullness[g]!;
      line += `${String(s.fullness[g]).padStart(9)} `;
    }
    line += `${String(s.objAllocated).padStart(13)} ${String(s.objUsed).padStart(10)} ${String(s.pagesUsed).padStart(10)} ${String(s.pagesPerZspage).padStart(16)} ${String(s.freeable).padStart(8)}`;
    lines.push(line);
    tAlloc += s.objAllocated;
    tUsed += s.objUsed;
    tPages += s.pagesUsed;
    tFree += s.freeable;
  }
  let total = ' Total              ';
  for (let g = ZS_INUSE_RATIO_10; g < NR_FULLNESS_GROUPS; g++) total += `${String(totals[g]).padStart(9)} `;
  total += `${String(tAlloc).padStart(13)} ${String(tUsed).padStart(10)} ${String(tPages).padStart(10)} ${''.padStart(16)} ${String(tFree).padStart(8)}`;
  lines.push(total);
  return `${lines.join('\n')}\n`;
}
