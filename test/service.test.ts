// The ZramService with every thread running: compression workers, the swap I/O
// worker and the compaction/migration worker, driven through the async page API.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ZsError, type LockMode } from '@zsmalloc/core';
import { POOL_MAX_BYTES, poolBytesFor } from '@zsmalloc/zram';
import { fillPage, swapLikeKind } from '@zsmalloc/zram/testing';
import { WorkerFailedError, ZramService, wrapControl } from '@zsmalloc/workers';

const dir = mkdtempSync(join(tmpdir(), 'zram-svc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function pageOf(index: number, version: number, dst: Uint8Array): Uint8Array {
  if (version === 0) return dst.fill(0);
  return fillPage(dst, swapLikeKind(index * 31 + version), index * 1000003 + version);
}

describe.each<[LockMode, boolean]>([
  ['class', false],
  ['pool', false],
  ['class', true],
])('ZramService integrity under every thread (lockMode %s, percpuCache %s)', (lockMode, percpuCache) => {
  it('>= 100,000 verified page operations with writes, reads, discards, writeback, swap-in, compaction and migration at once', async () => {
    const pages = 2048;
    const svc = await ZramService.start({
      disksize: pages * 4096,
      maxBytes: 8 << 20,
      compressionWorkers: 2,
      lockMode,
      percpuCache,
      lockStat: true,
      lockdep: true,
      backingFile: join(dir, `bf-${lockMode}-${percpuCache}`),
      compaction: { thresholdPages: 8, intervalMs: 20 },
      batchPages: 16,
    });
    const version = new Int32Array(pages);
    const lanes = 8;
    const per = pages / lanes;
    let verified = 0;
    let mismatches = 0;
    let seed = lockMode === 'class' ? 1 : 2;
    const rnd = () => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed;
    };
    const expectPage = new Uint8Array(4096);
    const lane = async (l: number) => {
      const base = l * per;
      while (verified < 100_000) {
        const first = base + (rnd() % per);
        const count = 1 + (rnd() % Math.min(48, base + per - first));
        const r = rnd() % 10;
        if (r < 4) {
          const buf = new Uint8Array(count * 4096);
          for (let k = 0; k < count; k++) {
            version[first + k]!++;
            pageOf(first + k, version[first + k]!, buf.subarray(k * 4096, (k + 1) * 4096));
          }
          await svc.writePages(first, buf);
        } else if (r < 9) {
          const out = await svc.readPages(first, count);
          for (let k = 0; k < count; k++) {
            pageOf(first + k, version[first + k]!, expectPage);
            if (Buffer.compare(Buffer.from(out.buffer, k * 4096, 4096), Buffer.from(expectPage)) !== 0) mismatches++;
            verified++;
          }
        } else {
          await svc.discard(first * 4096, count * 4096);
          for (let k = 0; k < count; k++) version[first + k] = 0;
        }
      }
    };
    const maintenance = async () => {
      let rounds = 0;
      while (verified < 100_000) {
        svc.idle('all');
        await svc.writeback('idle');
        {
          const at = rnd() % pages;
          await svc.readback(at, Math.min(256, pages - at));
        }
        await svc.compact();
        await svc.frameCompact(rounds % 2 === 0 ? 10 : 3);
        rounds++;
        await new Promise((r) => setTimeout(r, 10));
      }
      return rounds;
    };
    const [rounds] = await Promise.all([maintenance(), ...Array.from({ length: lanes }, (_, l) => lane(l))]);
    const st = await svc.stats();
    console.log(
      `lockMode ${lockMode}, percpuCache ${percpuCache}: ${verified} verified page reads, ${rounds} maintenance rounds; bd_stat ${st.bdStat.trim()}; compaction ${JSON.stringify(st.compaction)}; migrated ${st.migration.framesMigrated}`,
    );
    expect(mismatches).toBe(0);
    expect(verified).toBeGreaterThanOrEqual(100_000);
    expect(st.failures).toEqual([]);
    // through the page rings: every worker ran entries, and nothing is left on them
    for (const w of st.ring.workers) expect(w.pages).toBeGreaterThan(0);
    expect(st.ring.inflightEntries).toBe(0);
    expect(st.swapIo!.pagesWrittenBack).toBeGreaterThan(0);
    expect(st.compaction!.runs).toBeGreaterThan(0);
    expect(st.migration.framesMigrated).toBeGreaterThan(0);
    // a final full read of the device against the model
    const all = await svc.readPages(0, pages);
    for (let i = 0; i < pages; i++) {
      pageOf(i, version[i]!, expectPage);
      expect(Buffer.compare(Buffer.from(all.buffer, i * 4096, 4096), Buffer.from(expectPage))).toBe(0);
    }
    await svc.close();
    svc.pool.verify();
  }, 240_000);
});

