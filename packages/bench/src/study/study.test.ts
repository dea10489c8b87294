// The study's pieces that need no long run: the /proc maps parser, reading this
// very process's anonymous pages, the clear refusal for a process that can't be
// read, and the fragmentation and real-memory experiments on tiny sizes.

import { describe, expect, it } from 'vitest';
import { fragmentation, realMemory, type StudyOptions } from './experiments.js';
import { anonMappings, ProcReadError, readAnonPages } from './proc-pages.js';

const MAPS = `55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0                          [heap]
7f1a2c000000-7f1a2c021000 rw-p 00000000 00:00 0
7f1a2c021000-7f1a30000000 ---p 00000000 00:00 0
7f1a30000000-7f1a30002000 r--p 00000000 08:01 1234                       /usr/lib/libc.so.6
7f1a30002000-7f1a30004000 rw-p 00002000 08:01 1234                       /usr/lib/libc.so.6
7f1a31000000-7f1a31001000 rw-s 00000000 00:05 99                         /dev/shm/x
7ffd1e000000-7ffd1e021000 rw-p 00000000 00:00 0                          [stack]
7ffd1e100000-7ffd1e101000 r--p 00000000 00:00 0                          [anon:v8]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]`;

const opts = (over: Partial<StudyOptions>): StudyOptions => ({
  smoke: true,
  seconds: 0.2,
  repeat: 2,
  workers: [1],
  lockdep: true,
  pid: null,
  maxPages: 256,
  kernel: false,
  progress: false,
  log: () => undefined,
  ...over,
});

describe("study: reading a process's anonymous memory", () => {
  it('keeps private readable mappings with no file: heap, anonymous, stack, [anon:]', () => {
    const m = anonMappings(MAPS);
    expect(m.map((x) => x.name)).toEqual(['[heap]', '(anonymous)', '[stack]', '[anon:v8]']);
    expect(m[0]).toEqual({ start: 0x55d0c0a00000, end: 0x55d0c0a21000, name: '[heap]' });
  });

  it("reads this process's own anonymous pages", () => {
    const p = readAnonPages(process.pid, 64);
    expect(p.pages).toBeGreaterThan(0);
    expect(p.pages).toBeLessThanOrEqual(64);
    expect(p.bytes.length).toBe(p.pages * 4096);
    expect(p.mappings.length).toBeGreaterThan(0);
  });

  it('a process that does not exist is refused with the reason, nothing read', () => {
    let err: unknown;
    try {
      readAnonPages(2 ** 30, 16);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ProcReadError);
    expect((err as ProcReadError).message).toMatch(/does not exist/);
    expect(() => readAnonPages(0, 16)).toThrow(ProcReadError);
  });

  it('real-memory replays the pages: compression ratio, same-filled and huge shares, used ratio around compaction', async () => {
    const r = await realMemory(opts({ pid: process.pid, maxPages: 512 }));
    const f = r.figures as Record<string, number>;
    expect(f.pages).toBeGreaterThan(0);
    expect(f.compressionRatio).toBeGreaterThan(0);
    for (const k of ['sameFilledShare', 'hugeShare', 'usedRatioBeforeCompaction', 'usedRatioAfterCompaction']) {
      expect(f[k]).toBeGreaterThanOrEqual(0);
      expect(f[k]).toBeLessThanOrEqual(1);
    }
    expect(r.figures.kernel).toEqual({ ran: false, reason: 'turned off (--no-kernel)' });
  });
});

describe('study: fragmentation', () => {
  it('reports buddyinfo before and after frame migration for each repeat, with a verdict', async () => {
    const r = await fragmentation(opts({}));
    const bi = r.figures.buddyinfo as { before: number[]; after: number[] }[];
    expect(bi.length).toBe(2);
    for (const b of bi) {
      expect(b.before.length).toBe(11);
      expect(b.after.length).toBe(11);
    }
    const blocks = r.figures.blocksAfter as { samples: number[] };
    expect(blocks.samples.length).toBe(2);
    expect(r.comparisons.length).toBe(1);
    expect(r.comparisons[0]!.verdict).toMatch(/free blocks of order >= 3/);
  });
});
