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
  batchPages: number;
  slot: number;
  first: number;
  count: number;
}

export interface BatchResult {
  threadId: number;
  cpu: number;
  done: number;
  /** The first page that failed, with its error, or null. */
  error: { page: number; name: string; code: string; message: string } | null;
}

let dev: ZramDevice | null = null;
let devShared: ZramShared | null = null;
let pageViews: Uint8Array[] = [];
let stagingSab: SharedArrayBuffer | null = null;

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
}

export default function run(task: BatchTask): BatchResult {
  setup(task);
  const d = dev!;
  const base = task.slot * task.batchPages;
  let done = 0;
  try {
    if (task.op === 'write') {
      for (; done < task.count; done++) d.writePage(task.first + done, pageViews[base + done]!);
    } else {
      for (; done < task.count; done++) d.readPage(task.first + done, pageViews[base + done]!);
    }
    return { threadId, cpu: d.pool.cpu, done, error: null };
  } catch (e) {
    const err = e as Error & { code?: string };
    const code = e instanceof ZsError || e instanceof ZramError ? String(err.code) : e instanceof RangeError ? 'ERANGE' : 'EIO';
    return { threadId, cpu: d.pool.cpu, done, error: { page: task.first + done, name: err.name, code, message: err.message } };
  }
}