describe('ZramService control plane', () => {
  it('serves stats, triggers and configuration over comlink to another port', async () => {
    const { MessageChannel } = await import('node:worker_threads');
    const svc = await ZramService.start({ disksize: 4 << 20, compressionWorkers: 1, lockStat: true });
    const { port1, port2 } = new MessageChannel();
    svc.exposeControl(port1);
    const remote = wrapControl(port2);
    const page = new Uint8Array(8 * 4096);
    for (let i = 0; i < 8; i++) fillPage(page.subarray(i * 4096, (i + 1) * 4096), 'text', i);
    await svc.writePages(0, page);
    const st = await remote.stats();
    expect(st.mmStat.trim().split(/\s+/)[0]).toBe(String(8 * 4096));
    expect(st.lockStat).toMatch(/lock_stat version 0.4/);
    expect(st.buddyinfo.length).toBe(11);
    expect(st.classes).toMatch(/^ class {2}size/);
    expect(await remote.idle('all')).toBe(8);
    await remote.setMemLimit(1 << 20);
    expect(svc.device.memLimit).toBe(1 << 20);
    expect(typeof (await remote.compact())).toBe('number');
    port1.close();
    port2.close();
    await svc.close();
  }, 60_000);
});

describe('ZramService failure handling', () => {
  it('a compression worker killed mid-run: the service reports it, other requests work, stored pages stay intact', async () => {
    const svc = await ZramService.start({ disksize: 32 << 20, compressionWorkers: 2, batchPages: 8 });
    const keep = new Uint8Array(256 * 4096);
    for (let i = 0; i < 256; i++) pageOf(i, 1, keep.subarray(i * 4096, (i + 1) * 4096));
    await svc.writePages(0, keep);
    // a long write in flight, then kill one compression thread
    const big = new Uint8Array(4096 * 4096);
    for (let i = 0; i < 4096; i++) pageOf(4096 + i, 1, big.subarray(i * 4096, (i + 1) * 4096));
    const inflight = svc.writePages(4096, big);
    await new Promise((r) => setTimeout(r, 15));
    const victim = svc.piscina.threads[0]!;
    const victimId = victim.threadId;
    await victim.terminate();
    const outcome = await inflight.then(
      () => 'ok',
      (e: unknown) => e,
    );
    if (outcome !== 'ok') expect(outcome).toBeInstanceOf(WorkerFailedError);
    await new Promise((r) => setTimeout(r, 50));
    const st = await svc.stats();
    expect(st.failures.some((f) => f.worker === 'compression' && f.threadId === victimId)).toBe(true);
    // other requests keep working, stored pages read back intact
    const out = await svc.readPages(0, 256);
    expect(Buffer.compare(Buffer.from(out), Buffer.from(keep))).toBe(0);
    const again = new Uint8Array(64 * 4096).fill(0x5a);
    await svc.writePages(1000, again);
    expect(Buffer.compare(Buffer.from(await svc.readPages(1000, 64)), Buffer.from(again))).toBe(0);
    await svc.close();
  }, 60_000);

  it('rejects bad requests with clear errors and changes nothing', async () => {
    const svc = await ZramService.start({
      disksize: 1 << 20,
      compressionWorkers: 1,
      memLimit: 64 << 10,
      compaction: false,
    });
    await expect(svc.writePages(0, new Uint8Array(100))).rejects.toThrow(RangeError);
    await expect(svc.writePages(256, new Uint8Array(4096))).rejects.toThrow(RangeError);
    await expect(svc.readPages(-1, 1)).rejects.toThrow(RangeError);
    // the memory limit: random pages do not compress, the write fails with ENOMEM
    const rnd = new Uint8Array(64 * 4096);
    for (let i = 0; i < 64; i++) fillPage(rnd.subarray(i * 4096, (i + 1) * 4096), 'random', i);
    const err = await svc.writePages(0, rnd).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ZsError);
    expect((err as ZsError).code).toBe('ENOMEM');
    const st = await svc.stats();
    expect(st.ioStat.trim().split(/\s+/)[1]).not.toBe('0'); // failed_writes counted
    await svc.close();
    svc.pool.verify();
    await expect(svc.readPages(0, 1)).rejects.toThrow(/closed/);
  }, 60_000);
});

describe('ZramService sized from disksize', () => {
  it('serves a 1 TiB device with the pool it sizes for itself (capped at the 32 GiB a pool can have), at offsets past 4 GiB', async () => {
    const disksize = 2 ** 40;
    const svc = await ZramService.start({ disksize, compressionWorkers: 1 });
    try {
      expect(svc.device.pool.maxFrames * 4096).toBe(POOL_MAX_BYTES);
      const last = disksize / 4096 - 1;
      const page = fillPage(new Uint8Array(4096), 'text', 7);
      await svc.writePages(last, page);
      await svc.writePages(2 ** 20 + 3, page); // just past 4 GiB of offset
      expect(await svc.readPages(last, 1)).toEqual(page);
      expect(await svc.readPages(2 ** 20 + 3, 1)).toEqual(page);
    } finally {
      await svc.close();
    }
  });

  it('sizes a pool at 1.25 x disksize + 1 MiB in whole pages, capped at 32 GiB', () => {
    expect(poolBytesFor(8 * 2 ** 30)).toBe(10 * 2 ** 30 + 2 ** 20);
    expect(poolBytesFor(4097)).toBe(Math.ceil((4097 * 1.25 + 2 ** 20) / 4096) * 4096);
    expect(poolBytesFor(2 ** 40)).toBe(POOL_MAX_BYTES);
    expect(POOL_MAX_BYTES).toBe(32 * 2 ** 30);
  });
});
