// lock_stat: per lock class, per read/write state, statistics of acquisitions,
// contentions, bounces, wait and hold times, kept per CPU in shared memory (so no
// atomics are needed to count) and summed when read, as the kernel does. Also the
// registry of lock class names (with each class's rank in the lock order),
// shared by every thread of a pool. Contention points: per CPU, per class, per
// call site (lock-classes.ts), the contentions and wait time, as the kernel's
// lock_stat lists the code that waited under each class row.

import { MAX_CPUS } from './cpu-registry.js';
import { MAX_LOCK_SITES, lockRank, lockSiteName } from './lock-classes.js';

export const MAX_LOCK_CLASSES = 32;
/** Each class has a write (or exclusive) state and a read state. */
export const LOCK_STATES = 2;
export const STAT_FIELDS = 10;
export const F_CON_BOUNCES = 0;
export const F_CONTENTIONS = 1;
export const F_WAIT_MIN = 2;
export const F_WAIT_MAX = 3;
export const F_WAIT_TOTAL = 4;
export const F_ACQ_BOUNCES = 5;
export const F_ACQUISITIONS = 6;
export const F_HOLD_MIN = 7;
export const F_HOLD_MAX = 8;
export const F_HOLD_TOTAL = 9;

const NAME_BYTES = 48;
export const LOCK_KIND_MUTEX = 1;
export const LOCK_KIND_RW = 2;
export const LOCK_KIND_BIT = 3;

/** Float64 words of the per-CPU class statistics table. */
const CLASS_TABLE_WORDS = MAX_CPUS * MAX_LOCK_CLASSES * LOCK_STATES * STAT_FIELDS;
/** Per contention point: contentions, wait total (us). */
export const CP_FIELDS = 2;
/** Float64 words of the per-CPU statistics: the class table, then the contention points. */
export function lockStatWords(): number {
  return CLASS_TABLE_WORDS + MAX_CPUS * MAX_LOCK_CLASSES * MAX_LOCK_SITES * CP_FIELDS;
}
/** Base index of the contention-point table of (cpu, class); add site * CP_FIELDS. */
export function contentionPointBase(cpu: number, cls: number): number {
  return CLASS_TABLE_WORDS + (cpu * MAX_LOCK_CLASSES + cls) * MAX_LOCK_SITES * CP_FIELDS;
}
/** The registry word of a class holds its kind in the low byte and its rank above. */
const KIND_MASK = 0xff;
const RANK_SHIFT = 8;
/** Rank of class `cls` in the lock order (0: outside the order). */
export function lockClassRank(reg: Int32Array, cls: number): number {
  return Atomics.load(reg, 2 + cls) >> RANK_SHIFT;
}
/** Int32 words of the class registry: [guard, count, kind per class...]. */
export function lockClassRegistryWords(): number {
  return 2 + MAX_LOCK_CLASSES;
}
export function lockClassNameBytes(): number {
  return MAX_LOCK_CLASSES * NAME_BYTES;
}

/** Base index into the stats table for (cpu, class, state). */
export function statBase(cpu: number, cls: number, state: number): number {
  return ((cpu * MAX_LOCK_CLASSES + cls) * LOCK_STATES + state) * STAT_FIELDS;
}

/** Records one acquisition. `wait` < 0 means it was not contended. */
export function recordAcquire(stats: Float64Array, base: number, bounce: boolean, wait: number): void {
  stats[base + F_ACQUISITIONS]! += 1;
  if (bounce) stats[base + F_ACQ_BOUNCES]! += 1;
  if (wait >= 0) {
    stats[base + F_CONTENTIONS]! += 1;
    if (bounce) stats[base + F_CON_BOUNCES]! += 1;
    stats[base + F_WAIT_TOTAL]! += wait;
    if (wait > stats[base + F_WAIT_MAX]!) stats[base + F_WAIT_MAX] = wait;
    if (wait > 0 && (stats[base + F_WAIT_MIN] === 0 || wait < stats[base + F_WAIT_MIN]!))
      stats[base + F_WAIT_MIN] = wait;
  }
}

