// A compression worker (piscina task module): attaches to the shared zram device
// and staging area once (from workerData), then compresses or decompresses whole batches of pages
// straight between a staging slot and the pool. Acts like a CPU doing zram I/O:
// it takes the same slot, class, pool and zspage locks as every other thread.

import { threadId, workerData } from 'node:worker_threads';
import { PAGE_SIZE, ZsError } from '@zsmalloc/core';
import { ZramDevice, ZramError, type ZramShared } from '@zsmalloc/zram';

/** What every compression worker gets once, as piscina's workerData. */
export interface CompressionWorkerData {
  device: ZramShared;
  staging: SharedArrayBuffer;
  indices: SharedArrayBuffer;
  batchPages: number;
}

/** One task: a staging slot and how many pages are staged in it (no page bytes, no buffers). */
export interface BatchTask {
  op: 'write' | 'read';
  slot: number;
  /** Pages staged in the slot; their device indexes are in `indices`. */
  count: number;
}

export interface PageError {
  k: number;
  code: string;
  message: string;
}

export interface BatchResult {
  threadId: number;
  cpu: number;
  /** Pages of the batch that failed (by position in the slot), each with its error. */
  errors: PageError[];
}

// Attached once per thread: the device, one view per staging page (the hot loop
// allocates nothing) and the staged page indexes.
const data = workerData as CompressionWorkerData;
const dev = ZramDevice.attach(data.device);
const pageViews = Array.from(
  { length: data.staging.byteLength / PAGE_SIZE },
  (_, i) => new Uint8Array(data.staging, i * PAGE_SIZE, PAGE_SIZE),
);
const indices = new Int32Array(data.indices);

function codeOf(e: unknown): string {
  if (e instanceof ZsError || e instanceof ZramError) return String(e.code);
  return e instanceof RangeError ? 'ERANGE' : 'EIO';
}

export default function run(task: BatchTask): BatchResult {
  const d = dev;
  const base = task.slot * data.batchPages;
  const errors: PageError[] = [];
  const write = task.op === 'write';
  for (let k = 0; k < task.count; k++) {
    try {
      if (write) d.writePage(indices[base + k]!, pageViews[base + k]!);
      else d.readPage(indices[base + k]!, pageViews[base + k]!);
    } catch (e) {
      errors.push({ k, code: codeOf(e), message: (e as Error).message });
    }
  }
  return { threadId, cpu: d.pool.cpu, errors };
}
