// The swap I/O worker: one dedicated thread that writes idle / huge pages back to
// the backing file and reads written-back pages in again, in batches, apart from
// foreground I/O. Its control surface is exposed over comlink.

import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import * as Comlink from 'comlink';
import { nodeEndpoint } from './comlink-node.js';
import { holdLifeline } from '@zsmalloc/core';
import { ZramDevice, type RecompressRequest, type ZramShared } from '@zsmalloc/zram';
import { injectBackingFault } from '@zsmalloc/zram/testing';

/**
 * A backing-file fault to inject in this thread (tests only): fail reads and/or
 * writes with the given errno, on every block whose number is a multiple of
 * `blockModulo` (default 1: every block).
 */
export interface BackingFaultRule {
  read?: 'EIO' | 'ENOSPC';
  write?: 'EIO' | 'ENOSPC';
  blockModulo?: number;
}

holdLifeline((workerData as { lifeline?: MessagePort }).lifeline);
const dev = ZramDevice.attach((workerData as { device: ZramShared }).device);
const stats = {
  writebackRuns: 0,
  pagesWrittenBack: 0,
  readbackRuns: 0,
  pagesReadBack: 0,
  recompressRuns: 0,
  pagesRecompressed: 0,
};

const api = {
  writeback(mode: string): number {
    const n = dev.writeback(mode);
    stats.writebackRuns++;
    stats.pagesWrittenBack += n;
    return n;
  },
  /** Swap-in: reads written-back pages of [first, first+count) and stores them in memory again. */
  readback(first: number, count: number): number {
    let n = 0;
    for (let i = first; i < first + count && i < dev.pages; i++) if (dev.swapIn(i)) n++;
    stats.readbackRuns++;
    stats.pagesReadBack += n;
    return n;
  },
  recompress(req: RecompressRequest): number {
    const n = dev.recompress(req);
    stats.recompressRuns++;
    stats.pagesRecompressed += n;
    return n;
  },
  /** The device check after a thread's death (see ZramDevice.checkAfterDeath); false: fenced. */
  checkAfterDeath(): boolean {
    return dev.checkAfterDeath();
  },
  /** What the last check repaired, and why the device is fenced (if this thread's check fenced it). */
  repairReport(): { repaired: string; fenceReason: string } {
    return { repaired: dev.lastRepair, fenceReason: dev.fenceCause };
  },
  stats() {
    return { ...stats };
  },
  /** For tests: arms (or with null disarms) backing-file faults in this thread; the hook is per thread. */
  injectBackingFault(rule: BackingFaultRule | null): void {
    if (rule === null) return injectBackingFault(null);
    const m = rule.blockModulo ?? 1;
    injectBackingFault((op, block) => (block % m === 0 ? (rule[op] ?? null) : null));
  },
  threadInfo() {
    return { cpu: dev.pool.cpu };
  },
  close(): void {
    dev.close();
  },
};
export type SwapIoApi = typeof api;

Comlink.expose(api, nodeEndpoint(parentPort!));