export function recordHold(stats: Float64Array, base: number, hold: number): void {
  stats[base + F_HOLD_TOTAL]! += hold;
  if (hold > stats[base + F_HOLD_MAX]!) stats[base + F_HOLD_MAX] = hold;
  if (hold > 0 && (stats[base + F_HOLD_MIN] === 0 || hold < stats[base + F_HOLD_MIN]!)) stats[base + F_HOLD_MIN] = hold;
}

/**
 * Registers (or finds) a lock class by name. Thread-safe through a guard word that
 * holds the registering thread's owner tag (`owner`, any nonzero number where no
 * other thread can run yet). A registrant killed inside (a worker terminated while
 * it attaches) is seen dead through `dead` and its guard taken over: the steps are
 * idempotent, so whatever it left half written is written again.
 */
export function registerLockClass(
  reg: Int32Array,
  names: Uint8Array,
  name: string,
  kind: number,
  owner = -1,
  dead?: (tag: number) => boolean,
): number {
  for (;;) {
    const c = Atomics.compareExchange(reg, 0, 0, owner);
    if (c === 0) break;
    if (dead?.(c) === true && Atomics.compareExchange(reg, 0, c, owner) === c) break;
    Atomics.wait(reg, 0, c, 1); // registration is rare and short
  }
  try {
    const count = Atomics.load(reg, 1);
    for (let i = 0; i < count; i++) if (lockClassName(names, i) === name) return i;
    if (count >= MAX_LOCK_CLASSES) throw new Error(`too many lock classes (max ${MAX_LOCK_CLASSES})`);
    const bytes = new TextEncoder().encode(name).subarray(0, NAME_BYTES - 1);
    names.fill(0, count * NAME_BYTES, (count + 1) * NAME_BYTES);
    names.set(bytes, count * NAME_BYTES);
    Atomics.store(reg, 2 + count, kind | (lockRank(name) << RANK_SHIFT));
    Atomics.store(reg, 1, count + 1);
    return count;
  } finally {
    Atomics.store(reg, 0, 0);
    Atomics.notify(reg, 0);
  }
}

export function lockClassName(names: Uint8Array, cls: number): string {
  const start = cls * NAME_BYTES;
  let end = start;
  while (end < start + NAME_BYTES && names[end] !== 0) end++;
  return new TextDecoder().decode(names.slice(start, end));
}

export interface LockClassStats {
  name: string;
  state: 'W' | 'R' | '';
  conBounces: number;
  contentions: number;
  waitMin: number;
  waitMax: number;
  waitTotal: number;
  acqBounces: number;
  acquisitions: number;
  holdMin: number;
  holdMax: number;
  holdTotal: number;
  /** The call sites that waited for this class, most wait first (write state row only: sites are per class). */
  points: ContentionPoint[];
}

export interface ContentionPoint {
  site: string;
  contentions: number;
  /** Microseconds. */
  waitTotal: number;
}

/** Sums the per-CPU statistics of every registered class (times in microseconds). */
export function collectLockStats(
  reg: Int32Array,
  names: Uint8Array,
  stats: Float64Array,
  withPoints = true,
): LockClassStats[] {
  const out: LockClassStats[] = [];
  const count = Atomics.load(reg, 1);
  for (let cls = 0; cls < count; cls++) {
    const kind = Atomics.load(reg, 2 + cls) & KIND_MASK;
    const states = kind === LOCK_KIND_RW ? 2 : 1;
    for (let state = 0; state < states; state++) {
      const s: LockClassStats = {
        name: lockClassName(names, cls),
        state: kind === LOCK_KIND_RW ? (state === 0 ? 'W' : 'R') : '',
        conBounces: 0,
        contentions: 0,
        waitMin: 0,
        waitMax: 0,
        waitTotal: 0,
        acqBounces: 0,
        acquisitions: 0,
        holdMin: 0,
        holdMax: 0,
        holdTotal: 0,
        points: state === 0 && withPoints ? contentionPoints(stats, cls) : [],
      };
      for (let cpu = 0; cpu < MAX_CPUS; cpu++) {
        const b = statBase(cpu, cls, state);
        if (stats[b + F_ACQUISITIONS] === 0 && stats[b + F_CONTENTIONS] === 0) continue;
        s.conBounces += stats[b + F_CON_BOUNCES]!;
        s.contentions += stats[b + F_CONTENTIONS]!;
        s.waitTotal += stats[b + F_WAIT_TOTAL]!;
        s.waitMax = Math.max(s.waitMax, stats[b + F_WAIT_MAX]!);
        const wmin = stats[b + F_WAIT_MIN]!;
        if (wmin > 0 && (s.waitMin === 0 || wmin < s.waitMin)) s.waitMin = wmin;
        s.acqBounces += stats[b + F_ACQ_BOUNCES]!;
        s.acquisitions += stats[b + F_ACQUISITIONS]!;
        s.holdTotal += stats[b + F_HOLD_TOTAL]!;
        s.holdMax = Math.max(s.holdMax, stats[b + F_HOLD_MAX]!);
        const hmin = stats[b + F_HOLD_MIN]!;
        if (hmin > 0 && (s.holdMin === 0 || hmin < s.holdMin)) s.holdMin = hmin;
      }
      out.push(s);
    }
  }
  return out;
}

