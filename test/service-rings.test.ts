// The ZramService data path through the shared-memory page rings: many
// submitters at once, fairness between small and large requests, a worker that
// dies holding claimed entries, and every thread (workers and the submitting
// thread) doing page work under both lock modes.
import { describe, expect, it } from 'vitest';
import type { LockMode } from '@zsmalloc/core';
import { fillPage, swapLikeKind } from '@zsmalloc/zram/testing';
import { WorkerFailedError, ZramService, type RunToCompletion } from '@zsmalloc/workers';

const PAGE = 4096;

function pageOf(index: number, version: number, dst: Uint8Array): Uint8Array {
  return fillPage(dst, swapLikeKind(index * 17 + version), index * 7919 + version * 104729);
}

function pagesOf(first: number, count: number, version: number): Uint8Array {
  const buf = new Uint8Array(count * PAGE);
  for (let k = 0; k < count; k++) pageOf(first + k, version, buf.subarray(k * PAGE, (k + 1) * PAGE));
  return buf;
}

const ST_CLAIMED = 16;

describe.each<RunToCompletion>(['adaptive', 'never'])('8 concurrent submitters (runToCompletion %s)', (policy) => {
  it('every request completes exactly once, with its own pages', async () => {
    const pages = 4096;
    const svc = await ZramService.start({
      disksize: pages * PAGE,
      compressionWorkers: 2,
      batchPages: 16,
      ringEntries: 8,
      runToCompletion: policy,
      compaction: false,
    });
    const submitters = 8;
    const per = pages / submitters;
    let requests = 0;
    let settled = 0;
    let mismatches = 0;
    let seed = 7;
    const rnd = () => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed;
    };
    const version = new Int32Array(pages);
    const submitter = async (s: number) => {
      const base = s * per;
      for (let round = 0; round < 40; round++) {
        // sizes from 1 page to several entries (an entry holds 16 pages here)
        const first = base + (rnd() % per);
        const count = 1 + (rnd() % Math.min(70, base + per - first));
        requests++;
        if (round % 2 === 0) {
          for (let k = 0; k < count; k++) version[first + k] = round + 1;
          const buf = new Uint8Array(count * PAGE);
          for (let k = 0; k < count; k++) pageOf(first + k, round + 1, buf.subarray(k * PAGE, (k + 1) * PAGE));
          await svc.writePages(first, buf);
        } else {
          const out = await svc.readPages(first, count);
          const want = new Uint8Array(PAGE);
          for (let k = 0; k < count; k++) {
            const v = version[first + k]!;
            if (v === 0) want.fill(0);
            else pageOf(first + k, v, want);
            if (Buffer.compare(Buffer.from(out.buffer, k * PAGE, PAGE), Buffer.from(want)) !== 0) mismatches++;
          }
        }
        settled++;
      }
    };
    await Promise.all(Array.from({ length: submitters }, (_, s) => submitter(s)));
    const st = await svc.stats();
    expect(mismatches).toBe(0);
    expect(settled).toBe(requests);
    expect(st.ring.requests).toBe(requests);
    // nothing left behind: every entry settled once, none still on the ring or queued
    expect(st.ring.inflightEntries).toBe(0);
    expect(st.ring.queued).toBe(0);
    const pagesDone = st.ring.workerPages + st.ring.helpedPages + st.ring.inlinePages;
    expect(st.ring.entriesCompleted).toBeGreaterThan(0);
    expect(pagesDone).toBeGreaterThan(0);
    for (const w of st.ring.workers) expect(w.pages).toBeGreaterThan(0);
    if (policy === 'never') expect(st.ring.runToCompletionShare).toBe(0);
    await svc.close();
    svc.pool.verify();
  }, 120_000);
});

