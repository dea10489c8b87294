// CPU parallelism check for the service benchmark: the same fixed CPU-only
// work on 1 thread, then on k threads at once; effective cores = k * t1 / tk.
// On an idle k-core machine it is close to k; other processes (or a host that
// time-shares the vCPUs) bring it down, and with it the best speedup that 2
// compression workers can show. Also reads the machine's CPU counters
// (/proc/stat) so a pass can say how busy the rest of the machine was.

import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

const SPIN = `
const { parentPort, workerData } = require('node:worker_threads');
let x = 0;
const t0 = performance.now();
for (let i = 0; i < workerData; i++) x = (Math.imul(x, 31) + i) | 0;
parentPort.postMessage([performance.now() - t0, x]);
`;

function spin(iterations: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const w = new Worker(SPIN, { eval: true, workerData: iterations });
    w.once('message', (m: [number, number]) => {
      void w.terminate();
      resolve(m[0]);
    });
    w.once('error', reject);
  });
}

/** Wall ms of `threads` concurrent spins (each thread started first, then timed by itself; the max counts). */
async function spinTogether(threads: number, iterations: number): Promise<number> {
  const ts = await Promise.all(Array.from({ length: threads }, () => spin(iterations)));
  return Math.max(...ts);
}

export interface Parallelism {
  threads: number;
  oneMs: number;
  togetherMs: number;
  /** threads * oneMs / togetherMs: how many cores the process really got. */
  effectiveCores: number;
}

/** Best of `reps` tries of 1 thread vs `threads` threads at once. */
export async function measureParallelism(threads: number, iterations: number, reps = 2): Promise<Parallelism> {
  let one = Number.POSITIVE_INFINITY;
  let together = Number.POSITIVE_INFINITY;
  for (let r = 0; r < reps; r++) {
    one = Math.min(one, await spinTogether(1, iterations));
    together = Math.min(together, await spinTogether(threads, iterations));
  }
  return { threads, oneMs: one, togetherMs: together, effectiveCores: Math.min(threads, (threads * one) / together) };
}

export interface MachineCpu {
  /** Seconds of CPU (all cores) spent busy: user, nice, system, irq, softirq. */
  busy: number;
  /** Seconds stolen by the hypervisor. */
  steal: number;
}

/** The machine-wide CPU counters (all processes); zeros off Linux. */
export function machineCpu(ticksPerSecond: number): MachineCpu {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    return { busy: (f[0]! + f[1]! + f[2]! + f[5]! + f[6]!) / ticksPerSecond, steal: (f[7] ?? 0) / ticksPerSecond };
  } catch {
    return { busy: 0, steal: 0 };
  }
}
