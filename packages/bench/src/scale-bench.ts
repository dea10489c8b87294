// zram at distro scale through the service: fill a device with a swap-like
// stream, read every page back and verify it, at a small size and a large one
// (default 256 MiB and 8 GiB) on fresh services, and report write/read MB/s,
// mem_used_total, the process RSS against it, and the per-page cost of each
// size side by side (the large size should cost within 10 % of the small one
// per page). A benchmark, not a test: it needs several GiB of memory.
//
// Usage: see USAGE below (or --help).

import { parseArgs } from 'node:util';
import { ZramService, parseSize } from '@zsmalloc/workers';
import { fillPage, swapLikeKind } from '@zsmalloc/zram/testing';

const USAGE = `usage: pnpm bench:scale [--small 256M] [--large 8G] [--algorithm lz4] [--max-bytes SIZE] [--workers N]
  --small       the small device (default 256M)
  --large       the large device (default 8G)
  --algorithm   compression algorithm (default lz4)
  --max-bytes   the pool's cap (default: the service's own, 1.25 x disksize)
  --workers     compression workers (default: the service's own)
`;

const PAGE = 4096;
const CHUNK_PAGES = 256; // 1 MiB per request
const IN_FLIGHT = 8;

interface PhaseResult {
  size: number;
  writeMBs: number;
  readMBs: number;
  writeUsPerPage: number;
  readUsPerPage: number;
  memUsedTotal: number;
  comprDataSize: number;
  rss: number;
}

function fillChunk(buf: Uint8Array, first: number): void {
  for (let k = 0; k < buf.length / PAGE; k++) {
    const i = first + k;
    fillPage(buf.subarray(k * PAGE, (k + 1) * PAGE), swapLikeKind(i), i + 1);
  }
}

async function phase(
  size: number,
  algorithm: string,
  maxBytes: number | undefined,
  workers: number | undefined,
): Promise<PhaseResult> {
  const svc = await ZramService.start({
    disksize: size,
    algorithm,
    maxBytes,
    compressionWorkers: workers,
    compaction: false,
  });
  try {
    const pages = size / PAGE;
    const chunks = pages / CHUNK_PAGES;
    // write: IN_FLIGHT requests outstanding; page generation is outside the timed waits
    let writeNs = 0n;
    const pending: Promise<void>[] = [];
    for (let c = 0; c < chunks; c++) {
      const buf = new Uint8Array(CHUNK_PAGES * PAGE);
      fillChunk(buf, c * CHUNK_PAGES);
      const t = process.hrtime.bigint();
      pending.push(svc.writePages(c * CHUNK_PAGES, buf));
      if (pending.length >= IN_FLIGHT) await pending.shift();
      writeNs += process.hrtime.bigint() - t;
    }
    let t = process.hrtime.bigint();
    await Promise.all(pending);
    writeNs += process.hrtime.bigint() - t;
    const mm = svc.device.statValues().mm;
    const rss = process.memoryUsage().rss;
    // read back and verify every page
    let readNs = 0n;
    const want = new Uint8Array(CHUNK_PAGES * PAGE);
    for (let c = 0; c < chunks; c++) {
      t = process.hrtime.bigint();
      const got = await svc.readPages(c * CHUNK_PAGES, CHUNK_PAGES);
      readNs += process.hrtime.bigint() - t;
      fillChunk(want, c * CHUNK_PAGES);
      if (Buffer.compare(got, want) !== 0) throw new Error(`chunk ${c}: read back differs from what was written`);
    }
    const w = Number(writeNs) / 1e9;
    const r = Number(readNs) / 1e9;
    return {
      size,
      writeMBs: size / 1e6 / w,
      readMBs: size / 1e6 / r,
      writeUsPerPage: (w * 1e6) / pages,
      readUsPerPage: (r * 1e6) / pages,
      memUsedTotal: mm.memUsedTotal,
      comprDataSize: mm.comprDataSize,
      rss,
    };
  } finally {
    await svc.close();
  }
}

const { values } = parseArgs({
  options: {
    small: { type: 'string', default: '256M' },
    large: { type: 'string', default: '8G' },
    algorithm: { type: 'string', default: 'lz4' },
    'max-bytes': { type: 'string' },
    workers: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const maxBytes = values['max-bytes'] !== undefined ? parseSize(values['max-bytes']) : undefined;
const workers = values.workers !== undefined ? Number(values.workers) : undefined;
const MiB = 2 ** 20;
const results: PhaseResult[] = [];
// an untimed warm-up at the small size first, so neither measured phase pays for JIT compilation
await phase(parseSize(values.small!), values.algorithm!, maxBytes, workers);
for (const s of [values.small!, values.large!]) {
  const r = await phase(parseSize(s), values.algorithm!, maxBytes, workers);
  results.push(r);
  process.stdout.write(
    `${(r.size / MiB).toFixed(0)} MiB: write ${r.writeMBs.toFixed(1)} MB/s (${r.writeUsPerPage.toFixed(2)} us/page), ` +
      `read+verify ${r.readMBs.toFixed(1)} MB/s (${r.readUsPerPage.toFixed(2)} us/page), ` +
      `mem_used_total ${(r.memUsedTotal / MiB).toFixed(0)} MiB, compr_data_size ${(r.comprDataSize / MiB).toFixed(0)} MiB, ` +
      `RSS ${(r.rss / MiB).toFixed(0)} MiB (${(r.rss / Math.max(1, r.memUsedTotal)).toFixed(2)}x mem_used_total)\n`,
  );
}
const [a, b] = results as [PhaseResult, PhaseResult];
process.stdout.write(
  `per-page cost large/small: write ${(b.writeUsPerPage / a.writeUsPerPage).toFixed(3)}x, read ${(b.readUsPerPage / a.readUsPerPage).toFixed(3)}x\n`,
);
