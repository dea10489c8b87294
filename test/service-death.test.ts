// What the service does when one of its threads dies (R3): calls routed to a dead
// dedicated worker reject with WorkerFailedError at once, close() resolves, the
// worker is restarted once the device checks out, and stats say so.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { WorkerFailedError, ZramService } from '@zsmalloc/workers';

const dir = mkdtempSync(join(tmpdir(), 'zram-death-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const DEADLINE_MS = 1000;

async function started(name: string) {
  return ZramService.start({
    disksize: 256 * 4096,
    maxBytes: 8 << 20,
    compressionWorkers: 1,
    compaction: false,
    backingFile: join(dir, name),
    batchPages: 8,
  });
}

describe('a dedicated worker that dies (R3)', () => {
  it('rejects a pending swap I/O call with WorkerFailedError, restarts the worker, and close() resolves', async () => {
    const svc = await started('swap');
    const page = new Uint8Array(4096);
    for (let i = 0; i < page.length; i++) page[i] = (i * 13) ^ (i >>> 5);
    await svc.writePages(7, page);
    svc.idle('all');
    expect(await svc.writeback('idle')).toBe(1);
    // hold page 7's slot lock here, so the worker's swap-in of it is still pending when it dies
    const slots = svc.device['slots'] as { lock(i: number): void; unlock(i: number): void };
    slots.lock(7);
    const pending = svc.readback(7, 1);
    await new Promise((r) => setTimeout(r, 50));
    const t0 = performance.now();
    await svc.killWorker('swap-io');
    await expect(pending).rejects.toBeInstanceOf(WorkerFailedError);
    expect(performance.now() - t0).toBeLessThan(DEADLINE_MS);
    slots.unlock(7);
    const st = await svc.stats();
    expect(st.threads.swapIo).toMatchObject({ deaths: 1, restarts: 1 });
    expect(st.failures.map((f) => f.worker)).toContain('swap-io');
    // the restarted worker serves
    await expect(svc.readback(7, 1)).resolves.toBe(1);
    expect(Buffer.from(await svc.readPages(7, 1)).equals(Buffer.from(page))).toBe(true);
    svc.device.verify();
    await svc.close();
  });

  it('rejects pending compaction and frame compaction with WorkerFailedError, restarts it, and close() resolves', async () => {
    const svc = await started('compact');
    // a fragmented pool, so compaction has work and takes the pool lock
    const data = new Uint8Array(128 * 4096);
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 27;
    await svc.writePages(0, data);
    for (let p = 0; p < 128; p += 2) await svc.discard(p * 4096, 4096);
    expect(svc.pool.compactable()).toBeGreaterThan(0);
    // another thread holds the pool lock for writing: compaction waits for it, so both calls are pending
    const holder = new Worker(new URL('./workers/lock-holder-worker.mjs', import.meta.url), {
      workerData: { kind: 'pool-write', shared: svc.pool.shared },
    });
    await new Promise((r) => holder.once('message', r));
    const a = svc.compact();
    const b = svc.frameCompact(3); // queued behind it in the same worker
    await new Promise((r) => setTimeout(r, 50));
    await svc.killWorker('compaction');
    await expect(a).rejects.toBeInstanceOf(WorkerFailedError);
    await expect(b).rejects.toBeInstanceOf(WorkerFailedError);
    holder.postMessage('release');
    await new Promise((r) => holder.once('exit', r));
    expect((await svc.stats()).threads.compaction).toMatchObject({ deaths: 1, restarts: 1 });
    await expect(svc.compact()).resolves.toBeGreaterThanOrEqual(0);
    await svc.close();
  });

  it('resolves close() after a dedicated worker died while the service was closing it', async () => {
    const svc = await started('close');
    await svc.killWorker('swap-io');
    await svc.killWorker('compaction');
    await svc.close();
  });

  it('restarts a compression worker that died and keeps every acknowledged page', async () => {
    const svc = await started('comp');
    const data = new Uint8Array(64 * 4096);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) >>> 3;
    await svc.writePages(0, data);
    await svc.killWorker('compression');
    // a batch may be lost with the worker; later ones go to its replacement
    for (let k = 0; k < 3; k++) await svc.writePages(64, data.subarray(0, 4096)).catch(() => undefined);
    await svc.writePages(64, data.subarray(0, 4096));
    expect(Buffer.from(await svc.readPages(0, 64)).equals(Buffer.from(data))).toBe(true);
    const st = await svc.stats();
    expect(st.threads.compression.deaths).toBe(1);
    expect(st.threads.compression.restarts).toBe(1);
    svc.device.verify();
    await svc.close();
  });

  it('runs again, once the swap I/O worker is back, a check after a death that the worker died in the middle of', async () => {
    const svc = await started('check');
    const data = new Uint8Array(64 * 4096);
    for (let i = 0; i < data.length; i++) data[i] = (i * 11) >>> 4;
    await svc.writePages(0, data);
    const pool = svc.pool;
    // hold a class lock here, so the check after the death below stops in the middle
    // (in the pool repair, taking every lock) until this thread lets it go
    const c = pool.classIndexFor(64);
    pool.classLock(c);
    let released = false;
    try {
      await svc.killWorker('compression');
      const until = Date.now() + 10_000;
      while (!pool.classLockContended(c) && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      expect(pool.classLockContended(c)).toBe(true); // the swap I/O worker waits inside the check
      await svc.killWorker('swap-io');
      pool.classUnlock(c);
      released = true;
    } finally {
      if (!released) pool.classUnlock(c);
    }
    // both deaths (the compression worker's, the swap I/O worker's) get a check completed
    // after them: the interrupted one runs again on the restarted worker
    const until = Date.now() + 20_000;
    let st = await svc.stats();
    while (st.checksAfterDeath.deathsPending > 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
      st = await svc.stats();
    }
    expect(st.checksAfterDeath).toMatchObject({ retried: 1, deathsChecked: 2, deathsPending: 0 });
    expect(svc.checks).toBeGreaterThanOrEqual(1);
    expect(st.threads.swapIo).toMatchObject({ deaths: 1, restarts: 1 });
    expect(svc.device.fenced).toBe(false);
    expect(Buffer.from(await svc.readPages(0, 64)).equals(Buffer.from(data))).toBe(true);
    svc.device.verify();
    await svc.close();
  });
});
