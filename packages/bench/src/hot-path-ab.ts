// `pnpm bench:ab`: the allocator's and zram's hot paths, this checkout against
// another built checkout of the project (say, main in a second worktree), in one
// run: each arm runs in its own process, arms alternate, each round repeats, and
// the report gives per-case ns/op of CPU time (so time spent descheduled on a
// loaded machine is left out) for both, the ratio per round and its spread.
// Cases: malloc+free pairs (256 B, 3000 B straddling frames, 4 KiB huge; class
// mode, per-CPU caches off and on) on a pool with live objects, the cold pair
// (a zspage built and freed each time), migratePage of the frames of a pool
// filled with mixed sizes, and zram writePage+readPage of a text-like page with
// lz4 (every write over a written slot).
// Usage: see USAGE below (or --help).

import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

type Result = Record<string, number>;

interface CorePool {
  malloc(n: number): number;
  free(h: number): void;
  pagesUsed(): number;
  frameMap(): Uint8Array;
}
interface CoreApi {
  ZsPool: {
    create(o: { maxBytes: number; name?: string; percpuCache?: boolean }): CorePool;
  };
  migratePage(pool: CorePool, pfn: number): number;
}
interface ZramApi {
  ZramDevice: {
    create(o: { disksize: number }): {
      writePage(i: number, b: Uint8Array): void;
      readPage(i: number, b: Uint8Array): void;
    };
  };
}
interface PagesApi {
  fillPage(b: Uint8Array, kind: string, seed: number): Uint8Array;
}

/** This thread's CPU time in ms (user + system): time spent descheduled on a loaded machine does not count. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * ns of CPU time per operation of fn(n): the best of several batches (each of at
 * least ms/10 of CPU time) after a warm-up, over about `ms` of wall time.
 */
function time(fn: (n: number) => void, ms: number): number {
  let n = 1000;
  fn(n);
  for (;;) {
    const t0 = cpuMs();
    fn(n);
    if (cpuMs() - t0 > ms / 10) break;
    n *= 2;
  }
  let best = Number.POSITIVE_INFINITY;
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const t0 = cpuMs();
    fn(n);
    best = Math.min(best, ((cpuMs() - t0) * 1e6) / n);
  }
  return best;
}

/** migratePage of zspage frames (frame map kinds 1 and 2) of a 64 MiB pool three quarters full of mixed sizes. */
function timeMigration(core: CoreApi, ms: number): number {
  const pool = core.ZsPool.create({ maxBytes: 64 << 20, name: 'ab_migrate' });
  let x = 1;
  while (pool.pagesUsed() < 12288) {
    x = (Math.imul(x, 1103515245) + 12345) & 0x7fffffff;
    pool.malloc(32 + (x % 4064));
  }
  const list = new Int32Array(16384);
  let len = 0;
  let k = 0;
  return time((n) => {
    for (let i = 0; i < n; i++) {
      if (k === len) {
        // the frames to move now (every move frees the old frame)
        const map = pool.frameMap();
        len = 0;
        for (let pfn = 0; pfn < map.length; pfn++) if (map[pfn] === 1 || map[pfn] === 2) list[len++] = pfn;
        k = 0;
      }
      core.migratePage(pool, list[k++]!);
    }
  }, ms);
}

