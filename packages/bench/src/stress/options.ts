// Stress bench options: the workload (page-kind shares, read/write/discard mix,
// working set), the service settings of one run, the sweeps, the smoke and full
// presets, and command-line parsing for `pnpm bench:stress`. Owns no measuring.

import { availableParallelism } from 'node:os';
import type { PageKind } from '@zsmalloc/zram/testing';

export type LockMode = 'class' | 'pool';
export type SweepName = 'workers' | 'lock-mode' | 'chain' | 'compaction';
export const SWEEPS: readonly SweepName[] = ['workers', 'lock-mode', 'chain', 'compaction'];

/** Shares of each page kind in the written stream (any positive scale). */
export type KindMix = Record<PageKind, number>;
/** Shares of request kinds in the timed phase. */
export interface RwMix {
  read: number;
  write: number;
  discard: number;
}

/** What one run of the service looks like. */
export interface RunConfig {
  workers: number;
  lockMode: LockMode;
  chainSize: number;
  compaction: boolean;
}

export interface StressOptions {
  smoke: boolean;
  /** Timed seconds per run. */
  seconds: number;
  /** The base run's settings; sweeps vary one of them. */
  base: RunConfig;
  mix: KindMix;
  rw: RwMix;
  /** Pages the requests address (the device is this large). */
  workingSet: number;
  /** Pages per request. */
  requestPages: number;
  /** Requests in flight. */
  streams: number;
  sweeps: SweepName[];
  /** Seeds' experiment: pages filled, and swap in/out rounds. */
  seedsPages: number;
  seedsRounds: number;
  /** Pages written by the baselines (naive store, zbud, kernel zram). */
  baselinePages: number;
  kernel: boolean;
  jsonPath: string | null | undefined;
  htmlPath: string | null | undefined;
  /** Progress bar on stderr (default: when stderr is a terminal or the run is long). */
  progress: boolean;
  print: boolean;
}

export const DEFAULT_MIX: KindMix = { zero: 20, same: 5, text: 35, binary: 30, random: 10 };
export const DEFAULT_RW: RwMix = { read: 50, write: 40, discard: 10 };

export function defaultOptions(smoke: boolean): StressOptions {
  const cores = Math.max(1, availableParallelism());
  return {
    smoke,
    seconds: smoke ? 0.4 : 8,
    base: { workers: cores, lockMode: 'class', chainSize: 8, compaction: true },
    mix: { ...DEFAULT_MIX },
    rw: { ...DEFAULT_RW },
    workingSet: smoke ? 1024 : 16384,
    requestPages: smoke ? 8 : 16,
    streams: 8,
    sweeps: smoke ? [...SWEEPS] : [],
    seedsPages: smoke ? 2048 : 32768,
    seedsRounds: smoke ? 2 : 4,
    baselinePages: smoke ? 512 : 8192,
    kernel: true,
    jsonPath: undefined,
    htmlPath: undefined,
    progress: !smoke,
    print: true,
  };
}

export const USAGE = `usage: stress.js [--smoke] [--seconds 8] [--workers N] [--lock-mode class|pool] [--chain-size 4..16]
                 [--compaction on|off] [--mix zero=20,same=5,text=35,binary=30,random=10]
                 [--rw read=50,write=40,discard=10] [--working-set PAGES] [--request-pages 16] [--streams 8]
                 [--sweep workers|lock-mode|chain|compaction|all[,..]] [--seeds-pages N] [--baseline-pages N]
                 [--no-kernel] [--json PATH|--no-json] [--html PATH|--no-html] [--no-progress]`;

function parseShares<K extends string>(text: string, keys: readonly K[], flag: string): Record<K, number> {
  const out = Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
  for (const part of text.split(',')) {
    const [k, v] = part.split('=');
    if (k === undefined || v === undefined || !(keys as readonly string[]).includes(k.trim()))
      throw new Error(`${flag}: bad entry "${part}" (keys: ${keys.join(', ')})`);
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${flag}: ${k} must be a share >= 0`);
    out[k.trim() as K] = n;
  }
  if (keys.every((k) => out[k] === 0)) throw new Error(`${flag}: every share is 0`);
  return out;
}

export function parseStressArgs(argv: string[]): StressOptions {
  const smoke = argv.includes('--smoke');
  const o = defaultOptions(smoke);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const int = (lo: number, hi = Number.MAX_SAFE_INTEGER): number => {
      const n = Number(val());
      if (!Number.isInteger(n) || n < lo || n > hi) throw new Error(`${a} must be an integer in ${lo}..${hi}`);
      return n;
    };
    if (a === '--' || a === '--smoke') continue;
    else if (a === '--seconds') {
      o.seconds = Number(val());
      if (!(o.seconds > 0)) throw new Error('--seconds must be > 0');
    } else if (a === '--workers') o.base.workers = int(1, 64);
    else if (a === '--lock-mode') {
      const v = val();
      if (v !== 'class' && v !== 'pool') throw new Error('--lock-mode is class or pool');
      o.base.lockMode = v;
    } else if (a === '--chain-size') o.base.chainSize = int(4, 16);
    else if (a === '--compaction') {
      const v = val();
      if (v !== 'on' && v !== 'off') throw new Error('--compaction is on or off');
      o.base.compaction = v === 'on';
    } else if (a === '--mix') o.mix = parseShares(val(), ['zero', 'same', 'text', 'binary', 'random'] as const, a);
    else if (a === '--rw') o.rw = parseShares(val(), ['read', 'write', 'discard'] as const, a);
    else if (a === '--working-set') o.workingSet = int(64);
    else if (a === '--request-pages') o.requestPages = int(1, 256);
    else if (a === '--streams') o.streams = int(1, 1024);
    else if (a === '--sweep') {
      const names = val().split(',');
      const out = new Set<SweepName>();
      for (const n of names) {
        if (n === 'all') for (const s of SWEEPS) out.add(s);
        else if ((SWEEPS as readonly string[]).includes(n)) out.add(n as SweepName);
        else throw new Error(`--sweep: unknown sweep ${n} (workers, lock-mode, chain, compaction, all)`);
      }
      o.sweeps = SWEEPS.filter((s) => out.has(s));
    } else if (a === '--seeds-pages') o.seedsPages = int(64);
    else if (a === '--seeds-rounds') o.seedsRounds = int(1, 100);
    else if (a === '--baseline-pages') o.baselinePages = int(16);
    else if (a === '--no-kernel') o.kernel = false;
    else if (a === '--json') o.jsonPath = val();
    else if (a === '--no-json') o.jsonPath = null;
    else if (a === '--html') o.htmlPath = val();
    else if (a === '--no-html') o.htmlPath = null;
    else if (a === '--no-progress') o.progress = false;
    else if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  if (o.requestPages > o.workingSet) throw new Error('--request-pages must not exceed --working-set');
  return o;
}

export function configKey(c: RunConfig): string {
  return `${c.workers}w ${c.lockMode} chain${c.chainSize} compaction-${c.compaction ? 'on' : 'off'}`;
}
