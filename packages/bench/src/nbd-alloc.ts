// Entry point of `pnpm bench:nbd-alloc`: what the NBD server's 4 KiB path
// allocates per request on its main thread. One NbdConnection over the
// threaded ZramService (ServiceBackend) is driven through a stand-in socket
// (so Node's TCP stack is left out and only the server's own code counts):
// bursts of `--qd` pipelined 4 KiB WRITEs, then READs, each burst sent as one
// socket read once the previous burst is answered.
//
// The measure: V8 allocates by bumping a pointer in the young generation, so
// with a young generation too large to fill during the window (the bench
// re-runs itself with --min/--max-semi-space-size), the growth of the heap's
// used size across a window with no garbage collection in it is exactly the
// bytes allocated on this thread. A window that saw a collection is retried.
// The driver's own cost (one setImmediate and one emit per burst) is measured
// alone and reported beside, not subtracted. The same windows also give the
// main thread's CPU time per request (the kernel's per-thread run time,
// /proc/thread-self/schedstat): the server's own work without the socket's
// system calls.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { PerformanceObserver } from 'node:perf_hooks';
import { Session } from 'node:inspector/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import {
  type ConnectionConfig,
  NbdConnection,
  type PageCallback,
  type PageCallbackBackend,
  ServiceBackend,
  WriteTracker,
  ZramService,
  minConnectionBytes,
  nbd,
} from '@zsmalloc/workers';
import type { Socket } from 'node:net';
import { jsonReportPath, writeJson } from './report.js';
import { intFlag, rtcFlag } from './stress/options.js';

const USAGE = `usage: nbd-alloc.js [options]
  --requests N      requests measured per direction (default 50000)
  --qd N            requests per burst (queue depth; default 16)
  --workers N       compression workers (default 2)
  --rtc MODE        run-to-completion policy: adaptive (default), never, always
  --backend B       service (default: ServiceBackend over ZramService) or null (a
                    backend that completes every request at once, storing nothing:
                    what the NBD protocol code alone costs)
  --structured      negotiate structured replies
  --sites           also list where the measured windows allocated (V8's sampling
                    heap profiler, every 64 bytes; nothing is collected in a window)
  --json PATH       where to write the JSON (default bench-results/nbd-alloc.json)
  --no-json         write no JSON
  -h, --help        this text
`;

const PAGE = 4096;
const SEMI_SPACE_MB = 256;
const CHILD = 'ZRAM_NBD_ALLOC_CHILD';

interface Args {
  requests: number;
  qd: number;
  workers: number;
  rtc: 'adaptive' | 'never' | 'always';
  structured: boolean;
  backend: 'service' | 'null';
  sites: boolean;
  json: string | null;
}