describe('ring fairness', () => {
  it('a 1-page read queued behind continuous large writes completes within a bounded number of entries', async () => {
    const pages = 8192;
    const entries = 8;
    const writers = 4;
    const svc = await ZramService.start({
      disksize: pages * PAGE,
      compressionWorkers: 2,
      batchPages: 32,
      ringEntries: entries,
      runToCompletion: 'never',
      compaction: false,
    });
    const probe = pagesOf(0, 1, 1);
    await svc.writePages(0, probe);
    let stop = false;
    const big = pagesOf(1024, 1024, 1); // 32 entries per request
    const writer = async (w: number) => {
      while (!stop) await svc.writePages(1024 + w * 1024, big);
    };
    const running = Array.from({ length: writers }, (_, w) => writer(w));
    await new Promise((r) => setTimeout(r, 50));
    let worst = 0;
    for (let i = 0; i < 20; i++) {
      // counted at the moment the read settles (the callback form runs inside the settlement)
      const before = svc.ringStats().entriesCompleted;
      const waited = await new Promise<number>((resolve, reject) =>
        svc.readPagesCb(
          0,
          1,
          (_ctx, err, data) => {
            if (err !== null || data === null) return reject(err);
            if (Buffer.compare(Buffer.from(data), Buffer.from(probe)) !== 0) return reject(new Error('wrong data'));
            resolve(svc.ringStats().entriesCompleted - before);
          },
          null,
        ),
      );
      worst = Math.max(worst, waited);
    }
    stop = true;
    await Promise.all(running);
    // Round-robin: the read waits for at most one entry of each writer before it
    // is on the ring and for the entries already there (entries); the completions
    // reaped in the same pass as its own add at most another ring's worth. Served
    // longest-queue-first it would wait while any write is queued: with writers
    // that never stop, without bound (each write here is 32 entries).
    const bound = 2 * entries + writers + 1;
    console.log(`fairness: a 1-page read behind ${writers} writers waited at most ${worst} entries (bound ${bound})`);
    expect(worst).toBeLessThanOrEqual(bound);
    await svc.close();
  }, 120_000);
});

describe('a compression worker dies holding a claimed entry', () => {
  it('fails that request with WorkerFailedError and only it; the rings keep serving', async () => {
    const svc = await ZramService.start({
      disksize: 16 << 20,
      compressionWorkers: 2,
      batchPages: 8,
      ringEntries: 16,
      runToCompletion: 'never',
      compaction: false,
    });
    await svc.writePages(0, pagesOf(0, 64, 1));
    // Hold page 100's slot lock on this thread, so the worker that claims the
    // write of page 100 blocks inside the zram path with the entry claimed.
    const slots = (svc.device as unknown as { slots: { lock(i: number): void; unlock(i: number): void } }).slots;
    slots.lock(100);
    const doomed = svc.writePages(100, pagesOf(100, 1, 1)).then(
      () => null,
      (e: unknown) => e,
    );
    let owner = -1;
    for (let i = 0; i < 500 && owner < 0; i++) {
      await new Promise((r) => setTimeout(r, 5));
      for (let slot = 0; slot < svc.ring.entries; slot++) {
        const st = svc.ring.stateOf(slot);
        if (st >= ST_CLAIMED && svc.ring.first(slot) === 100) owner = st - ST_CLAIMED;
      }
    }
    expect(owner).toBeGreaterThan(0);
    const victimTid = svc.ring.threadOf(owner);
    const victim = svc.piscina.threads.find((t) => t.threadId === victimTid)!;
    expect(victim).toBeDefined();
    // other requests in flight meanwhile go to the other worker and succeed
    const others = Array.from({ length: 12 }, (_, i) => svc.writePages(200 + i * 8, pagesOf(200 + i * 8, 8, 1)));
    await victim.terminate();
    const err = await doomed;
    expect(err).toBeInstanceOf(WorkerFailedError);
    expect((err as Error).message).toMatch(/\[100, \+1\)/);
    await Promise.all(others);
    slots.unlock(100);
    const st = await svc.stats();
    expect(st.failures.filter((f) => f.worker === 'compression')).toHaveLength(1);
    expect(st.failures[0]!.threadId).toBe(victimTid);
    // the stored pages are intact, and the rings keep serving on both owners
    expect(Buffer.compare(Buffer.from(await svc.readPages(0, 64)), Buffer.from(pagesOf(0, 64, 1)))).toBe(0);
    expect(Buffer.compare(Buffer.from(await svc.readPages(200, 96)), Buffer.from(pagesOf(200, 96, 1)))).toBe(0);
    // piscina starts a new thread and the dead owner's consumer task runs on it
    for (let i = 0; i < 400 && svc.ring.threadOf(owner) === victimTid; i++) await new Promise((r) => setTimeout(r, 10));
    expect(svc.ring.threadOf(owner)).not.toBe(victimTid);
    const before = (await svc.stats()).ring.workers.map((w) => w.pages);
    for (let i = 0; i < 40; i++) await svc.writePages(1000 + i * 16, pagesOf(1000 + i * 16, 16, 2));
    await svc.writePages(100, pagesOf(100, 1, 2));
    const after = (await svc.stats()).ring.workers;
    expect(after.reduce((a, w) => a + w.pages, 0)).toBeGreaterThan(before.reduce((a, n) => a + n, 0));
    expect(Buffer.compare(Buffer.from(await svc.readPages(100, 1)), Buffer.from(pagesOf(100, 1, 2)))).toBe(0);
    await svc.close();
    svc.pool.verify();
  }, 60_000);
});

