// Stress bench options: the workload (page-kind shares, read/write/discard mix,
// working set), the service settings of one run, the sweeps, the smoke and full
// presets, and command-line parsing for `pnpm bench:stress`. Owns no measuring.

import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
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
  /** Per-CPU object caches in the pool (off: the kernel's path, what the lock study measures). */
  percpuCache?: boolean;
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
  /** Runs per arm, interleaved (A B A B ...). */
  repeat: number;
  /** Check every lock acquisition against the lock order. */
  lockdep: boolean;
  /** Background compaction: pages compaction could free that trigger a run, and the check period. */
  compactionThreshold: number;
  compactionIntervalMs: number;
  /** Period of the maintenance loop: writeback, swap-in, frame compaction (kcompactd). */
  maintenanceMs: number;
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
    repeat: 1,
    lockdep: false,
    compactionThreshold: smoke ? 8 : 64,
    compactionIntervalMs: 100,
    maintenanceMs: 1000,
    jsonPath: undefined,
    htmlPath: undefined,
    progress: !smoke,
    print: true,
  };
}

export const USAGE = `usage: stress.js [options]
  --smoke                     tiny everything (checks the bench runs; figures mean nothing)
  --seconds 8                 timed seconds per run
  --repeat N                  runs per arm, interleaved A B A B ... (default 5 with --sweep, else 1)
  --workers N                 compression workers of the base run (default: cores)
  --lock-mode class|pool      --chain-size 4..16      --compaction on|off
  --compaction-threshold P    background compaction when P pages could be freed (default 64; smoke 8)
  --compaction-interval MS    background compaction check period (default 100)
  --maintenance-ms MS         writeback + swap-in + frame compaction period (default 1000)
  --mix zero=20,same=5,text=35,binary=30,random=10
  --rw read=50,write=40,discard=10
  --working-set PAGES  --request-pages 16  --streams 8
  --sweep workers|lock-mode|chain|compaction|all[,..]
  --seeds-pages N  --seeds-rounds N  --baseline-pages N  --no-kernel
  --lockdep                   check every lock acquisition against the lock order
  --percpu-cache              per-CPU object caches in the pool (off: the kernel's path)
  --json PATH|--no-json  --html PATH|--no-html  --no-progress  --help`;

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

/** Flags every study-style command shares: the kernel side, lockdep, tiny sizes, where the reports go, progress, help. */
export const REPORT_FLAGS = {
  'no-kernel': { type: 'boolean' },
  lockdep: { type: 'boolean' },
  smoke: { type: 'boolean' },
  json: { type: 'string' },
  'no-json': { type: 'boolean' },
  html: { type: 'string' },
  'no-html': { type: 'boolean' },
  'no-progress': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const STRESS_FLAGS = {
  ...REPORT_FLAGS,
  seconds: { type: 'string' },
  repeat: { type: 'string' },
  workers: { type: 'string' },
  'lock-mode': { type: 'string' },
  'chain-size': { type: 'string' },
  compaction: { type: 'string' },
  'compaction-threshold': { type: 'string' },
  'compaction-interval': { type: 'string' },
  'maintenance-ms': { type: 'string' },
  mix: { type: 'string' },
  rw: { type: 'string' },
  'working-set': { type: 'string' },
  'request-pages': { type: 'string' },
  streams: { type: 'string' },
  sweep: { type: 'string' },
  'seeds-pages': { type: 'string' },
  'seeds-rounds': { type: 'string' },
  'baseline-pages': { type: 'string' },
  'percpu-cache': { type: 'boolean' },
} as const;

/** An integer flag value in lo..hi, or a clear error naming the flag. */
export function intFlag(name: string, v: string, lo: number, hi = Number.MAX_SAFE_INTEGER): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < lo || n > hi) throw new Error(`--${name} must be an integer in ${lo}..${hi}`);
  return n;
}

/** A run-to-completion policy flag (see ZramService's runToCompletion option). */
export function rtcFlag(v: string): 'adaptive' | 'never' | 'always' {
  if (v !== 'adaptive' && v !== 'never' && v !== 'always')
    throw new Error(`--rtc must be adaptive, never or always, got '${v}'`);
  return v;
}