/** The call sites that waited for class `cls`, summed over CPUs, most wait first. */
export function contentionPoints(stats: Float64Array, cls: number): ContentionPoint[] {
  const out: ContentionPoint[] = [];
  for (let site = 0; site < MAX_LOCK_SITES; site++) {
    let contentions = 0;
    let waitTotal = 0;
    for (let cpu = 0; cpu < MAX_CPUS; cpu++) {
      const b = contentionPointBase(cpu, cls) + site * CP_FIELDS;
      contentions += stats[b]!;
      waitTotal += stats[b + 1]!;
    }
    if (contentions > 0) out.push({ site: lockSiteName(site), contentions, waitTotal });
  }
  return out.sort((a, b) => b.waitTotal - a.waitTotal || b.contentions - a.contentions);
}

/** Contention points shown under each class row (the kernel shows 4). */
export const CONTENTION_POINTS_SHOWN = 4;

const COLUMNS = [
  'con-bounces',
  'contentions',
  'waittime-min',
  'waittime-max',
  'waittime-total',
  'waittime-avg',
  'acq-bounces',
  'acquisitions',
  'holdtime-min',
  'holdtime-max',
  'holdtime-total',
  'holdtime-avg',
];

/** Text in the column layout of /proc/lock_stat (version 0.4), most contended first. */
export function formatLockStat(list: LockClassStats[]): string {
  const width = 40 + COLUMNS.length * 15 + 1;
  const dashes = '-'.repeat(width);
  const dots = '.'.repeat(width);
  const lines: string[] = [
    'lock_stat version 0.4',
    dashes,
    `${'class name'.padStart(40)}${COLUMNS.map((c) => ` ${c.padStart(14)}`).join('')}`,
    dashes,
  ];
  const sorted = list
    .filter((s) => s.acquisitions > 0 || s.contentions > 0)
    .sort((a, b) => b.contentions - a.contentions || b.acquisitions - a.acquisitions);
  const n = (v: number) => String(Math.round(v)).padStart(14);
  const t = (v: number) => v.toFixed(2).padStart(14);
  for (const s of sorted) {
    const label = `${s.name}${s.state ? `-${s.state}` : ''}`;
    lines.push('');
    lines.push(
      `${label.padStart(40)}:${[
        n(s.conBounces),
        n(s.contentions),
        t(s.waitMin),
        t(s.waitMax),
        t(s.waitTotal),
        t(s.contentions ? s.waitTotal / s.contentions : 0),
        n(s.acqBounces),
        n(s.acquisitions),
        t(s.holdMin),
        t(s.holdMax),
        t(s.holdTotal),
        t(s.acquisitions ? s.holdTotal / s.acquisitions : 0),
      ]
        .map((v) => `${v} `)
        .join('')}`,
    );
    lines.push('');
    // contention points: the call sites that waited, as /proc/lock_stat lists them
    const w = s.points.slice(0, CONTENTION_POINTS_SHOWN);
    if (w.length > 0) lines.push('-'.repeat(label.length).padStart(40));
    for (const p of w) {
      lines.push(
        `${s.name.padStart(40)} ${n(p.contentions)}          [${p.site}] waittime-total ${p.waitTotal.toFixed(2)}`,
      );
    }
    if (w.length > 0) lines.push('');
    lines.push(dots);
  }
  return `${lines.join('\n')}\n`;
}
