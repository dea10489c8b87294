// The soak (issue 14, R7): verified page operations through a ZramService with
// every thread busy (writes, reads, discards, idle + writeback, readback,
// compaction, frame compaction), optionally killing a random worker thread
// (compression, swap I/O or compaction) at an interval. Every read is compared with
// what was last acknowledged for that page; a page whose write or discard failed
// with the worker that died may read back as before or as the new content (like a
// failed write on a disk), never as anything else.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LockMode } from '@zsmalloc/core';
import { WorkerFailedError, ZramService } from '@zsmalloc/workers';

export interface SoakOptions {
  seconds: number;
  /** Stop once this many page operations are done (0: run for `seconds` only). */
  ops?: number;
  lockMode: LockMode;
  /** The pool's per-CPU object caches (default off). */
  percpuCache?: boolean;
  /** Seconds between worker kills; 0 = none. */
  killEvery: number;
  pages?: number;
  compressionWorkers?: number;
  seed?: number;
  /** Progress lines go here (default: none). */
  log?: (line: string) => void;
}

export interface SoakResult {
  pageOps: number;
  verified: number;
  mismatches: number;
  deaths: number;
  verify: string;
  line: string;
}

const LANES = 8;
const RUN = 8;

/** Content of version v of page p (v = 0: zeros). Some versions are same-filled, some compress well, some not. */
function fillVersion(p: number, v: number, out: Uint8Array): void {
  if (v === 0) {
    out.fill(0);
    return;
  }
  const kind = v % 4;
  if (kind === 0) {
    out.fill((p + v) & 0xff);
    return;
  }
  let s = (Math.imul(p, 2654435761) ^ Math.imul(v, 40503)) >>> 0;
  const mask = kind === 3 ? 0xff : 0x0f;
  for (let i = 0; i < out.length; i += 4) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s & mask;
    out[i + 1] = (s >>> 8) & mask;
    out[i + 2] = 0;
    out[i + 3] = (i >>> 7) & 0xff;
  }
}

export async function runSoak(opts: SoakOptions): Promise<SoakResult> {
  const pages = opts.pages ?? 4096;
  const log = opts.log ?? (() => undefined);
  const dir = mkdtempSync(join(tmpdir(), 'zram-soak-'));
  const svc = await ZramService.start({
    disksize: pages * 4096,
    compressionWorkers: opts.compressionWorkers ?? 2,
    lockMode: opts.lockMode,
    percpuCache: opts.percpuCache ?? false,
    backingFile: join(dir, 'backing'),
    compaction: { thresholdPages: 8, intervalMs: 50 },
    batchPages: 16,
  });
  let seed = (opts.seed ?? 1) >>> 0 || 1;
  const rnd = () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed;
  };
  const acked = new Int32Array(pages); // last acknowledged version per page
  const maybe = new Int32Array(pages).fill(-1); // a version that may have landed (failed write), or -1
  const next = new Int32Array(pages);
  let pageOps = 0;
  let verified = 0;
  let mismatches = 0;
  // kills asked for; a kill that finds its worker not running (still restarting, or a
  // compression thread still starting) kills nothing, so the line reports the deaths
  // the service counted, once it can be read
  let kills = 0;
  let deaths = 0;
  let fatal: Error | null = null;
  const deadline = Date.now() + opts.seconds * 1000;
  const opsWanted = opts.ops ?? 0;
  const running = () => Date.now() < deadline && (opsWanted === 0 || pageOps < opsWanted) && !fatal;
  const want = new Uint8Array(4096);
  const isWorkerFailure = (e: unknown) => e instanceof WorkerFailedError;

  const check = (p: number, got: Uint8Array) => {
    fillVersion(p, acked[p]!, want);
    if (Buffer.compare(got, want) === 0) {
      maybe[p] = -1;
    } else {
      const m = maybe[p]!;
      if (m >= 0) fillVersion(p, m, want);
      if (m >= 0 && Buffer.compare(got, want) === 0) {
        acked[p] = m;
        maybe[p] = -1;
      } else {
        mismatches++;
        if (mismatches <= 10) log(`mismatch: page ${p}, acknowledged version ${acked[p]}, maybe ${m}`);
      }
    }
    verified++;
  };

  const doing: string[] = [];
  const lane = async (k: number) => {
    const per = Math.floor(pages / LANES);
    const base = k * per;
    const buf = new Uint8Array(RUN * 4096);
    while (running()) {
      const n = 1 + (rnd() % RUN);
      const first = base + (rnd() % (per - n));
      const r = rnd() % 100;
      doing[k] = `${r < 45 ? 'write' : r < 90 ? 'read' : 'discard'} of pages ${first}+${n}`;
      try {
        if (r < 45) {
          const vs: number[] = [];
          for (let i = 0; i < n; i++) {
            const v = ++next[first + i]!;
            vs.push(v);
            fillVersion(first + i, v, want);
            buf.set(want, i * 4096);
          }
          try {
            await svc.writePages(first, buf.subarray(0, n * 4096));
            for (let i = 0; i < n; i++) acked[first + i] = vs[i]!;
          } catch (e) {
            if (!isWorkerFailure(e)) throw e;
            for (let i = 0; i < n; i++) maybe[first + i] = vs[i]!;
          }
        } else if (r < 90) {
          let out: Uint8Array;
          try {
            out = await svc.readPages(first, n);
          } catch (e) {
            if (!isWorkerFailure(e)) throw e;
            continue;
          }
          for (let i = 0; i < n; i++) check(first + i, out.subarray(i * 4096, (i + 1) * 4096));
        } else {
          await svc.discard(first * 4096, n * 4096);
          for (let i = 0; i < n; i++) {
            acked[first + i] = 0;
            maybe[first + i] = -1;
          }
        }
        pageOps += n;
      } catch (e) {
        fatal = e instanceof Error ? e : new Error(String(e));
      }
    }
    doing[k] = 'done';
  };

  let bgDoing = '';
  const background = async () => {
    while (running()) {
      const r = rnd() % 4;
      bgDoing = ['idle + writeback', 'readback', 'compact', 'frame compaction'][r]!;
      try {
        if (r === 0) {
          svc.idle('all');
          await svc.writeback('idle');
        } else if (r === 1) await svc.readback(rnd() % (pages - 64), 64);
        else if (r === 2) await svc.compact();
        else await svc.frameCompact(2);
      } catch (e) {
        if (!isWorkerFailure(e)) fatal = e instanceof Error ? e : new Error(String(e));
      }
      await new Promise((res) => setTimeout(res, 20));
    }
    bgDoing = 'done';
  };

  const kinds = ['compression', 'swap-io', 'compaction'] as const;
  const killer =
    opts.killEvery > 0
      ? setInterval(() => {
          const which = kinds[rnd() % kinds.length]!;
          kills++;
          void svc.killWorker(which, rnd());
        }, opts.killEvery * 1000)
      : null;
  const progress = setInterval(() => {
    // past the deadline, name what is still outstanding (a request that never settles)
    if (Date.now() > deadline) log(`soak: still waiting for: lanes ${doing.join(' | ')}; background ${bgDoing}`);
    log(`soak: ${pageOps} page ops, ${verified} pages verified, ${mismatches} mismatches, ${kills} kills asked`);
  }, 10_000);
  await Promise.all([...Array.from({ length: LANES }, (_, k) => lane(k)), background()]);
  if (killer) clearInterval(killer);
  clearInterval(progress);

  let verify = 'ok';
  try {
    if (fatal) throw fatal;
    // let restarts and the checks after deaths settle (every death gets one), then read every page back
    await new Promise((res) => setTimeout(res, 500));
    let st = await svc.stats();
    for (let n = 0; n < 300 && st.checksAfterDeath.deathsPending > 0; n++) {
      await new Promise((res) => setTimeout(res, 100));
      st = await svc.stats();
    }
    const t = st.threads;
    deaths = t.compression.deaths + t.swapIo.deaths + t.compaction.deaths;
    log(`kills asked: ${kills}; worker deaths: ${deaths}`);
    if (svc.device.fenced) throw new Error(`the device was fenced: ${svc.fenceReason || 'reason not reported'}`);
    for (let p = 0; p < pages; p += 64) {
      const out = await svc.readPages(p, Math.min(64, pages - p));
      for (let i = 0; i * 4096 < out.length; i++) check(p + i, out.subarray(i * 4096, (i + 1) * 4096));
    }
    svc.device.recountStats(); // counters a killed thread left half-updated
    svc.device.verify();
    log(`threads: ${JSON.stringify(st.threads)}`);
    const ck = st.checksAfterDeath;
    log(
      `checks after deaths: ${ck.done} (${ck.retried} run again after the swap I/O worker died in one), ` +
        `covering ${ck.deathsChecked} deaths (${ck.deathsPending} waiting); of which repaired something: ${svc.repairs}`,
    );
    for (const r of svc.repairLog) log(`  repaired: ${r}`);
  } catch (e) {
    verify = e instanceof Error ? e.message : String(e);
  }
  await svc.close();
  rmSync(dir, { recursive: true, force: true });
  const line = `soak: ${pageOps} page ops, ${verified} pages verified, ${mismatches} mismatches, ${deaths} worker deaths, verify ${verify}`;
  return { pageOps, verified, mismatches, deaths, verify, line };
}
