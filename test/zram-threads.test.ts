// Real threads on one zram device: several writers attached with
// ZramDevice.attach(shared) write and read overlapping pages (whole pages and
// sector runs across page boundaries, i.e. read-modify-write under the slot
// lock) while a maintenance thread compacts the pool, marks pages idle,
// writes idle pages back to a file and recompresses them. Every shared sector
// carries its identity, writer, sequence number and checksum, so torn,
// misplaced or lost writes are detected; private pages are checked exactly.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { ZsPool } from '@zsmalloc/core';
import { ZramDevice } from '@zsmalloc/zram';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain JS helper shared with the worker
import { checkSector, sectorOwner, stampSector } from './zram-worker.mjs';

const PAGE = 4096;
const SECTOR = 512;
const WORKER = new URL('./zram-worker.mjs', import.meta.url);

interface WriterResult {
  role: 'writer';
  id: number;
  errors: string[];
  lockdep?: boolean;
  writes: number;
  reads: number;
  lastSeq: Int32Array;
  model: Uint8Array;
}
interface MaintainerResult {
  role: 'maintainer';
  errors: string[];
  lockdep?: boolean;
  counts: Record<string, number>;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zram-threads-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function runWorker(data: Record<string, unknown>): Promise<WriterResult | MaintainerResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(WORKER, { workerData: data });
    let result: WriterResult | MaintainerResult | undefined;
    w.on('message', (m) => (result = m));
    w.on('error', reject);
    w.on('exit', (code) => (result ? resolve(result) : reject(new Error(`worker exited with ${code} and no result`))));
  });
}

async function scenario(opts: {
  writers: number;
  iterations: number;
  writeback: boolean;
  lockMode: 'class' | 'pool';
  percpuCache?: boolean;
}) {
  const sharedPages = 48;
  const privatePages = 16;
  const pages = sharedPages + opts.writers * privatePages;
  const pool = ZsPool.create({
    maxBytes: 16 << 20,
    lockMode: opts.lockMode,
    lockdep: true,
    percpuCache: opts.percpuCache ?? false,
  });
  const dev = ZramDevice.create({
    disksize: pages * PAGE,
    pool,
    backingFile: opts.writeback ? path.join(dir, `wb-${opts.lockMode}-${opts.writers}.img`) : undefined,
  });
  dev.setRecompAlgorithm('deflate', 1);
  // Every shared sector starts stamped by "writer 255, seq 0".
  const page = new Uint8Array(PAGE);
  for (let p = 0; p < sharedPages; p++) {
    for (let s = 0; s < 8; s++) stampSector(page, s * SECTOR, p, s, 255, 0);
    dev.writePage(p, page);
  }
  const control = new Int32Array(new SharedArrayBuffer(16));
  const jobs: Promise<WriterResult | MaintainerResult>[] = [];
  for (let id = 0; id < opts.writers; id++) {
    jobs.push(
      runWorker({
        role: 'writer',
        id,
        seed: 1000 + id,
        shared: dev.shared,
        control: control.buffer,
        iterations: opts.iterations,
        sharedPages,
        privateStart: sharedPages + id * privatePages,
        privatePages,
      }),
    );
  }
  const maint = runWorker({
    role: 'maintainer',
    shared: dev.shared,
    control: control.buffer,
    writeback: opts.writeback,
  });
  // Start everyone together.
  while (Atomics.load(control, 2) < opts.writers + 1) await new Promise((r) => setTimeout(r, 5));
  Atomics.store(control, 0, 1);
  Atomics.notify(control, 0);
  const writers = (await Promise.all(jobs)) as WriterResult[];
  Atomics.store(control, 1, 1); // stop maintenance
  const m = (await maint) as MaintainerResult;

  const errors = [...writers.flatMap((w) => w.errors), ...m.errors];
  expect(errors).toEqual([]);
  // every thread checked its lock acquisitions against the lock order (an inversion throws)
  for (const r of [...writers, m]) expect(r.lockdep).toBe(true);
  expect(m.counts.compactions).toBeGreaterThan(0);

  // Shared sectors: valid, and each holds its writer's last write to it.
  const lastByWriter = new Map<number, Int32Array>(writers.map((w) => [w.id, w.lastSeq]));
  for (let p = 0; p < sharedPages; p++) {
    dev.readPage(p, page);
    for (let s = 0; s < 8; s++) {
      expect(checkSector(page, s * SECTOR, p, s)).toBeNull();
      const { writer, seq } = sectorOwner(page, s * SECTOR);
      if (writer === 255) {
        expect(seq).toBe(0);
        for (const ls of lastByWriter.values()) expect(ls[p * 8 + s], `sector ${p}/${s} lost a write`).toBe(-1);
      } else {
        expect(lastByWriter.get(writer)![p * 8 + s], `sector ${p}/${s}: stale write by ${writer}`).toBe(seq);
      }
    }
  }
  // Private pages: exactly the writers' models.
  for (const w of writers) {
    const got = new Uint8Array(privatePages * PAGE);
    dev.read((sharedPages + w.id * privatePages) * PAGE, got);
    expect(Buffer.compare(got, w.model), `writer ${w.id} private pages`).toBe(0);
  }
  dev.verify();
  pool.verify();
  const mm = dev.statValues().mm;
  expect(mm.comprDataSize).toBe(pool.stats().bytesStored);
  dev.close();
  return { writers, maintainer: m.counts, mm };
}

describe('zram with real threads', () => {
  it('3 writers + compaction/idle/writeback/recompression, per-class locks: zero mismatches', async () => {
    const r = await scenario({ writers: 3, iterations: 1500, writeback: true, lockMode: 'class' });
    expect(r.writers.reduce((a, w) => a + w.writes, 0)).toBeGreaterThan(1000);
  });

  it('2 writers + compaction, one pool lock: zero mismatches', async () => {
    await scenario({ writers: 2, iterations: 1500, writeback: false, lockMode: 'pool' });
  });

  it('3 writers + compaction/idle/writeback/recompression, per-CPU object caches: zero mismatches, mm_stat exact', async () => {
    const r = await scenario({ writers: 3, iterations: 1500, writeback: true, lockMode: 'class', percpuCache: true });
    expect(r.writers.reduce((a, w) => a + w.writes, 0)).toBeGreaterThan(1000);
  });
});
