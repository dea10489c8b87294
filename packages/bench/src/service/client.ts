// Service benchmark client: drives a ZramService the way a block client would
// (several fixed-size requests in flight, each stream issuing its next request
// as soon as the previous one completes) and measures one pass: wall time plus
// where the CPU went — the whole process (process.cpuUsage), the main thread
// alone and every other thread (/proc/self/task/*/stat on Linux: the busiest
// other threads are the compression workers) and the main thread's event-loop
// utilisation. Owns pass timing and CPU accounting only.

import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { PAGE_SIZE } from '@zsmalloc/core';
import type { ZramService } from '@zsmalloc/workers';
import { machineCpu } from './calibrate.js';

export interface ClientShape {
  /** Pages per request (a 256-page request is a 1 MiB bio). */
  requestPages: number;
  /** Requests in flight at once. */
  streams: number;
}

export interface PassSample {
  seconds: number;
  /** User + system CPU of the whole process (every thread), seconds. */
  processCpu: number;
  /** CPU of the main (service) thread alone, seconds; NaN where /proc is missing. */
  mainCpu: number;
  /** Event-loop utilisation of the main thread over the pass (0..1). */
  mainElu: number;
  /**
   * CPU seconds of every other thread of the process over the pass, busiest
   * first (the compression workers lead; V8 GC helpers, libuv and the idle
   * dedicated workers follow). Empty off Linux.
   */
  otherThreads: number[];
  /** Machine-wide busy CPU (every process) over the pass, seconds (/proc/stat; 0 off Linux). */
  machineBusy: number;
  /** Hypervisor steal over the pass, seconds. */
  machineSteal: number;
}

let clkTck = 0;
export function ticksPerSecond(): number {
  if (clkTck === 0) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

function statCpu(path: string): number {
  const stat = readFileSync(path, 'utf8');
  // fields after "pid (comm) ": state is field 3, utime 14, stime 15
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / ticksPerSecond();
}

/** CPU seconds (user + system) of this process's main thread, NaN off Linux. */
export function mainThreadCpu(): number {
  try {
    return statCpu(`/proc/self/task/${process.pid}/stat`);
  } catch {
    return Number.NaN;
  }
}

/** CPU seconds of every thread of this process by thread id (empty off Linux). */
export function threadCpus(): Map<number, number> {
  const out = new Map<number, number>();
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return out;
  }
  for (const t of tids) {
    try {
      out.set(Number(t), statCpu(`/proc/self/task/${t}/stat`));
    } catch {
      // the thread exited meanwhile
    }
  }
  return out;
}

/**
 * One pass over pages [0, n): writes `src` (n pages back to back) or reads the
 * pages back (the data is dropped; checkService verifies it outside timing).
 */
export async function runPass(
  svc: ZramService,
  op: 'write' | 'read',
  n: number,
  src: Uint8Array,
  shape: ClientShape,
): Promise<PassSample> {
  const requests = Math.ceil(n / shape.requestPages);
  let next = 0;
  let sink = 0;
  const stream = async (): Promise<void> => {
    for (;;) {
      const k = next++;
      if (k >= requests) return;
      const first = k * shape.requestPages;
      const count = Math.min(shape.requestPages, n - first);
      if (op === 'write') await svc.writePages(first, src.subarray(first * PAGE_SIZE, (first + count) * PAGE_SIZE));
      else sink ^= (await svc.readPages(first, count))[0]!;
    }
  };
  const th0 = threadCpus();
  const mc0 = machineCpu(ticksPerSecond());
  const e0 = performance.eventLoopUtilization();
  const c0 = process.cpuUsage();
  const m0 = mainThreadCpu();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: shape.streams }, stream));
  const seconds = (performance.now() - t0) / 1000;
  const m1 = mainThreadCpu();
  const c = process.cpuUsage(c0);
  const e = performance.eventLoopUtilization(e0);
  const th1 = threadCpus();
  const mc1 = machineCpu(ticksPerSecond());
  const otherThreads: number[] = [];
  for (const [tid, cpu] of th1) if (tid !== process.pid) otherThreads.push(cpu - (th0.get(tid) ?? 0));
  otherThreads.sort((a, b) => b - a);
  if (!Number.isFinite(sink)) throw new Error('unreachable');
  return {
    seconds,
    processCpu: (c.user + c.system) / 1e6,
    mainCpu: m1 - m0,
    mainElu: e.utilization,
    otherThreads,
    machineBusy: mc1.busy - mc0.busy,
    machineSteal: mc1.steal - mc0.steal,
  };
}

/** Reads every page of [0, n) back through the service and compares it with `src`. */
export async function checkService(svc: ZramService, n: number, src: Uint8Array, what: string): Promise<number> {
  const chunk = 1024;
  for (let first = 0; first < n; first += chunk) {
    const count = Math.min(chunk, n - first);
    const got = await svc.readPages(first, count);
    const want = src.subarray(first * PAGE_SIZE, (first + count) * PAGE_SIZE);
    if (Buffer.compare(got, want) !== 0) {
      let i = 0;
      while (got[i] === want[i]) i++;
      throw new Error(`service (${what}): page ${first + Math.floor(i / PAGE_SIZE)} differs after the run`);
    }
  }
  return n;
}
