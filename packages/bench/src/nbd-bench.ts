// Entry point of `pnpm bench:nbd`: fio's nbd engine (libnbd) against `zram
// serve` and against `nbdkit memory`, side by side in one run — 4 KiB blocks,
// queue depth 16, random writes then random reads of 60%-compressible data,
// a fixed time each. Reports IOPS and their ratio, completion latency p50/p99,
// and CPU per request: the zram server's main thread (where the NBD protocol
// runs) and each server's whole process. --help lists the options.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connect, createServer } from 'node:net';
import { jsonReportPath, writeJson } from './report.js';
import { intFlag, rtcFlag } from './stress/options.js';

const USAGE = `usage: nbd-bench.js [options]
  --seconds N       seconds per fio job (default 10)
  --workers N       zram serve compression workers (default 2)
  --rtc MODE        zram serve --run-to-completion: adaptive (default), never, always
  --size SIZE       export size for both servers, e.g. 256M (default 256M)
  --iodepth N       fio queue depth (default 16)
  --repeats N       rounds; arms alternate order each round (default 1)
  --cpu-prof DIR    run zram serve under node --cpu-prof, profiles written to DIR
                    (read them with packages/bench/dist/cpu-profile.js)
  --json PATH       where to write the JSON (default bench-results/nbd.json)
  --no-json         write no JSON
  -h, --help        this text

Needs fio (with its nbd engine) and nbdkit on PATH; on Debian/Ubuntu:
  sudo apt-get install fio nbdkit
`;

const INSTALL = 'install them with: sudo apt-get install fio nbdkit (fio must have the nbd engine: libnbd)';

interface Args {
  seconds: number;
  workers: number;
  rtc: string;
  size: string;
  iodepth: number;
  repeats: number;
  cpuProf: string | null;
  json: string | null;
}

function options(argv: string[]): Args {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string', default: '10' },
      workers: { type: 'string', default: '2' },
      rtc: { type: 'string', default: 'adaptive' },
      size: { type: 'string', default: '256M' },
      iodepth: { type: 'string', default: '16' },
      repeats: { type: 'string', default: '1' },
      'cpu-prof': { type: 'string' },
      json: { type: 'string' },
      'no-json': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  if (!/^\d+[KMG]?$/i.test(values.size)) throw new Error(`--size must look like 256M, got '${values.size}'`);
  return {
    seconds: intFlag('seconds', values.seconds, 1),
    workers: intFlag('workers', values.workers, 1),
    rtc: rtcFlag(values.rtc),
    size: values.size.toUpperCase(),
    iodepth: intFlag('iodepth', values.iodepth, 1),
    repeats: intFlag('repeats', values.repeats, 1),
    cpuProf: values['cpu-prof'] ?? null,
    json: jsonReportPath(values.json, values['no-json'], 'nbd.json'),
  };
}

function have(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

const TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** utime + stime in seconds of a process, or of one of its threads. */
function cpuSeconds(pid: number, tid?: number): number {
  const path = tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`;
  const s = readFileSync(path, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICKS;
}

/** The zram server's ring counters, from its control socket. */
interface RingCounters {
  requests: number;
  completionWaits: number;
  workerWakes: number;
  workers: { wakeups: number }[];
}

function ringCounters(control: string): Promise<RingCounters | null> {
  return new Promise((resolve) => {
    const s = connect(control);
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      s.end();
      const reply = JSON.parse(buf.slice(0, nl)) as { ok: boolean; result?: { ring?: RingCounters } };
      resolve(reply.ok ? (reply.result?.ring ?? null) : null);
    });
    s.on('error', () => resolve(null));
    s.write(`${JSON.stringify({ cmd: 'stat', args: {} })}\n`);
  });
}

interface Server {
  name: string;
  proc: ChildProcess;
  uri: string;
  /** The zram server's control socket, or null. */
  control: string | null;
  /** Thread whose CPU is "main-thread CPU" (the zram server's event loop), or null. */
  mainTid: number | null;
  stop(): Promise<void>;
}

function waitExit(p: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (p.exitCode !== null || p.signalCode !== null) r();
    else p.once('exit', () => r());
  });
}

async function startZram(a: Args, dir: string): Promise<Server> {
  const cli = new URL('../../workers/dist/cli.js', import.meta.url).pathname;
  const prof = a.cpuProf === null ? [] : ['--cpu-prof', '--cpu-prof-dir', a.cpuProf];
  const proc = spawn(
    process.execPath,
    [
      ...prof,
      cli,
      'serve',
      '--size',
      a.size,
      '--workers',
      String(a.workers),
      '--run-to-completion',
      a.rtc,
      '--port',
      '0',
      '--control',
      join(dir, 'zram.sock'),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /NBD on [^:]+:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.once('exit', (code) => reject(new Error(`zram serve exited ${code}: ${err}`)));
  });
  return {
    name: `zram serve --workers ${a.workers} (${a.rtc})`,
    proc,
    uri: `nbd://127.0.0.1:${port}/zram0`,
    control: join(dir, 'zram.sock'),
    mainTid: proc.pid!,
    async stop() {
      proc.kill('SIGTERM');
      await waitExit(proc);
    },
  };
}