function options(argv: string[]): Args {
  const { values } = parseArgs({
    args: argv,
    options: {
      requests: { type: 'string', default: '50000' },
      qd: { type: 'string', default: '16' },
      workers: { type: 'string', default: '2' },
      rtc: { type: 'string', default: 'adaptive' },
      structured: { type: 'boolean', default: false },
      backend: { type: 'string', default: 'service' },
      sites: { type: 'boolean', default: false },
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
  if (values.backend !== 'service' && values.backend !== 'null')
    throw new Error(`--backend must be service or null, got '${values.backend}'`);
  return {
    backend: values.backend,
    requests: intFlag('requests', values.requests, 1000),
    qd: intFlag('qd', values.qd, 1),
    workers: intFlag('workers', values.workers, 1),
    rtc: rtcFlag(values.rtc),
    structured: values.structured,
    sites: values.sites,
    json: jsonReportPath(values.json, values['no-json'], 'nbd-alloc.json'),
  };
}

/** The socket surface NbdConnection uses, writing nowhere: counts reply bytes and calls `onReplies`. */
class NullSocket extends EventEmitter {
  readableLength = 0;
  writableLength = 0;
  writableNeedDrain = false;
  destroyed = false;
  writableEnded = false;
  replyBytes = 0;
  expect = -1;
  onReplies: () => void = () => {};
  setNoDelay(): this {
    return this;
  }
  pause(): this {
    return this;
  }
  resume(): this {
    return this;
  }
  cork(): void {}
  uncork(): void {}
  write(b: Uint8Array): boolean {
    this.replyBytes += b.length;
    if (this.replyBytes === this.expect) {
      this.expect = -1;
      this.onReplies();
    }
    return true;
  }
  end(): this {
    this.writableEnded = true;
    return this;
  }
  destroy(): this {
    if (!this.destroyed) {
      this.destroyed = true;
      this.emit('close');
    }
    return this;
  }
}

/**
 * A page backend that stores nothing and completes every request when the
 * burst is unplugged (or at once when not plugged), then ends the completion
 * batch: the NBD connection's own cost, with no page work and no thread.
 */
class NullPageBackend implements PageCallbackBackend {
  readonly size = 64 << 20;
  readonly callbackReadMax = 64 * PAGE;
  private readonly page = new Uint8Array(PAGE);
  private readonly fns: PageCallback[] = [];
  private readonly ctxs: unknown[] = [];
  private readonly datas: (Uint8Array | null)[] = [];
  private n = 0;
  private plugged = 0;
  private hook: ((more: boolean) => void) | null = null;

  private queue(done: PageCallback, ctx: unknown, data: Uint8Array | null): void {
    this.fns[this.n] = done;
    this.ctxs[this.n] = ctx;
    this.datas[this.n] = data;
    this.n++;
    if (this.plugged === 0) this.complete();
  }
  private complete(): void {
    for (let i = 0; i < this.n; i++) this.fns[i]!(this.ctxs[i], null, this.datas[i]!);
    this.n = 0;
    this.hook?.(false);
  }
  writePagesCb(_offset: number, _data: Uint8Array, done: PageCallback, ctx: unknown): void {
    this.queue(done, ctx, null);
  }
  readPagesCb(_offset: number, _length: number, done: PageCallback, ctx: unknown): void {
    this.queue(done, ctx, this.page);
  }
  plug(): void {
    this.plugged++;
  }
  unplug(): void {
    if (--this.plugged === 0 && this.n > 0) this.complete();
  }
  onCompletionBatch(fn: (more: boolean) => void): () => void {
    this.hook = fn;
    return () => {
      this.hook = null;
    };
  }
  read(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(0));
  }
  async write(): Promise<void> {}
  async trim(): Promise<void> {}
  async writeZeroes(): Promise<void> {}
  async flush(): Promise<void> {}
}

let gcs = 0;
const usedHeap = (): number => v8.getHeapStatistics().used_heap_size;
const externalBytes = (): number => v8.getHeapStatistics().external_memory;
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Nanoseconds this thread has run on a CPU (Linux), or NaN elsewhere. */
function threadCpuNs(): number {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]);
  } catch {
    return Number.NaN;
  }
}

interface Window {
  bytes: number;
  external: number;
  cpuNs: number;
  units: number;
  tries: number;
}

interface SamplingNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: SamplingNode[];
}

let session: Session | null = null;

