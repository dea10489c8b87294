// Baselines measured in the same run, on identical pages: a naive JavaScript
// compressed store (a Map of page index to a copy of the lz4 output) for
// throughput and real memory (heap + external bytes); the bare zram device on
// this thread (no service) on the same pages; a zbud-style allocator for
// density on the very object sizes zram stored; and the kernel's own zram0
// (service/kernel-zram.ts) when it is unused and writable, else the reason.

import v8 from 'node:v8';
import vm from 'node:vm';
import { PAGE_SIZE } from '@zsmalloc/core';
import { createCodec, ZramDevice } from '@zsmalloc/zram';
import { benchKernelZram } from '../service/kernel-zram.js';
import type { StressOptions } from './options.js';
import { PageBank } from './workload.js';
import { zbudPages, type ZbudResult } from './zbud.js';

export interface NaiveStoreResult {
  pages: number;
  writeMbPerSec: number;
  readMbPerSec: number;
  /** Sum of the stored lz4 outputs. */
  payloadBytes: number;
  heapDelta: number;
  externalDelta: number;
  arrayBuffersDelta: number;
  /** heapUsed + external growth while the store held the pages: its real memory. */
  realBytes: number;
  /** Whether a forced GC (node --expose-gc) settled the numbers. */
  gcForced: boolean;
}

export interface DeviceResult {
  pages: number;
  writeMbPerSec: number;
  readMbPerSec: number;
  comprDataSize: number;
  memUsedTotal: number;
  samePages: number;
  hugePages: number;
}

export interface DensityResult {
  /** Objects zram allocated (same-filled pages store none). */
  objects: number;
  objectBytes: number;
  zsmallocPages: number;
  zbud: ZbudResult;
  /** zbud pages / zsmalloc pages (above 1: zbud needs more memory). */
  zbudOverZsmalloc: number;
  zsmallocUsedRatio: number;
  zbudUsedRatio: number;
}

export type KernelSide =
  | {
      ran: true;
      pages: number;
      writeMbPerSec: number;
      readMbPerSec: number;
      comprDataSize: number;
      memUsedTotal: number;
      memUsedDeviceOverKernel: number;
      comprDeviceOverKernel: number;
      verified: boolean;
    }
  | { ran: false; reason: string };

export interface BaselinesResult {
  pages: number;
  naive: NaiveStoreResult;
  device: DeviceResult;
  density: DensityResult;
  kernel: KernelSide;
  /** naive real bytes / zram mem_used_total. */
  naiveOverZram: number;
}

/** A forced full GC so memory deltas count live bytes only (the --expose-gc flag set at run time). */
function findGc(): (() => void) | undefined {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g !== undefined) return g;
  try {
    v8.setFlagsFromString('--expose-gc');
    return vm.runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}
const gc = findGc();

/** Full GCs with turns of the event loop between, so freed backing stores are really gone. */
async function settle(): Promise<void> {
  if (gc === undefined) return;
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function naiveStore(bytes: Uint8Array, pages: number): Promise<NaiveStoreResult> {
  const codec = createCodec('lz4');
  await settle();
  const m0 = process.memoryUsage();
  const store = new Map<number, Uint8Array>();
  const t0 = performance.now();
  let payload = 0;
  for (let i = 0; i < pages; i++) {
    const out = codec.compress(bytes.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE)).slice();
    payload += out.length;
    store.set(i, out);
  }
  const w = (performance.now() - t0) / 1000;
  await settle();
  const m1 = process.memoryUsage();
  const page = new Uint8Array(PAGE_SIZE);
  let sink = 0;
  const t1 = performance.now();
  for (let i = 0; i < pages; i++) {
    const c = store.get(i)!;
    codec.decompress(c, c.length, page);
    sink ^= page[i & 4095]!;
  }
  const r = (performance.now() - t1) / 1000;
  if (!Number.isFinite(sink) || store.size !== pages) throw new Error('naive store lost pages');
  const mb = (pages * PAGE_SIZE) / (1 << 20);
  const heapDelta = m1.heapUsed - m0.heapUsed;
  const externalDelta = m1.external - m0.external;
  return {
    pages,
    writeMbPerSec: mb / w,
    readMbPerSec: mb / r,
    payloadBytes: payload,
    heapDelta,
    externalDelta,
    arrayBuffersDelta: m1.arrayBuffers - m0.arrayBuffers,
    realBytes: heapDelta + externalDelta,
    gcForced: gc !== undefined,
  };
}