async function startNbdkit(a: Args): Promise<Server> {
  const port = await freePort();
  const proc = spawn(
    'nbdkit',
    ['-f', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(port), 'memory', `size=${a.size}`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  // nbdkit prints nothing when ready: poll the port
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = spawnSync('nbdinfo', ['--size', `nbd://127.0.0.1:${port}`], { stdio: 'ignore' });
      r(s.status === 0);
    });
    if (ok || !have('nbdinfo')) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    name: 'nbdkit memory',
    proc,
    uri: `nbd://127.0.0.1:${port}`,
    control: null,
    mainTid: null,
    async stop() {
      proc.kill('SIGTERM');
      await waitExit(proc);
    },
  };
}

interface JobResult {
  server: string;
  rw: 'randwrite' | 'randread';
  round: number;
  iops: number;
  ios: number;
  p50us: number;
  p99us: number;
  /** Microseconds of the server's main (event-loop) thread CPU per request, or null. */
  mainUsPerReq: number | null;
  /** Microseconds of the server process's CPU per request (every thread). */
  processUsPerReq: number;
  /**
   * zram only, per request: times the main thread waited for a completion,
   * worker wake-ups it made, and worker wake-ups in all.
   */
  completionWaitsPerReq?: number;
  mainWakesPerReq?: number;
  workerWakeupsPerReq?: number;
}

interface FioSide {
  iops: number;
  total_ios: number;
  clat_ns: { percentile?: Record<string, number> };
}

