// The NBD server over the threaded ZramService: page-aligned READ/WRITE take
// the promise-free fast path (pooled records, payload straight to the page
// rings, replies written into the reused reply slab), the rest the general
// path. Pipelined requests with simple and structured replies, a FLUSH behind
// fast writes, errors on the fast path, and fio's nbd engine with verification.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { NbdServer, ServiceBackend, ZramService } from '@zsmalloc/workers';
import { RawClient, missing, nbd, randomBytes, run } from './nbd-helpers.js';

const PAGE = 4096;

async function withService(
  fn: (c: RawClient, svc: ZramService, server: NbdServer) => Promise<void>,
  structured: boolean,
): Promise<void> {
  const svc = await ZramService.start({ disksize: 8 << 20, compressionWorkers: 2, compaction: false });
  const server = await NbdServer.start({ backend: new ServiceBackend(svc), port: 0 });
  try {
    const c = await RawClient.connect(server.address().port);
    await c.handshake({ structured });
    await fn(c, svc, server);
    c.close();
  } finally {
    await server.close();
    await svc.close();
  }
}

describe.each([false, true])('NBD fast path over ZramService (structured replies: %s)', (structured) => {
  it('pipelined 4 KiB writes and reads: each answered once with its own data, mixed with unaligned requests', async () => {
    await withService(async (c) => {
      const n = 96;
      const data = randomBytes(n * PAGE, structured ? 5 : 6);
      // pages in a scrambled order, all in flight at once
      const order = Array.from({ length: n }, (_, i) => (i * 37) % n);
      for (const i of order)
        c.request({
          type: nbd.NBD_CMD_WRITE,
          offset: i * PAGE,
          length: PAGE,
          cookie: 1000 + i,
          data: data.subarray(i * PAGE, (i + 1) * PAGE),
        });
      const seen = new Set<number>();
      for (let k = 0; k < n; k++) {
        const r = await c.reply();
        expect(r.error).toBe(0);
        expect(seen.has(r.cookie)).toBe(false);
        seen.add(r.cookie);
      }
      expect(seen.size).toBe(n);
      // an unaligned write (general path) over one of those pages, once they are answered
      // (requests in flight together have no order in NBD)
      const odd = Buffer.alloc(100, 0xab);
      c.request({ type: nbd.NBD_CMD_WRITE, offset: 10 * PAGE + 50, length: 100, cookie: 5000, data: odd });
      expect((await c.reply()).cookie).toBe(5000);
      data.fill(0xab, 10 * PAGE + 50, 10 * PAGE + 150);
      const lengths = new Map<number, number>();
      for (const i of order) {
        lengths.set(2000 + i, PAGE);
        c.request({ type: nbd.NBD_CMD_READ, offset: i * PAGE, length: PAGE, cookie: 2000 + i });
      }
      lengths.set(6000, 3 * PAGE);
      c.request({ type: nbd.NBD_CMD_READ, offset: 8 * PAGE, length: 3 * PAGE, cookie: 6000 }); // multi-page, fast path
      lengths.set(6001, 300);
      c.request({ type: nbd.NBD_CMD_READ, offset: 10 * PAGE + 1, length: 300, cookie: 6001 }); // unaligned
      const got = new Map<number, Buffer>();
      for (let k = 0; k < n + 2; k++) {
        const r = await c.reply(lengths);
        expect(r.error).toBe(0);
        expect(got.has(r.cookie)).toBe(false);
        got.set(r.cookie, r.data!);
      }
      for (const i of order)
        expect(Buffer.compare(got.get(2000 + i)!, data.subarray(i * PAGE, (i + 1) * PAGE))).toBe(0);
      expect(Buffer.compare(got.get(6000)!, data.subarray(8 * PAGE, 11 * PAGE))).toBe(0);
      expect(Buffer.compare(got.get(6001)!, data.subarray(10 * PAGE + 1, 10 * PAGE + 301))).toBe(0);
    }, structured);
  });

  it('a FLUSH is answered after the fast-path writes before it; errors on the fast path are typed replies', async () => {
    await withService(async (c, svc) => {
      for (let i = 0; i < 32; i++)
        c.request({
          type: nbd.NBD_CMD_WRITE,
          offset: i * PAGE,
          length: PAGE,
          cookie: i,
          data: randomBytes(PAGE, i),
        });
      c.request({ type: nbd.NBD_CMD_FLUSH, offset: 0, length: 0, cookie: 99 });
      const cookies: number[] = [];
      for (let k = 0; k < 33; k++) cookies.push((await c.reply()).cookie);
      expect(cookies.indexOf(99)).toBe(32);
      // the memory limit: an incompressible page past it fails with ENOSPC on the fast path, nothing else changes
      svc.setMemLimit(1);
      c.request({ type: nbd.NBD_CMD_WRITE, offset: 40 * PAGE, length: PAGE, cookie: 7, data: randomBytes(PAGE, 77) });
      const r = await c.reply();
      expect(r.error).toBe(nbd.NBD_ENOSPC);
      svc.setMemLimit(0);
      c.request({ type: nbd.NBD_CMD_READ, offset: 40 * PAGE, length: PAGE, cookie: 8 });
      const z = await c.reply(new Map([[8, PAGE]]));
      expect(z.error).toBe(0);
      expect(z.data!.every((b) => b === 0)).toBe(true);
      const st = svc.ringStats();
      expect(st.requests).toBeGreaterThanOrEqual(34);
      expect(st.inflightEntries).toBe(0);
    }, structured);
  });
});

const skip = missing('fio');
describe.skipIf(skip !== null)(skip ?? 'fio over ZramService', () => {
  it('random 4k writes at iodepth 16 with verify=crc32c through the fast path: zero errors', async () => {
    const svc = await ZramService.start({ disksize: 32 << 20, compressionWorkers: 2, compaction: false });
    const server = await NbdServer.start({ backend: new ServiceBackend(svc), port: 0 });
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'nbd-fio-svc-'));
    try {
      const r = await run(
        'fio',
        [
          '--output-format=json',
          '--verify_state_save=0',
          '--name=svc-verify',
          '--ioengine=nbd',
          `--uri=${server.uri()}`,
          '--rw=randwrite',
          '--bs=4k',
          '--size=16m',
          '--iodepth=16',
          '--verify=crc32c',
          '--do_verify=1',
          '--verify_fatal=1',
          '--buffer_compress_percentage=60',
          '--randseed=7',
        ],
        { timeoutMs: 60_000, cwd },
      );
      const at = r.stdout.indexOf('{');
      expect(r.code, r.stderr).toBe(0);
      const job = (JSON.parse(r.stdout.slice(at)) as { jobs: { error: number; read: { io_bytes: number } }[] })
        .jobs[0]!;
      expect(job.error).toBe(0);
      expect(job.read.io_bytes).toBe(16 << 20);
      const st = svc.ringStats();
      expect(st.workerPages + st.helpedPages + st.inlinePages).toBeGreaterThanOrEqual(2 * 4096);
    } finally {
      fs.rmSync(cwd, { recursive: true, force: true });
      await server.close();
      await svc.close();
    }
  }, 90_000);
});
