// A compression worker (piscina task module): attaches to the shared zram device
// and staging area once, then compresses or decompresses whole batches of pages
// straight between a staging slot and the pool. Acts like a CPU doing zram I/O:
// it takes the same slot, class, pool and zspage locks as every other thread.

import { threadId } from 'node:worker_threads';
import { PAGE_SIZE, ZsError } from '@zsmalloc/core';
import { ZramDevice, ZramError, type ZramShared } from '@zsmalloc/zram';

export interface BatchTask {
  op: 'write' | 'read';
  device: ZramShared;
  staging: SharedArrayBuffer;
  indices: SharedArrayBuffer;
  batchPages: number;
  slot: number;
  /** Pages staged in the slot; their device indexes are in `indices`. */
  count: number;
}

export interface PageError { k: number; code: string; message: string }

export interface BatchResult {
  threadId: number;
  cpu: number;
  /** Pages of the batch that failed (by position in the slot), each with its error. */
  errors: PageError[];
}

let dev: ZramDevice | null = null;
let devShared: ZramShared | null = null;
let pageViews: Uint8Array[] = [];
let stagingSab: SharedArrayBuffer | null = null;
let indexSab: SharedArrayBuffer | null = null;
let indices: Int32Array<ArrayBufferLike> = new Int32Array(0);

function setup(task: BatchTask): void {
  if (devShared !== task.device) {
    dev?.close();
    dev = ZramDevice.attach(task.device);
    devShared = task.device;
  }
  if (stagingSab !== task.staging) {
    stagingSab = task.staging;
    const n = task.staging.byteLength / PAGE_SIZE;
    // one view per staging page, made once: the hot loop allocates nothing
    pageViews = Array.from({ length: n }, (_, i) => new Uint8Array(task.staging, i * PAGE_SIZE, PAGE_SIZE));
  }
  if (indexSab !== task.indices) {
    indexSab = task.indices;
    indices = new Int32Array(task.indices);
  }
}

function codeOf(e: unknown): string {
  if (e instanceof ZsError || e instanceof ZramError) return String(e.code);
  return e instanceof RangeError ? 'ERANGE' : 'EIO';
}

export default function run(task: BatchTask): BatchResult {
  setup(task);
  const d = dev!;
  const base = task.slot * task.batchPages;
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