/** Allocation sites of a sampling profile: bytes by function and line, largest first. */
function sites(root: SamplingNode, top = 12): [string, number][] {
  const by = new Map<string, number>();
  const walk = (n: SamplingNode): void => {
    if (n.selfSize > 0) {
      const f = n.callFrame;
      const key = `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
      by.set(key, (by.get(key) ?? 0) + n.selfSize);
    }
    for (const c of n.children) walk(c);
  };
  walk(root);
  return [...by.entries()].sort((x, y) => y[1] - x[1]).slice(0, top);
}

/**
 * Runs `units` of `step` (each calls its continuation when done) with no
 * garbage collection inside the window; returns the heap growth.
 */
async function measure(step: (next: () => void) => void, units: number, profile = false): Promise<Window> {
  for (let tries = 1; tries <= 5; tries++) {
    await tick();
    if (profile && session !== null)
      await session.post('HeapProfiler.startSampling', {
        samplingInterval: 64,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
    const g0 = gcs;
    const c0 = threadCpuNs();
    const u0 = usedHeap();
    const e0 = externalBytes();
    const { bytes, external, cpuNs } = await new Promise<{ bytes: number; external: number; cpuNs: number }>(
      (resolve) => {
        let left = units;
        const next = (): void => {
          if (--left < 0) {
            const b = usedHeap() - u0;
            const x = externalBytes() - e0;
            resolve({ bytes: b, external: x, cpuNs: threadCpuNs() - c0 });
            return;
          }
          step(next);
        };
        next();
      },
    );
    await tick(); // let the gc observer report
    if (profile && session !== null) {
      const { profile: p } = (await session.post('HeapProfiler.stopSampling')) as { profile: { head: SamplingNode } };
      const all = units;
      for (const [where, b] of sites(p.head))
        process.stdout.write(`      ${(b / all).toFixed(1).padStart(8)} B/burst  ${where}\n`);
    }
    if (gcs === g0 && bytes >= 0) return { bytes, external, cpuNs, units, tries };
  }
  throw new Error('a garbage collection fell in every window: raise --max-semi-space-size or lower --requests');
}

async function child(a: Args): Promise<void> {
  if (a.sites) {
    session = new Session();
    session.connect();
  }
  new PerformanceObserver((list) => {
    gcs += list.getEntries().length;
  }).observe({ entryTypes: ['gc'] });

  const svc =
    a.backend === 'service'
      ? await ZramService.start({
          disksize: 64 << 20,
          compressionWorkers: a.workers,
          runToCompletion: a.rtc,
          compaction: false,
        })
      : null;
  const backend = svc === null ? new NullPageBackend() : new ServiceBackend(svc);
  const sock = new NullSocket();
  const maxPayload = 32 << 20;
  let conn: NbdConnection | null = null;
  const cfg: ConnectionConfig = {
    backend,
    exportName: 'zram0',
    description: '',
    maxPayload,
    maxInflight: 256,
    maxInflightBytes: 64 << 20,
    maxConnectionBytes: minConnectionBytes(maxPayload),
    budget: { max: 1 << 30, held: () => conn?.heldBytes() ?? 0, wait: () => {}, released: () => {} },
    handshakeTimeoutMs: 0,
    onHandshakeTimeout: () => {},
    tls: { mode: 'off' },
    multiConn: true,
    writes: new WriteTracker(),
    log: () => {},
    debug: false,
    shuttingDown: () => false,
  };
  conn = new NbdConnection(sock as unknown as Socket, 1, cfg);
  const opts = [nbd.encodeClientOption(nbd.NBD_OPT_GO, nbd.encodeInfoRequestData('zram0'))];
  if (a.structured) opts.unshift(nbd.encodeClientOption(nbd.NBD_OPT_STRUCTURED_REPLY));
  sock.emit(
    'data',
    Buffer.concat([Buffer.from([0, 0, 0, nbd.NBD_FLAG_C_FIXED_NEWSTYLE | nbd.NBD_FLAG_C_NO_ZEROES]), ...opts]),
  );
  await tick();
  if (conn.stats().phase !== 'transmission') throw new Error(`handshake failed: ${JSON.stringify(conn.stats())}`);

  // one burst of qd requests at scattered pages, 60%-compressible-ish data
  const pages = (64 << 20) / PAGE;
  const burst = (type: number): Buffer => {
    const parts: Buffer[] = [];
    for (let i = 0; i < a.qd; i++) {
      const page = (i * 7919) % pages;
      parts.push(nbd.encodeRequest({ type, offset: page * PAGE, length: PAGE, cookieLo: i + 1 }));
      if (type === nbd.NBD_CMD_WRITE) {
        const d = Buffer.alloc(PAGE);
        for (let k = 0; k < PAGE * 0.4; k++) d[k] = (k * 131 + i) & 0xff;
        parts.push(d);
      }
    }
    return Buffer.concat(parts);
  };
  const writes = burst(nbd.NBD_CMD_WRITE);
  const reads = burst(nbd.NBD_CMD_READ);
  const replyHeader = a.structured ? nbd.STRUCTURED_REPLY_HEADER_SIZE + 8 : nbd.SIMPLE_REPLY_SIZE;

  const run = async (input: Buffer, replyPerRequest: number): Promise<Window> => {
    let next: () => void = () => {};
    sock.onReplies = () => setImmediate(next);
    const step = (n: () => void): void => {
      next = n;
      sock.expect = sock.replyBytes + a.qd * replyPerRequest;
      sock.emit('data', input);
    };
    const bursts = Math.ceil(a.requests / a.qd);
    await measure(step, Math.max(1000, Math.ceil(bursts / 4))); // warm up (optimized code: steady state)
    const w = await measure(step, bursts);
    if (a.sites) await measure(step, bursts, true); // apart: the sampler allocates too
    return w;
  };

  const rows: Record<string, number | string>[] = [];
  const report = (name: string, w: Window, perUnit: number): void => {
    const reqs = w.units * perUnit;
    const row = {
      name,
      requests: reqs,
      heapBytesPerRequest: w.bytes / reqs,
      externalBytesPerRequest: w.external / reqs,
      mainCpuUsPerRequest: w.cpuNs / 1000 / reqs,
      windows: w.tries,
    };
    rows.push(row);
    process.stdout.write(
      `  ${name.padEnd(34)} ${(w.bytes / reqs).toFixed(1).padStart(8)} B/request on the heap, ` +
        `${(w.external / reqs).toFixed(1).padStart(7)} B/request outside, ` +
        `main thread ${(w.cpuNs / 1000 / reqs).toFixed(2).padStart(6)} us/request (${reqs} requests)\n`,
    );
  };

  process.stdout.write(
    `NBD 4 KiB path, main-thread allocation: QD${a.qd}, ` +
      (svc === null
        ? 'null backend (the protocol code alone), '
        : `${a.workers} worker(s), run-to-completion ${a.rtc}, `) +
      `${a.structured ? 'structured' : 'simple'} replies\n`,
  );
  report('WRITE 4 KiB', await run(writes, nbd.SIMPLE_REPLY_SIZE), a.qd);
  report('READ 4 KiB', await run(reads, replyHeader + PAGE), a.qd);
  // the driver alone: one setImmediate and one emit per burst
  const idle = new EventEmitter();
  idle.on('data', () => {});
  const bare = await measure(
    (n) => {
      idle.emit('data', reads);
      setImmediate(n);
    },
    Math.ceil(a.requests / a.qd),
  );
  report(`driver alone (per burst / ${a.qd})`, bare, a.qd);
  sock.destroy();
  if (svc !== null) {
    const st = svc.ringStats();
    const wakeups = st.workers.reduce((n, w) => n + w.wakeups, 0);
    process.stdout.write(
      `  ring, whole run (${st.requests} requests): run-to-completion share ${(100 * st.runToCompletionShare).toFixed(0)}%, ` +
        `per request: ${(st.completionWaits / st.requests).toFixed(2)} completion waits of this thread, ` +
        `${(st.workerWakes / st.requests).toFixed(2)} worker wake-ups it made, ${(wakeups / st.requests).toFixed(2)} worker wake-ups in all\n`,
    );

    await svc.close();
  }
  if (a.json !== null) {
    const path = writeJson(a.json, { kind: 'nbd-alloc', args: a, semiSpaceMb: SEMI_SPACE_MB, rows });
    process.stdout.write(`wrote ${path}\n`);
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2).filter((x, i) => !(i === 0 && x === '--'));
  const a = options(argv);
  if (process.env[CHILD] === '1') return child(a);
  // a young generation big enough that the windows see no collection
  const r = spawnSync(
    process.execPath,
    [
      `--max-semi-space-size=${SEMI_SPACE_MB}`,
      `--min-semi-space-size=${SEMI_SPACE_MB}`,
      fileURLToPath(import.meta.url),
      ...argv,
    ],
    { stdio: 'inherit', env: { ...process.env, [CHILD]: '1' } },
  );
  process.exit(r.status ?? 1);
}

await main();
