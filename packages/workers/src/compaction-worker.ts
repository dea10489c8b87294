// The compaction/migration worker (kcompactd and the zsmalloc shrinker in one
// thread): compacts size classes when the pages compaction could free pass a
// threshold, and on demand; runs frame compaction when a high-order allocation
// needs it. It takes the same locks as the compression workers. Control surface
// over comlink.

import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import * as Comlink from 'comlink';
import { nodeEndpoint } from './comlink-node.js';
import { compactFrames, holdLifeline } from '@zsmalloc/core';
import { ZramDevice, type ZramShared } from '@zsmalloc/zram';

interface Data {
  device: ZramShared;
  thresholdPages: number;
  intervalMs: number;
  enabled: boolean;
}
const data = workerData as Data;
holdLifeline((workerData as { lifeline?: MessagePort }).lifeline);
const dev = ZramDevice.attach(data.device);
const stats = { checks: 0, runs: 0, pagesFreed: 0, frameCompactions: 0, framesMigrated: 0, lastRunMs: 0 };
let threshold = data.thresholdPages;
let timer: NodeJS.Timeout | null = null;

function compactNow(): number {
  const t0 = performance.now();
  // objects reserved in per-CPU caches would pin their zspages: give them back first
  dev.pool.drainCaches();
  const freed = dev.compact();
  stats.runs++;
  stats.pagesFreed += freed;
  stats.lastRunMs = performance.now() - t0;
  return freed;
}

function tick(): void {
  stats.checks++;
  if (dev.pool.compactable() >= threshold) compactNow();
}

function start(intervalMs: number): void {
  if (timer) clearInterval(timer);
  timer = setInterval(tick, intervalMs);
}
if (data.enabled) start(data.intervalMs);

const api = {
  compact: compactNow,
  /** Frame compaction until a free block of `order` exists; returns frames migrated. */
  frameCompact(order: number): { migrated: number; success: boolean } {
    const r = compactFrames(dev.pool, order);
    stats.frameCompactions++;
    stats.framesMigrated += r.migrated;
    return { migrated: r.migrated, success: r.success };
  },
  configure(opts: { thresholdPages?: number; intervalMs?: number; enabled?: boolean }): void {
    if (opts.thresholdPages !== undefined) threshold = opts.thresholdPages;
    if (opts.enabled === false) {
      if (timer) clearInterval(timer);
      timer = null;
    } else if (opts.enabled === true || opts.intervalMs !== undefined) start(opts.intervalMs ?? data.intervalMs);
  },
  stats() {
    return { ...stats, thresholdPages: threshold, running: timer !== null };
  },
  threadInfo() {
    return { cpu: dev.pool.cpu };
  },
  close(): void {
    if (timer) clearInterval(timer);
    timer = null;
    dev.close();
  },
};
export type CompactionApi = typeof api;

Comlink.expose(api, nodeEndpoint(parentPort!));
