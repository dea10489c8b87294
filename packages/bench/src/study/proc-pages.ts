// Reads the anonymous pages of a running process: parses /proc/PID/maps for
// private, readable mappings with no backing file (anonymous, [heap], [stack],
// [anon:...]) and reads them page by page from /proc/PID/mem. Reading another
// process's memory needs ptrace access (same user and Yama ptrace_scope 0, or
// CAP_SYS_PTRACE); when it is refused this says why and reads nothing. Only
// reads: the target is never stopped, written or signalled.

import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { PAGE_SIZE } from '@zsmalloc/core';

export interface AnonMapping {
  start: number;
  end: number;
  name: string;
}

/** A process whose memory can't be read, with the reason in words. */
export class ProcReadError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ProcReadError';
  }
}

/** Parses /proc/PID/maps text: the private, readable mappings with no file behind them. */
export function anonMappings(maps: string): AnonMapping[] {
  const out: AnonMapping[] = [];
  for (const line of maps.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+)\s+(\S{4})\s+\S+\s+\S+\s+(\d+)\s*(.*)$/.exec(line.trim());
    if (m === null) continue;
    const [, lo, hi, perms, inode, rawName] = m;
    const name = (rawName ?? '').trim();
    if (perms![0] !== 'r' || perms![3] !== 'p' || inode !== '0') continue;
    if (name !== '' && name !== '[heap]' && name !== '[stack]' && !name.startsWith('[anon:')) continue;
    out.push({ start: Number.parseInt(lo!, 16), end: Number.parseInt(hi!, 16), name: name || '(anonymous)' });
  }
  return out;
}

function ptraceScope(): string {
  try {
    return readFileSync('/proc/sys/kernel/yama/ptrace_scope', 'utf8').trim();
  } catch {
    return 'unknown (no Yama)';
  }
}

function explain(pid: number, e: unknown, what: string): ProcReadError {
  const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
  if (code === 'ENOENT' || code === 'ESRCH') return new ProcReadError(code, `process ${pid} does not exist (${what})`);
  if (code === 'EACCES' || code === 'EPERM')
    return new ProcReadError(
      code,
      `no permission to read process ${pid}'s memory (${what}: ${code}). Reading /proc/PID/mem needs ptrace access: ` +
        `the same user and kernel.yama.ptrace_scope 0 (it is ${ptraceScope()}), or CAP_SYS_PTRACE (e.g. run as root). Nothing was read or changed.`,
    );
  return new ProcReadError(code, `reading process ${pid} failed (${what}): ${String((e as Error).message ?? e)}`);
}

export interface ProcPages {
  pid: number;
  mappings: AnonMapping[];
  /** The pages read, back to back. */
  bytes: Uint8Array;
  pages: number;
  /** Pages the mappings hold in all (some may be beyond maxPages or unreadable). */
  pagesMapped: number;
  /** Pages whose read failed (e.g. a guard page); skipped. */
  unreadable: number;
}

/** Reads up to `maxPages` anonymous pages of process `pid`; throws ProcReadError when it can't. */
export function readAnonPages(pid: number, maxPages: number): ProcPages {
  if (!Number.isInteger(pid) || pid < 1)
    throw new ProcReadError('EINVAL', `--pid must be a positive integer, got ${pid}`);
  let maps: string;
  try {
    maps = readFileSync(`/proc/${pid}/maps`, 'utf8');
  } catch (e) {
    throw explain(pid, e, `/proc/${pid}/maps`);
  }
  const mappings = anonMappings(maps);
  let fd: number;
  try {
    fd = openSync(`/proc/${pid}/mem`, 'r');
  } catch (e) {
    throw explain(pid, e, `/proc/${pid}/mem`);
  }
  const pagesMapped = mappings.reduce((a, m) => a + (m.end - m.start) / PAGE_SIZE, 0);
  const cap = Math.min(maxPages, pagesMapped);
  const bytes = new Uint8Array(cap * PAGE_SIZE);
  let pages = 0;
  let unreadable = 0;
  let firstError: unknown = null;
  try {
    outer: for (const m of mappings) {
      for (let addr = m.start; addr < m.end; addr += PAGE_SIZE) {
        if (pages >= cap) break outer;
        try {
          const n = readSync(fd, bytes, pages * PAGE_SIZE, PAGE_SIZE, addr);
          if (n === PAGE_SIZE) pages++;
          else unreadable++;
        } catch (e) {
          firstError ??= e;
          unreadable++;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  if (pages === 0 && firstError !== null) throw explain(pid, firstError, `/proc/${pid}/mem`);
  return { pid, mappings, bytes: bytes.subarray(0, pages * PAGE_SIZE), pages, pagesMapped, unreadable };
}
