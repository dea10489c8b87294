// Statistics for repeated, interleaved bench runs: the median of each arm's
// samples with a 95% percentile-bootstrap interval, the ratio of two arms'
// medians with its bootstrap interval, and the verdict a reader can trust — an
// effect is claimed only when the ratio's interval excludes 1. The bootstrap
// uses a fixed-seed generator, so a report is reproducible from its samples.

/** One arm's figure over its repeats: the JSON shape of every arm in a report. */
export interface ArmStat {
  samples: number[];
  median: number;
  ci95: [number, number];
}

/** One comparison of two arms: the JSON shape of every comparison in a report. */
export interface Comparison {
  ratio: number;
  ci95: [number, number];
  verdict: string;
}

export const BOOTSTRAP_RESAMPLES = 4000;

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('median of no samples');
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Linear-interpolated quantile (q in 0..1) of sorted values. */
export function quantileSorted(s: readonly number[], q: number): number {
  if (s.length === 0) throw new Error('quantile of no samples');
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = s[lo]!;
  const b = s[hi]!;
  // equal neighbours (both Infinity included: a zero denominator) need no interpolation
  return a === b ? a : a + (b - a) * (pos - lo);
}

/** xorshift32 in [0, 1): a fixed seed makes every interval reproducible. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

function resampleMedian(xs: readonly number[], next: () => number, buf: number[]): number {
  for (let i = 0; i < xs.length; i++) buf[i] = xs[Math.floor(next() * xs.length)]!;
  return median(buf);
}

/** Median and 95% percentile-bootstrap interval of the median. */
export function armStat(samples: readonly number[], seed = 1): ArmStat {
  const m = median(samples);
  if (samples.length === 1) return { samples: [...samples], median: m, ci95: [m, m] };
  const next = rng(seed);
  const buf = new Array<number>(samples.length);
  const boots: number[] = [];
  for (let b = 0; b < BOOTSTRAP_RESAMPLES; b++) boots.push(resampleMedian(samples, next, buf));
  boots.sort((a, b) => a - b);
  return { samples: [...samples], median: m, ci95: [quantileSorted(boots, 0.025), quantileSorted(boots, 0.975)] };
}

/**
 * Ratio of medians a/b with a 95% bootstrap interval (each arm resampled on its
 * own). `better` says which direction is an improvement for the verdict:
 * 'higher' (throughput) or 'lower' (latency, wait, memory).
 */
export function compareArms(a: readonly number[], b: readonly number[], names: VerdictNames, seed = 7): Comparison {
  const ratio = ratioOf(median(a), median(b));
  const next = rng(seed);
  const ba = new Array<number>(a.length);
  const bb = new Array<number>(b.length);
  const boots: number[] = [];
  for (let k = 0; k < BOOTSTRAP_RESAMPLES; k++) {
    const d = resampleMedian(b, next, bb);
    boots.push(ratioOf(resampleMedian(a, next, ba), d));
  }
  boots.sort((x, y) => x - y);
  const ci95: [number, number] = [quantileSorted(boots, 0.025), quantileSorted(boots, 0.975)];
  return { ratio, ci95, verdict: verdict(ratio, ci95, names) };
}

/** a / b, where two equal figures (zero against zero included) have the ratio 1, never NaN. */
function ratioOf(a: number, b: number): number {
  return a === b ? 1 : a / b;
}

const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : String(x));

/**
 * "A is 1.20x faster (CI 1.05-1.37)" when the interval excludes 1, else "not
 * distinguishable". For 'lower is better' figures the words say lower/higher.
 */
export interface VerdictNames {
  a: string;
  b: string;
  what: string;
  better: 'higher' | 'lower';
  /** The word for "more of a higher-is-better figure" (default "faster", for throughput). */
  word?: string;
}

export function verdict(ratio: number, ci: [number, number], n: VerdictNames): string {
  const [lo, hi] = ci;
  if (!(lo > 1) && !(hi < 1))
    return `${n.a} vs ${n.b} (${n.what}): not distinguishable (ratio ${f2(ratio)}, CI ${f2(lo)}-${f2(hi)})`;
  const up = lo > 1; // a's figure is higher than b's
  if (n.better === 'higher') {
    const word = n.word ?? 'faster';
    return up
      ? `${n.a} is ${f2(ratio)}x ${word} than ${n.b} in ${n.what} (CI ${f2(lo)}-${f2(hi)})`
      : `${n.b} is ${f2(1 / ratio)}x ${word} than ${n.a} in ${n.what} (CI ${f2(1 / hi)}-${f2(1 / lo)})`;
  }
  return up
    ? `${n.a} has ${f2(ratio)}x the ${n.what} of ${n.b}: worse (CI ${f2(lo)}-${f2(hi)})`
    : `${n.a} has ${f2(ratio)}x the ${n.what} of ${n.b}: better (CI ${f2(lo)}-${f2(hi)})`;
}
