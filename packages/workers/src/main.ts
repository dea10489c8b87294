// The main job: starts the ZramService with embedded defaults and runs a swap
// storm for a bounded time — writers, readers and discards over a swap-like page
// stream, writeback and swap-in by the swap I/O worker, background compaction —
// with a live terminal view (throughput, mm_stat, pages compaction could free,
// buddyinfo, the most contended locks) and a summary at the end.

import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs as parseArgv } from 'node:util';
import { fillPage, swapLikeKind } from '@zsmalloc/zram/testing';
import { ZramService } from './service.js';
import { parseSize } from './size.js';

interface Args {
  seconds: number;
  workers: number;
  lockMode: 'class' | 'pool';
  chainSize: number;
  disksize: number;
  memLimit: number;
  streams: number;
  lockdep: boolean;
  percpuCache: boolean;
}

const USAGE = `usage: main [--seconds 30] [--workers N] [--lock-mode class|pool] [--chain-size 4..16]
            [--size 256M] [--mem-limit 0] [--streams 8] [--lockdep] [--percpu-cache]
  --seconds     how long the storm runs (default 30; --duration is the same)
  --workers     compression worker threads (default: available cores)
  --lock-mode   class: per-class locks (kernel 4.x-6.1, 6.11+); pool: one pool lock (6.2-6.10)
  --chain-size  max pages per zspage, 4..16 (default 8)
  --size        device size (K/M/G suffixes, default 256M)
  --mem-limit   zram mem_limit (default 0: none)
  --streams     concurrent request streams (default 8)
  --lockdep     check every lock acquisition against the lock order (an inversion throws)
  --percpu-cache  per-CPU object caches in the pool (off by default: the kernel's path)
  --help        this text`;

const OPTIONS = {
  seconds: { type: 'string' },
  duration: { type: 'string' },
  workers: { type: 'string' },
  'lock-mode': { type: 'string' },
  'chain-size': { type: 'string' },
  size: { type: 'string' },
  'mem-limit': { type: 'string' },
  streams: { type: 'string' },
  lockdep: { type: 'boolean' },
  'percpu-cache': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function parseArgs(argv: string[]): Args {
  const v = (() => {
    try {
      return parseArgv({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }).values;
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${USAGE}`);
    }
  })();
  if (v.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const seconds = v.seconds ?? v.duration;
  const lockMode = v['lock-mode'] ?? 'class';
  if (lockMode !== 'class' && lockMode !== 'pool') throw new Error('--lock-mode is class or pool');
  const a: Args = {
    seconds: seconds === undefined ? 30 : Number(seconds),
    workers: v.workers === undefined ? Math.max(1, availableParallelism()) : Number(v.workers),
    lockMode,
    chainSize: v['chain-size'] === undefined ? 8 : Number(v['chain-size']),
    disksize: v.size === undefined ? 256 << 20 : parseSize(v.size),
    memLimit: v['mem-limit'] === undefined ? 0 : parseSize(v['mem-limit']),
    streams: v.streams === undefined ? 8 : Number(v.streams),
    lockdep: v.lockdep === true,
    percpuCache: v['percpu-cache'] === true,
  };
  if (!(a.seconds > 0)) throw new Error('--seconds must be > 0');
  if (!Number.isInteger(a.workers) || a.workers < 1) throw new Error('--workers must be a positive integer');
  if (!Number.isInteger(a.streams) || a.streams < 1) throw new Error('--streams must be a positive integer');
  if (a.disksize < 1 << 20) throw new Error('--size must be at least 1M');
  return a;
}

async function main(): Promise<void> {
  // "--" from `pnpm start -- ...` is not an option
  const args = parseArgs(process.argv.slice(2).filter((a, i) => !(i === 0 && a === '--')));
  // The backing file lives in a fresh private (0700) directory and is created with O_EXCL.
  const privateDir = mkdtempSync(join(tmpdir(), 'zram-storm-'));
  const backingFile = join(privateDir, 'backing.img');
  process.once('exit', () => rmSync(privateDir, { recursive: true, force: true }));
  const svc = await ZramService.start({
    disksize: args.disksize,
    compressionWorkers: args.workers,
    lockMode: args.lockMode,
    chainSize: args.chainSize,
    percpuCache: args.percpuCache,
    memLimit: args.memLimit,
    lockStat: true,
    lockdep: args.lockdep,
    backingFile,
    backingFileExclusive: true,
    compaction: { thresholdPages: 128, intervalMs: 100 },
  });
  const pages = svc.device.pages;
  console.log(
    `swap storm: ${args.workers} compression workers + swap I/O worker + compaction worker; ${args.streams} request streams; ` +
      `disksize ${args.disksize >> 20} MiB, lock mode ${args.lockMode}${args.percpuCache ? ' + per-CPU caches' : ''}, chain ${args.chainSize}, ${args.seconds} s`,
  );
  const counters = { written: 0, read: 0, discarded: 0, failedWrites: 0, writeback: 0, swapIn: 0 };
  const deadline = performance.now() + args.seconds * 1000;
  let seed = 12345;
  const rnd = () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed;
  };
  const stream = async (id: number) => {
    const per = Math.floor(pages / args.streams);
    const base = id * per;
    const buf = new Uint8Array(32 * 4096);
    let version = 0;
    while (performance.now() < deadline) {
      const first = base + (rnd() % Math.max(1, per - 32));
      const count = 1 + (rnd() % 32);
      const r = rnd() % 100;
      if (r < 50) {
        version++;
        for (let k = 0; k < count; k++) {
          const i = first + k;
          fillPage(buf.subarray(k * 4096, (k + 1) * 4096), swapLikeKind(i * 7 + version), i * 131 + version);
        }
        try {
          await svc.writePages(first, buf.subarray(0, count * 4096));
          counters.written += count;
        } catch {
          counters.failedWrites += count;
        }
      } else if (r < 95) {
        await svc.readPages(first, count);
        counters.read += count;
      } else {
        await svc.discard(first * 4096, count * 4096);
        counters.discarded += count;
      }
    }
  };
  const maintenance = async () => {
    while (performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 2000));
      svc.idle(5);
      counters.writeback += await svc.writeback('idle');
      const n = Math.min(512, pages);
      counters.swapIn += await svc.readback(rnd() % (pages - n + 1), n);
    }
  };
  const t0 = performance.now();
  let last = { w: 0, r: 0, t: t0 };
  const view = setInterval(() => {
    const now = performance.now();
    const dt = (now - last.t) / 1000;
    const mb = (n: number) => ((n * 4096) / dt / 1e6).toFixed(0).padStart(4);
    const top = svc.pool
      .lockStats()
      .filter((s) => s.contentions > 0)
      .sort((a, b) => b.waitTotal - a.waitTotal)
      .slice(0, 3)
      .map((s) => `${s.name}${s.state ? `-${s.state}` : ''} ${s.contentions}x/${(s.waitTotal / 1000).toFixed(1)}ms`)
      .join(', ');
    const mm = svc.device.statValues().mm;
    console.log(
      `[${((now - t0) / 1000).toFixed(0).padStart(3)}s] write ${mb(counters.written - last.w)} MB/s  read ${mb(counters.read - last.r)} MB/s | ` +
        `orig ${(mm.origDataSize / 1e6).toFixed(1)}MB compr ${(mm.comprDataSize / 1e6).toFixed(1)}MB used ${(mm.memUsedTotal / 1e6).toFixed(1)}MB ` +
        `compacted ${mm.pagesCompacted} | compactable ${svc.pool.compactable()} | buddyinfo ${svc.pool.buddyinfo().join(' ')} | ${top || 'no contention yet'}`,
    );
    last = { w: counters.written, r: counters.read, t: now };
  }, 1000);
  await Promise.all([maintenance(), ...Array.from({ length: args.streams }, (_, i) => stream(i))]);
  clearInterval(view);
  const secs = (performance.now() - t0) / 1000;
  const st = await svc.stats();
  await svc.close();
  svc.pool.verify();
  console.log('\nsummary');
  console.log(
    `  pages written ${counters.written} (${((counters.written * 4096) / secs / 1e6).toFixed(1)} MB/s), read ${counters.read} (${((counters.read * 4096) / secs / 1e6).toFixed(1)} MB/s), discarded ${counters.discarded}, failed writes ${counters.failedWrites}`,
  );
  console.log(
    `  written back ${counters.writeback}, swapped in ${counters.swapIn}; background compaction: ${JSON.stringify(st.compaction)}`,
  );
  console.log(`  mm_stat    ${st.mmStat.trimEnd()}`);
  console.log(`  io_stat    ${st.ioStat.trimEnd()}`);
  console.log(`  bd_stat    ${st.bdStat.trimEnd()}`);
  console.log(`  buddyinfo  ${st.buddyinfo.join(' ')}`);
  console.log(
    `  worker failures: ${st.failures.length === 0 ? 'none' : JSON.stringify(st.failures)}; pool.verify(): ok\n`,
  );
  console.log(st.lockStat.split('\n').slice(0, 20).join('\n'));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