function bareDevice(bytes: Uint8Array, pages: number): { result: DeviceResult; sizes: number[] } {
  const dev = ZramDevice.create({ disksize: pages * PAGE_SIZE, algorithm: 'lz4' });
  try {
    const t0 = performance.now();
    for (let i = 0; i < pages; i++) dev.writePage(i, bytes.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
    const w = (performance.now() - t0) / 1000;
    const page = new Uint8Array(PAGE_SIZE);
    const t1 = performance.now();
    for (let i = 0; i < pages; i++) dev.readPage(i, page);
    const r = (performance.now() - t1) / 1000;
    const sizes: number[] = [];
    for (let i = 0; i < pages; i++) {
      const s = dev.slotState(i);
      if (s.allocated && s.size > 0) sizes.push(s.size);
    }
    const mm = dev.statValues().mm;
    const mb = (pages * PAGE_SIZE) / (1 << 20);
    return {
      result: {
        pages,
        writeMbPerSec: mb / w,
        readMbPerSec: mb / r,
        comprDataSize: mm.comprDataSize,
        memUsedTotal: mm.memUsedTotal,
        samePages: mm.samePages,
        hugePages: mm.hugePages,
      },
      sizes,
    };
  } finally {
    dev.close();
  }
}

export async function runBaselines(opts: StressOptions, log: (s: string) => void): Promise<BaselinesResult> {
  // the kernel comparison writes in 64-page requests on two halves: a multiple of 128 pages
  const pages = Math.ceil(opts.baselinePages / 128) * 128;
  const bank = new PageBank(pages, 1, opts.mix, 77);
  const bytes = bank.bytes.subarray(0, pages * PAGE_SIZE);
  const naive = await naiveStore(bytes, pages);
  const { result: device, sizes } = bareDevice(bytes, pages);
  const zb = zbudPages(sizes);
  const objectBytes = sizes.reduce((a, b) => a + b, 0);
  const zsPages = device.memUsedTotal / PAGE_SIZE;
  const density: DensityResult = {
    objects: sizes.length,
    objectBytes,
    zsmallocPages: zsPages,
    zbud: zb,
    zbudOverZsmalloc: zb.pages / zsPages,
    zsmallocUsedRatio: objectBytes / device.memUsedTotal,
    zbudUsedRatio: objectBytes / (zb.pages * PAGE_SIZE),
  };
  let kernel: KernelSide;
  if (!opts.kernel) kernel = { ran: false, reason: 'turned off (--no-kernel)' };
  else {
    try {
      const k = await benchKernelZram({ bytes, requestPages: 64, passes: 1, algorithm: 'lz4', log });
      if (!k.ran) kernel = { ran: false, reason: k.reason };
      else {
        const mb = (pages * PAGE_SIZE) / (1 << 20);
        kernel = {
          ran: true,
          pages,
          writeMbPerSec: mb / k.result.write1[0]!,
          readMbPerSec: mb / k.result.read1[0]!,
          comprDataSize: k.result.mm.comprDataSize,
          memUsedTotal: k.result.mm.memUsedTotal,
          memUsedDeviceOverKernel: device.memUsedTotal / k.result.mm.memUsedTotal,
          comprDeviceOverKernel: device.comprDataSize / k.result.mm.comprDataSize,
          verified: k.result.verified,
        };
      }
    } catch (e) {
      kernel = { ran: false, reason: `failed: ${e instanceof Error ? e.message : String(e)}` };
    }
  }
  return { pages, naive, device, density, kernel, naiveOverZram: naive.realBytes / device.memUsedTotal };
}