/** One arm: loads the built packages under `root` and times every case. */
async function child(root: string, ms: number): Promise<Result> {
  const core = (await import(pathToFileURL(resolve(root, 'packages/core/dist/index.js')).href)) as CoreApi;
  const zram = (await import(pathToFileURL(resolve(root, 'packages/zram/dist/index.js')).href)) as ZramApi;
  const pages = (await import(pathToFileURL(resolve(root, 'packages/zram/dist/pages.js')).href)) as PagesApi;
  const out: Result = {};
  for (const pcp of [false, true]) {
    for (const size of [256, 3000, 4096]) {
      const pool = core.ZsPool.create({ maxBytes: 64 << 20, name: 'ab', percpuCache: pcp });
      const live: number[] = [];
      for (let i = 0; i < 2000; i++) live.push(pool.malloc(size));
      out[`malloc+free ${size}B${pcp ? ' pcp' : ''}`] = time((n) => {
        for (let i = 0; i < n; i++) pool.free(pool.malloc(size));
      }, ms);
    }
  }
  {
    const pool = core.ZsPool.create({ maxBytes: 16 << 20, name: 'ab_cold' });
    out['malloc+free 1024B cold'] = time((n) => {
      for (let i = 0; i < n; i++) pool.free(pool.malloc(1024));
    }, ms);
  }
  out.migratePage = timeMigration(core, ms);
  const dev = zram.ZramDevice.create({ disksize: 64 << 20 });
  const slots = 1024;
  const src = Array.from({ length: 8 }, (_, k) => pages.fillPage(new Uint8Array(4096), 'text', k + 1));
  const dst = new Uint8Array(4096);
  for (let i = 0; i < slots; i++) dev.writePage(i, src[i & 7]!);
  let at = 0;
  out['zram writePage+readPage'] = time((n) => {
    for (let i = 0; i < n; i++) {
      const p = at++ & (slots - 1);
      dev.writePage(p, src[i & 7]!);
      dev.readPage(p, dst);
    }
  }, ms);
  return out;
}

const USAGE = `Usage: pnpm bench:ab -- --base DIR [--this DIR] [--rounds N] [--ms MS]
  --base DIR   another built checkout of this project (say, main in a second worktree)
  --this DIR   the checkout measured against it (default: this one); --this and --base
               the same directory measure the harness's own bias (an A/A run)
  --rounds N   rounds; each runs both arms in their own processes, alternating (default 3)
  --ms MS      time per case per arm and round (default 400)
`;

const { values } = parseArgs({
  strict: true,
  options: {
    help: { type: 'boolean', short: 'h', default: false },
    child: { type: 'string' },
    base: { type: 'string' },
    this: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    ms: { type: 'string', default: '400' },
  },
});
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const ms = Number(values.ms);
if (values.child !== undefined) {
  process.stdout.write(JSON.stringify(await child(values.child, ms)));
} else {
  if (values.base === undefined) {
    process.stderr.write(USAGE);
    process.exit(2);
  }
  const here = resolve(fileURLToPath(import.meta.url), '../../../..');
  const arms: [string, string][] = [
    ['this', values.this !== undefined ? resolve(values.this) : here],
    ['base', resolve(values.base)],
  ];
  const rounds = Number(values.rounds);
  const runs: Record<string, Result[]> = { this: [], base: [] };
  for (let r = 0; r < rounds; r++) {
    // alternate which arm goes first, so drift in the machine's load hits both
    for (const [name, root] of r % 2 === 0 ? arms : [...arms].reverse()) {
      const args = [fileURLToPath(import.meta.url), '--child', root, '--ms', String(ms)];
      runs[name]!.push(
        JSON.parse(
          execFileSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }),
        ) as Result,
      );
    }
  }
  console.log(
    '| case | base ns/op (min..max) | this ns/op (min..max) | this/base per round | median ratio | min/min |',
  );
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const k of Object.keys(runs.base![0]!)) {
    const b = runs.base!.map((x) => x[k]!);
    const t = runs.this!.map((x) => x[k]!);
    const ratios = t.map((v, i) => v / b[i]!);
    const sorted = [...ratios].sort((x, y) => x - y);
    const fmt = (a: number[]): string => `${Math.min(...a).toFixed(0)}..${Math.max(...a).toFixed(0)}`;
    console.log(
      `| ${k} | ${fmt(b)} | ${fmt(t)} | ${ratios.map((x) => x.toFixed(3)).join(' ')} | ${sorted[sorted.length >> 1]!.toFixed(3)} | ${(Math.min(...t) / Math.min(...b)).toFixed(3)} |`,
    );
  }
}