describe.each<LockMode>(['class', 'pool'])('every thread does page work (lockMode %s)', (lockMode) => {
  it('workers and the submitting thread share one stream, the data is intact and lock_stat counts every thread', async () => {
    const pages = 4096;
    const svc = await ZramService.start({
      disksize: pages * PAGE,
      compressionWorkers: 2,
      batchPages: 16,
      lockMode,
      lockStat: true,
      compaction: { thresholdPages: 8, intervalMs: 10 },
    });
    const src = pagesOf(0, pages, 3);
    // every request at once: more entries wait than there are workers, so the
    // submitting thread runs some of them too
    await Promise.all(
      Array.from({ length: pages / 64 }, (_, i) =>
        svc.writePages(i * 64, src.subarray(i * 64 * PAGE, (i + 1) * 64 * PAGE)),
      ),
    );
    const reads = await Promise.all(Array.from({ length: pages / 64 }, (_, i) => svc.readPages(i * 64, 64)));
    for (let i = 0; i < reads.length; i++)
      expect(
        Buffer.compare(Buffer.from(reads[i]!), Buffer.from(src.subarray(i * 64 * PAGE, (i + 1) * 64 * PAGE))),
      ).toBe(0);
    const st = await svc.stats();
    console.log(
      `lockMode ${lockMode}: worker pages ${st.ring.workers.map((w) => w.pages).join('/')}, submitter helped ${st.ring.helpedPages}, inline ${st.ring.inlinePages}, share ${st.ring.runToCompletionShare.toFixed(2)}`,
    );
    for (const w of st.ring.workers) expect(w.pages).toBeGreaterThan(0);
    expect(st.ring.helpedPages).toBeGreaterThan(0);
    expect(st.ring.workerPages + st.ring.helpedPages + st.ring.inlinePages).toBe(2 * pages);
    expect(st.ring.runToCompletionShare).toBeGreaterThan(0);
    console.log(st.lockStat.split('\n').slice(0, 8).join('\n'));
    await svc.close();
    svc.pool.verify();
  }, 120_000);
});

describe.each<RunToCompletion>(['adaptive', 'never', 'always'])('plugging (runToCompletion %s)', (policy) => {
  it('requests submitted while plugged start at unplug as one burst; each batch of callbacks is followed by the hook', async () => {
    const svc = await ZramService.start({
      disksize: 1024 * PAGE,
      compressionWorkers: 2,
      runToCompletion: policy,
      compaction: false,
    });
    const events: string[] = [];
    const unhook = svc.onCompletionBatch(() => events.push('batch'));
    const n = 24;
    const src = pagesOf(100, n, 3);
    let settled = 0;
    const all = new Promise<void>((resolve, reject) => {
      const done = (ctx: unknown, err: Error | null): void => {
        if (err !== null) return reject(err);
        events.push(`done ${ctx as number}`);
        if (++settled === n) resolve();
      };
      svc.plug();
      svc.plug(); // plugs nest
      for (let i = 0; i < n; i++) svc.writePagesCb(100 + i, src.subarray(i * PAGE, (i + 1) * PAGE), done, i);
      svc.unplug();
      // still plugged: nothing started, not even in a microtask
      queueMicrotask(() => {
        expect(svc.ringStats().queued).toBe(n);
        expect(settled).toBe(0);
        svc.unplug();
        expect(() => svc.unplug()).toThrow(/without plug/);
      });
    });
    await all;
    // let the batch that delivered the last callback end
    await new Promise((r) => setImmediate(r));
    expect(events.filter((e) => e.startsWith('done')).length).toBe(n);
    expect(events.at(-1)).toBe('batch');
    // every callback is followed, before the next batch's first callback, by a hook call
    expect(events[0]).toMatch(/^done/);
    unhook();
    const back = await svc.readPages(100, n);
    expect(Buffer.compare(Buffer.from(back), Buffer.from(src))).toBe(0);
    const before = events.length;
    await new Promise<void>((resolve, reject) =>
      svc.writePagesCb(0, src.subarray(0, PAGE), (_c, err) => (err ? reject(err) : resolve()), null),
    );
    await new Promise((r) => setImmediate(r));
    expect(events.length).toBe(before); // unhooked
    await svc.close();
  }, 60_000);
});
