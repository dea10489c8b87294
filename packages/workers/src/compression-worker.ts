// A compression worker (piscina task module). Each thread attaches once to the
// shared zram device, the page rings and the page arena (from workerData); its
// one long-lived task is a ring consumer: claim the oldest submitted entry with
// a CAS, run the zram path on it, publish it on this consumer's completion ring,
// and claim the next — no message per batch. With nothing to claim it spins
// briefly, then sleeps on Atomics.wait, counted in the ring's sleepers so a
// producer wakes it only then; a woken consumer that sees more work waiting
// wakes the next sleeper, so the submitter pays for one wake-up per burst. The task returns when the ring is stopped.
// Acts like a CPU doing zram I/O: the same slot, class, pool and zspage locks.

import { threadId, workerData } from 'node:worker_threads';
import { offerLifeline } from '@zsmalloc/core';
import { performance } from 'node:perf_hooks';
import { ZramDevice, type ZramShared } from '@zsmalloc/zram';
import { PageArena, type PageArenaShared } from './ring/page-arena.js';
import { PageRing, type PageRingShared } from './ring/page-ring.js';
import { runEntry } from './ring/run-entry.js';

// the watchdog learns of this thread's death through this (see core's watchdog.ts)
offerLifeline();

/** What every compression worker gets once, as piscina's workerData. */
export interface CompressionWorkerData {
  device: ZramShared;
  ring: PageRingShared;
  arena: PageArenaShared;
}

/** The one task a compression thread runs: consume the ring as `owner` until it stops. */
export interface ConsumerTask {
  owner: number;
}

export interface ConsumerResult {
  owner: number;
  threadId: number;
  cpu: number;
  pages: number;
}

const data = workerData as CompressionWorkerData;
const dev = ZramDevice.attach(data.device);
const ring = PageRing.attach(data.ring);
const arena = PageArena.attach(data.arena);

/**
 * Polls for new work this long before sleeping: a wake-up costs the producer a
 * system call and the consumer ~10 us, a page 4-8 us, so under a steady stream
 * of small requests a consumer should still be awake when the next one comes.
 */
const SPIN_MS = 0.05;
/** A sleeper re-checks the stop flag at least this often. */
const SLEEP_MS = 500;

export default function consume(task: ConsumerTask): ConsumerResult {
  const owner = task.owner;
  ring.setThread(owner, threadId);
  let done = 0;
  while (!ring.stopping()) {
    const slot = ring.claim(owner);
    if (slot >= 0) {
      // more waiting: pass the wake-up on (the submitter woke only one of us)
      if (ring.unclaimed() > 0) ring.wake(1);
      const t0 = performance.now();
      dev.beginBatch(); // one clock read for the entry's access times
      const n = runEntry(dev, ring, arena, slot);
      dev.endBatch();
      ring.account(owner, n, performance.now() - t0);
      ring.complete(owner, slot);
      done += n;
      continue;
    }
    ring.spinning(owner, true);
    const until = performance.now() + SPIN_MS;
    let found = false;
    while (!found && performance.now() < until) found = ring.unclaimed() > 0;
    ring.spinning(owner, false);
    if (found) continue;
    const seen = ring.submitSeq();
    if (ring.unclaimed() > 0) continue;
    const t0 = performance.now();
    ring.sleep(owner, seen, SLEEP_MS);
    ring.accountIdle(owner, performance.now() - t0, ring.submitSeq() !== seen);
  }
  return { owner, threadId, cpu: dev.pool.cpu, pages: done };
}
