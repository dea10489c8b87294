// The page rings on their own: FIFO claims, a full ring, per-owner completion
// rings, error text, the counts a dead consumer leaves behind, and real
// threads racing to claim — every entry claimed exactly once and reaped once.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { OP_READ, OP_WRITE, PageRing, ST_CLAIMED, ST_FREE } from './page-ring.js';

describe('PageRing', () => {
  it('claims in submission order, refuses a slot still in use, reaps per owner, keeps the first error', () => {
    const r = PageRing.create(4, 3);
    for (let i = 0; i < 4; i++) {
      const slot = r.nextFree();
      expect(slot).toBe(i);
      r.submit(slot, i % 2 ? OP_READ : OP_WRITE, 100 + i, 1 + i, i * 8, 50 + i);
    }
    expect(r.nextFree()).toBe(-1); // all four in use
    expect(r.unclaimed()).toBe(4);
    expect(r.claim(1)).toBe(0);
    expect(r.claim(2)).toBe(1);
    expect(r.stateOf(0)).toBe(ST_CLAIMED + 1);
    expect(r.stateOf(1)).toBe(ST_CLAIMED + 2);
    expect([r.op(1), r.first(1), r.count(1), r.arenaPage(1), r.tag(1)]).toEqual([OP_READ, 101, 2, 8, 51]);
    r.fail(1, 1, 'ENOMEM', 'mem_limit reached');
    r.fail(1, 0, 'EIO', 'a later error is dropped');
    expect(r.failure(1)).toEqual({ page: 1, code: 'ENOMEM', message: 'mem_limit reached' });
    expect(r.failure(0)).toBeNull();
    r.complete(2, 1);
    r.complete(1, 0);
    expect(r.reap(1)).toBe(0);
    expect(r.reap(1)).toBe(-1);
    expect(r.reap(2)).toBe(1);
    expect(r.reap(2)).toBe(-1);
    r.release(0);
    r.release(1);
    expect(r.stateOf(0)).toBe(ST_FREE);
    // slot 0 is free again, and it is the next one in order
    expect(r.nextFree()).toBe(0);
    expect(r.claim(1)).toBe(2);
    expect(r.claim(1)).toBe(3);
    expect(r.claim(1)).toBe(-1);
    expect(r.counters(1).threadId).toBe(0);
  });

  it('a dead consumer is taken out of the spinners and sleepers counts', () => {
    const r = PageRing.create(2, 3);
    r.spinning(1, true);
    r.spinning(2, true);
    r.forgetOwner(1);
    r.forgetOwner(1); // twice changes nothing
    r.spinning(2, false);
    expect(r.sleepers()).toBe(0);
    // no sleeper: wake() makes no system call and does not throw
    r.wake(4);
  });

  it("wakes a sleeper only for entries beyond what the consumers awake will take, and for a dead one's share", async () => {
    const r = PageRing.create(8, 3); // consumers 1 and 2
    // consumer 1 runs in a thread: claims what it finds, else sleeps; consumer 2 is awake (busy, say)
    const url = new URL('../../dist/ring/page-ring.js', import.meta.url).href;
    const consumer = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads');
      (async () => {
        const { PageRing } = await import(workerData.url);
        const r = PageRing.attach(workerData.ring);
        while (!r.stopping()) {
          const slot = r.claim(1);
          if (slot >= 0) parentPort.postMessage(r.tag(slot));
          else r.sleep(1, r.submitSeq(), 10_000);
        }
      })();`,
      { eval: true, workerData: { url, ring: r.shared } },
    );
    const claimed: number[] = [];
    consumer.on('message', (t: number) => claimed.push(t));
    // counted asleep, then given time to be inside Atomics.wait (notify counts only those)
    const asleep = async (): Promise<void> => {
      while (r.sleepers() === 0) await new Promise((res) => setTimeout(res, 1));
      await new Promise((res) => setTimeout(res, 20));
    };
    const claimedCount = async (n: number): Promise<void> => {
      while (claimed.length < n) await new Promise((res) => setTimeout(res, 1));
    };
    const submit = (tag: number): void => {
      r.submit(r.nextFree(), OP_WRITE, tag, 1, 0, tag);
    };
    await asleep();
    submit(0);
    expect(r.wake(1)).toBe(0); // one waiting, consumer 2 awake: it takes it
    submit(1);
    expect(r.wake(1)).toBe(1); // two waiting, one awake: the sleeper too
    await claimedCount(2);
    await asleep();
    r.forgetOwner(2); // consumer 2 dies: its share needs the sleeper
    submit(2);
    expect(r.wake(1)).toBe(1);
    await claimedCount(3);
    await asleep();
    r.setThread(2, 99); // a successor starts: counted awake again
    submit(3);
    expect(r.wake(1)).toBe(0);
    r.stop();
    await consumer.terminate();
  });

  it('4 threads and this one racing to claim: every entry claimed exactly once and reaped once', async () => {
    const owners = 5;
    const r = PageRing.create(64, owners);
    const total = 20_000;
    const claims = new Int32Array(new SharedArrayBuffer(total * 4));
    // the workers load the built module (tests run the TypeScript source)
    const url = new URL('../../dist/ring/page-ring.js', import.meta.url).href;
    const code = `
      const { workerData } = require('node:worker_threads');
      (async () => {
        const { PageRing } = await import(workerData.url);
        const r = PageRing.attach(workerData.ring);
        const claims = new Int32Array(workerData.claims);
        while (!r.stopping()) {
          const slot = r.claim(workerData.owner);
          if (slot < 0) { r.sleep(workerData.owner, r.submitSeq(), 5); continue; }
          Atomics.add(claims, r.tag(slot), 1);
          r.complete(workerData.owner, slot);
        }
      })();`;
    const workers = Array.from(
      { length: owners - 1 },
      (_, i) =>
        new Worker(code, { eval: true, workerData: { url, ring: r.shared, claims: claims.buffer, owner: i + 1 } }),
    );
    let submitted = 0;
    let reaped = 0;
    let byWorkers = 0;
    const reapedTags = new Int32Array(total);
    const settle = (slot: number) => {
      reapedTags[r.tag(slot)]!++;
      r.release(slot);
      reaped++;
    };
    while (reaped < total) {
      while (submitted < total) {
        const slot = r.nextFree();
        if (slot < 0) break;
        r.submit(slot, OP_WRITE, submitted, 1, 0, submitted);
        submitted++;
        r.wake(1);
      }
      // this thread claims too (owner 0), as the submitter does when workers are busy
      const mine = r.claim(0);
      if (mine >= 0) {
        Atomics.add(claims, r.tag(mine), 1);
        settle(mine);
      }
      for (let o = 1; o < owners; o++)
        for (let s = r.reap(o); s >= 0; s = r.reap(o)) {
          settle(s);
          byWorkers++;
        }
      await new Promise((res) => setImmediate(res));
    }
    r.stop();
    await Promise.all(
      workers.map((w) =>
        new Promise((res) => w.once('exit', res)).then(
          () => undefined,
          () => undefined,
        ),
      ),
    );
    let wrong = 0;
    for (let t = 0; t < total; t++) if (claims[t] !== 1 || reapedTags[t] !== 1) wrong++;
    expect(wrong).toBe(0);
    expect(byWorkers).toBeGreaterThan(0);
    expect(byWorkers).toBeLessThan(total);
    expect(r.unclaimed()).toBe(0);
  }, 60_000);
});
