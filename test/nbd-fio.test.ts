// fio's nbd engine (libnbd) against the in-process NBD server: random writes
// with crc32c verification (fio reads every block back and checks its
// header and checksum), at queue depth 16, then several jobs at once (one
// connection each) with mixed block sizes. No timing assertions.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missing, type RunResult, run, serve, type Served } from './nbd-helpers.js';

const skip = missing('fio');
const SIZE = 64 << 20;

interface FioJob {
  jobname: string;
  error: number;
  write: { io_bytes: number; total_ios: number; iops: number };
  read: { io_bytes: number; total_ios: number; iops: number };
}

async function fio(args: string[]): Promise<FioJob[]> {
  // In a scratch directory: fio writes verify state files into its cwd when a job ends.
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'nbd-fio-'));
  let r: RunResult;
  try {
    r = await run('fio', ['--output-format=json', '--verify_state_save=0', ...args], { timeoutMs: 40_000, cwd });
  } finally {
    fs.rmSync(cwd, { recursive: true, force: true });
  }
  // The nbd engine prints "fio: connected to NBD server" before the JSON.
  const at = r.stdout.indexOf('{');
  if (r.code !== 0 || at < 0) throw new Error(`fio exited ${r.code ?? r.signal}\n${r.stdout}\n${r.stderr}`);
  const out = JSON.parse(r.stdout.slice(at)) as { jobs: FioJob[] };
  return out.jobs;
}

describe.skipIf(skip !== null)(skip ?? 'fio --ioengine=nbd', () => {
  let s: Served;
  beforeAll(async () => {
    s = await serve({ disksize: SIZE });
  });
  afterAll(async () => {
    await s?.close();
  });

  it('random 4k writes at iodepth 16 with verify=crc32c: zero errors', async () => {
    const jobs = await fio([
      '--name=randwrite-verify',
      '--ioengine=nbd',
      `--uri=${s.uri}`,
      '--rw=randwrite',
      '--bs=4k',
      '--size=16m',
      '--iodepth=16',
      '--verify=crc32c',
      '--do_verify=1',
      '--verify_fatal=1',
      '--randseed=42',
    ]);
    expect(jobs).toHaveLength(1);
    const j = jobs[0]!;
    expect(j.error).toBe(0);
    expect(j.write.io_bytes).toBe(16 << 20);
    expect(j.read.io_bytes).toBe(16 << 20); // the verify pass read everything back
  });

  it('four jobs at once (four connections), mixed block sizes, verify=crc32c: zero errors', async () => {
    const jobs = await fio([
      '--name=multi',
      '--ioengine=nbd',
      `--uri=${s.uri}`,
      '--rw=randwrite',
      '--bsrange=512-64k',
      '--bs_unaligned=1',
      '--size=8m',
      '--offset_increment=12m',
      '--numjobs=4',
      '--iodepth=8',
      '--verify=crc32c',
      '--do_verify=1',
      '--verify_fatal=1',
      '--randseed=7',
    ]);
    expect(jobs).toHaveLength(4);
    for (const j of jobs) {
      expect(j.error).toBe(0);
      // With random block sizes the random map cannot tile 8 MiB exactly.
      expect(j.write.io_bytes).toBeGreaterThan(7 << 20);
      expect(j.read.io_bytes).toBe(j.write.io_bytes); // every block written was read back and checked
    }
    s.dev.verify();
  });
});