export function parseStressArgs(argv: string[]): StressOptions {
  const { values: v } = parseArgs({
    args: argv.filter((a) => a !== '--'),
    options: STRESS_FLAGS,
    strict: true,
    allowPositionals: false,
  });
  if (v.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const o = defaultOptions(v.smoke === true);
  if (v.seconds !== undefined) {
    o.seconds = Number(v.seconds);
    if (!(o.seconds > 0)) throw new Error('--seconds must be > 0');
  }
  if (v.workers !== undefined) o.base.workers = intFlag('workers', v.workers, 1, 64);
  if (v['lock-mode'] !== undefined) {
    const m = v['lock-mode'];
    if (m !== 'class' && m !== 'pool') throw new Error('--lock-mode is class or pool');
    o.base.lockMode = m;
  }
  if (v['chain-size'] !== undefined) o.base.chainSize = intFlag('chain-size', v['chain-size'], 4, 16);
  if (v.compaction !== undefined) {
    if (v.compaction !== 'on' && v.compaction !== 'off') throw new Error('--compaction is on or off');
    o.base.compaction = v.compaction === 'on';
  }
  if (v['compaction-threshold'] !== undefined)
    o.compactionThreshold = intFlag('compaction-threshold', v['compaction-threshold'], 1);
  if (v['compaction-interval'] !== undefined)
    o.compactionIntervalMs = intFlag('compaction-interval', v['compaction-interval'], 1, 60_000);
  if (v['maintenance-ms'] !== undefined) o.maintenanceMs = intFlag('maintenance-ms', v['maintenance-ms'], 10, 60_000);
  if (v.mix !== undefined) o.mix = parseShares(v.mix, ['zero', 'same', 'text', 'binary', 'random'] as const, '--mix');
  if (v.rw !== undefined) o.rw = parseShares(v.rw, ['read', 'write', 'discard'] as const, '--rw');
  if (v['working-set'] !== undefined) o.workingSet = intFlag('working-set', v['working-set'], 64);
  if (v['request-pages'] !== undefined) o.requestPages = intFlag('request-pages', v['request-pages'], 1, 256);
  if (v.streams !== undefined) o.streams = intFlag('streams', v.streams, 1, 1024);
  if (v.sweep !== undefined) o.sweeps = parseSweeps(v.sweep);
  if (v['seeds-pages'] !== undefined) o.seedsPages = intFlag('seeds-pages', v['seeds-pages'], 64);
  if (v['seeds-rounds'] !== undefined) o.seedsRounds = intFlag('seeds-rounds', v['seeds-rounds'], 1, 100);
  if (v['baseline-pages'] !== undefined) o.baselinePages = intFlag('baseline-pages', v['baseline-pages'], 16);
  if (v['no-kernel']) o.kernel = false;
  if (v['percpu-cache']) o.base.percpuCache = true;
  if (v.lockdep) o.lockdep = true;
  if (v['no-json']) o.jsonPath = null;
  else if (v.json !== undefined) o.jsonPath = v.json;
  if (v['no-html']) o.htmlPath = null;
  else if (v.html !== undefined) o.htmlPath = v.html;
  if (v['no-progress']) o.progress = false;
  o.repeat = v.repeat !== undefined ? intFlag('repeat', v.repeat, 1, 100) : defaultRepeat(o);
  if (o.requestPages > o.workingSet) throw new Error('--request-pages must not exceed --working-set');
  return o;
}

/** 5 repeats per arm when sweeps compare arms (1 for smoke runs and single runs). */
export function defaultRepeat(o: StressOptions): number {
  return o.sweeps.length > 0 && !o.smoke ? 5 : 1;
}

export function parseSweeps(text: string): SweepName[] {
  const out = new Set<SweepName>();
  for (const n of text.split(',')) {
    if (n === 'all') for (const s of SWEEPS) out.add(s);
    else if ((SWEEPS as readonly string[]).includes(n)) out.add(n as SweepName);
    else throw new Error(`--sweep: unknown sweep ${n} (workers, lock-mode, chain, compaction, all)`);
  }
  return SWEEPS.filter((s) => out.has(s));
}

export function configKey(c: RunConfig): string {
  return `${c.workers}w ${c.lockMode} chain${c.chainSize} compaction-${c.compaction ? 'on' : 'off'}`;
}