function fio(uri: string, rw: 'randwrite' | 'randread', a: Args, cwd: string): Promise<FioSide> {
  const args = [
    '--output-format=json',
    `--name=${rw}`,
    '--ioengine=nbd',
    `--uri=${uri}`,
    `--rw=${rw}`,
    '--bs=4k',
    `--iodepth=${a.iodepth}`,
    `--size=${a.size}`,
    '--time_based',
    `--runtime=${a.seconds}`,
    '--norandommap',
    '--randrepeat=0',
    '--buffer_compress_percentage=60',
    '--refill_buffers',
    '--percentile_list=50:99',
  ];
  return new Promise((resolve, reject) => {
    const p = spawn('fio', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    p.once('exit', (code) => {
      const at = out.indexOf('{');
      if (code !== 0 || at < 0) return reject(new Error(`fio exited ${code}: ${err}${out}`));
      const job = (JSON.parse(out.slice(at)) as { jobs: { read: FioSide; write: FioSide }[] }).jobs[0]!;
      resolve(rw === 'randwrite' ? job.write : job.read);
    });
  });
}

async function runJob(s: Server, rw: 'randwrite' | 'randread', round: number, a: Args, cwd: string) {
  const pid = s.proc.pid!;
  const r0 = s.control === null ? null : await ringCounters(s.control);
  const p0 = cpuSeconds(pid);
  const m0 = s.mainTid === null ? 0 : cpuSeconds(pid, s.mainTid);
  const side = await fio(s.uri, rw, a, cwd);
  const p1 = cpuSeconds(pid);
  const m1 = s.mainTid === null ? 0 : cpuSeconds(pid, s.mainTid);
  const ios = side.total_ios;
  const pct = side.clat_ns.percentile ?? {};
  const r: JobResult = {
    server: s.name,
    rw,
    round,
    iops: side.iops,
    ios,
    p50us: (pct['50.000000'] ?? Number.NaN) / 1000,
    p99us: (pct['99.000000'] ?? Number.NaN) / 1000,
    mainUsPerReq: s.mainTid === null ? null : ((m1 - m0) / ios) * 1e6,
    processUsPerReq: ((p1 - p0) / ios) * 1e6,
  };
  const r1 = s.control === null ? null : await ringCounters(s.control);
  if (r0 !== null && r1 !== null) {
    const wakeups = (c: RingCounters) => c.workers.reduce((n, w) => n + w.wakeups, 0);
    r.completionWaitsPerReq = (r1.completionWaits - r0.completionWaits) / ios;
    r.mainWakesPerReq = (r1.workerWakes - r0.workerWakes) / ios;
    r.workerWakeupsPerReq = (wakeups(r1) - wakeups(r0)) / ios;
  }
  return r;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  // `pnpm bench:nbd -- --flags` passes the separator through
  const a = options(process.argv.slice(2).filter((x, i) => !(i === 0 && x === '--')));
  const gone = ['fio', 'nbdkit'].filter((b) => !have(b));
  if (gone.length > 0) {
    process.stderr.write(`bench:nbd needs ${gone.join(' and ')} on PATH; ${INSTALL}\n`);
    process.exit(2);
  }
  const dir = mkdtempSync(join(tmpdir(), 'zram-nbd-bench-'));
  const servers: Server[] = [];
  try {
    servers.push(await startZram(a, dir));
    servers.push(await startNbdkit(a));
    const results: JobResult[] = [];
    for (let round = 0; round < a.repeats; round++) {
      const order = round % 2 === 0 ? servers : [...servers].reverse();
      // writes first everywhere, so the reads find written blocks on both servers
      for (const rw of ['randwrite', 'randread'] as const) {
        for (const s of order) {
          const r = await runJob(s, rw, round, a, dir);
          results.push(r);
          process.stdout.write(
            `${r.server.padEnd(24)} ${rw.padEnd(9)} ${r.iops.toFixed(0).padStart(7)} IOPS  p50 ${r.p50us.toFixed(0)} us  p99 ${r.p99us.toFixed(0)} us  ` +
              `CPU/request: process ${r.processUsPerReq.toFixed(1)} us${r.mainUsPerReq === null ? '' : `, main thread ${r.mainUsPerReq.toFixed(1)} us`}` +
              (r.completionWaitsPerReq === undefined
                ? ''
                : `; per request ${r.completionWaitsPerReq.toFixed(2)} completion waits, ${r.mainWakesPerReq!.toFixed(2)} worker wakes by the main thread (${r.workerWakeupsPerReq!.toFixed(2)} in all)`) +
              '\n',
          );
        }
      }
    }
    const zram = servers[0]!.name;
    const summary: Record<string, number> = {};
    process.stdout.write(
      `\n${a.seconds} s per job, 4 KiB, QD${a.iodepth}, 60% compressible, ${a.repeats} round(s); medians:\n`,
    );
    for (const rw of ['randwrite', 'randread'] as const) {
      const z = results.filter((r) => r.server === zram && r.rw === rw);
      const k = results.filter((r) => r.server !== zram && r.rw === rw);
      const ratios = z.map((r, i) => r.iops / k[i]!.iops);
      summary[`${rw}IopsRatio`] = median(ratios);
      summary[`${rw}MainUsPerReq`] = median(z.map((r) => r.mainUsPerReq!));
      process.stdout.write(
        `  ${rw}: zram/nbdkit IOPS ${median(ratios).toFixed(2)}x (rounds ${ratios.map((x) => x.toFixed(2)).join(', ')}; target >= 1.0x), ` +
          `zram main thread ${median(z.map((r) => r.mainUsPerReq!)).toFixed(1)} us/request (target <= 3 us)\n`,
      );
    }
    if (a.json !== null) {
      const path = writeJson(a.json, { kind: 'nbd', args: a, results, summary });
      process.stdout.write(`\nwrote ${path}\n`);
    }
  } finally {
    for (const s of servers) await s.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
