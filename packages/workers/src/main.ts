// The main job (until the ZramService lands): a swap storm on one zram device in
// shared memory. Writer threads swap pages in and out of their ranges while a
// background thread compacts; the terminal shows throughput, mm_stat, pages
// compaction could free, buddyinfo and the most contended locks, then a summary.

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ZramDevice } from '@zsmalloc/zram';

interface Args { seconds: number; workers: number; lockMode: 'class' | 'pool'; chainSize: number; disksize: number; memLimit: number }

function parseSize(s: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(s.trim());
  if (!m) throw new Error(`bad size '${s}' (use e.g. 256M or 1G)`);
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Number(m[1]) * mult;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { seconds: 30, workers: Math.max(2, availableParallelism()), lockMode: 'class', chainSize: 8, disksize: 256 << 20, memLimit: 0 };
  for (let k = 0; k < argv.length; k++) {
    const flag = argv[k]!;
    const val = () => { const v = argv[++k]; if (v === undefined) throw new Error(`${flag} needs a value`); return v; };
    if (flag === '--seconds' || flag === '--duration') a.seconds = Number(val());
    else if (flag === '--workers') a.workers = Number(val());
    else if (flag === '--lock-mode') { const v = val(); if (v !== 'class' && v !== 'pool') throw new Error('--lock-mode is class or pool'); a.lockMode = v; }
    else if (flag === '--chain-size') a.chainSize = Number(val());
    else if (flag === '--size') a.disksize = parseSize(val());
    else if (flag === '--mem-limit') a.memLimit = parseSize(val());
    else if (flag === '--help' || flag === '-h') {
      console.log('usage: main [--seconds 30] [--workers N] [--lock-mode class|pool] [--chain-size 4..16] [--size 256M] [--mem-limit 0]');
      process.exit(0);
    } else throw new Error(`unknown flag ${flag} (see --help)`);
  }
  if (!(a.seconds > 0) || !Number.isInteger(a.workers) || a.workers < 1) throw new Error('--seconds must be > 0 and --workers a positive integer');
  return a;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const dev = ZramDevice.create({
    disksize: args.disksize, algorithm: 'lz4', memLimit: args.memLimit,
    pool: { maxBytes: Math.max(args.disksize, 64 << 20), chainSize: args.chainSize, lockMode: args.lockMode, lockStat: true },
  });
  const control = new SharedArrayBuffer((4 + (args.workers + 2) * 4) * 4);
  const ctl = new Int32Array(control);
  const pages = args.disksize / 4096;
  const per = Math.floor(pages / args.workers);
  const url = new URL('./swap-storm-worker.js', import.meta.url);
  const threads: Promise<void>[] = [];
  const spawn = (role: string, id: number, first: number, count: number) => threads.push(new Promise((resolve, reject) => {
    const w = new Worker(url, { workerData: { shared: dev.shared, role, first, count, seed: id, control } });
    w.once('error', reject);
    w.once('exit', () => resolve());
  }));
  for (let i = 0; i < args.workers; i++) spawn('writer', i, i * per, per);
  spawn('compactor', args.workers, 0, 0);
  console.log(`swap storm: ${args.workers} writer threads + 1 compaction thread, disksize ${args.disksize >> 20} MiB, lock mode ${args.lockMode}, chain ${args.chainSize}, ${args.seconds} s`);
  const t0 = performance.now();
  const sum = (off: number) => { let n = 0; for (let i = 0; i < args.workers; i++) n += Atomics.load(ctl, 4 + i * 4 + off); return n; };
  let last = { w: 0, r: 0, t: t0 };
  const tick = () => {
    const now = performance.now();
    const w = sum(0); const r = sum(1);
    const dt = (now - last.t) / 1000;
    const mb = (n: number) => ((n * 4096) / dt / 1e6).toFixed(0);
    const top = dev.pool.lockStats().filter((s) => s.contentions > 0).sort((a, b) => b.waitTotal - a.waitTotal).slice(0, 3)
      .map((s) => `${s.name}${s.state ? '-' + s.state : ''} ${s.contentions}x ${(s.waitTotal / 1000).toFixed(1)}ms`).join(', ');
    console.log(`[${((now - t0) / 1000).toFixed(0).padStart(3)}s] write ${mb(w - last.w)} MB/s read ${mb(r - last.r)} MB/s | mm_stat ${dev.mmStat().trim().replace(/\s+/g, ' ')} | compactable ${dev.pool.compactable()} | buddyinfo ${dev.pool.buddyinfo().join(' ')} | ${top || 'no contention yet'}`);
    last = { w, r, t: now };
  };
  const iv = setInterval(tick, 1000);
  await new Promise((r) => setTimeout(r, args.seconds * 1000));
  Atomics.store(ctl, 0, 1);
  Atomics.notify(ctl, 1);
  await Promise.all(threads);
  clearInterval(iv);
  const secs = (performance.now() - t0) / 1000;
  dev.pool.verify();
  console.log('\nsummary');
  console.log(`  page writes ${sum(0)} (${((sum(0) * 4096) / secs / 1e6).toFixed(1)} MB/s), reads ${sum(1)} (${((sum(1) * 4096) / secs / 1e6).toFixed(1)} MB/s), discards ${sum(2)}, failed writes ${sum(3)}`);
  console.log(`  pages compacted by the background thread: ${Atomics.load(ctl, 4 + args.workers * 4)}`);
  console.log(`  mm_stat  ${dev.mmStat().trimEnd()}`);
  console.log(`  io_stat  ${dev.ioStat().trimEnd()}`);
  console.log(`  buddyinfo ${dev.pool.buddyinfo().join(' ')}`);
  console.log('  pool.verify(): ok\n');
  console.log(dev.pool.lockStatText().split('\n').slice(0, 16).join('\n'));
  dev.close();
}

main().catch((e: unknown) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });
