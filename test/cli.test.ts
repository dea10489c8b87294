// `zram serve` as a user runs it (a child process on a free loopback port), used
// by real NBD clients and driven by the CLI's control commands.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missing, nbd, RawClient } from './nbd-helpers.js';

const cli = new URL('../packages/workers/dist/cli.js', import.meta.url).pathname;
const has = (bin: string) => missing(bin) === null;
const dir = mkdtempSync(join(tmpdir(), 'zram-cli-'));
let server: ChildProcess;
let port = 0;

function zram(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

beforeAll(async () => {
  server = spawn(
    process.execPath,
    [
      cli,
      'serve',
      '--size',
      '256M',
      '--port',
      '0',
      '--workers',
      '2',
      '--lock-stat',
      '--backing-file',
      join(dir, 'backing.img'),
      '--mem-limit',
      '1G',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  port = await new Promise<number>((resolve, reject) => {
    let out = '';
    server.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /NBD on 127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    server.once('exit', (code) => reject(new Error(`zram serve exited with ${code}`)));
    setTimeout(() => reject(new Error('zram serve did not start')), 30_000);
  });
}, 60_000);

afterAll(async () => {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
});

describe('zram CLI', () => {
  it('prints help for every command and rejects bad flags and sizes', () => {
    for (const c of ['serve', 'stat', 'compact', 'idle', 'writeback', 'recompress', 'reset']) {
      const r = zram(c, '--help');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/^usage: zram /);
    }
    expect(zram('--help').out).toMatch(/commands:/);
    expect(zram('serve', '--size', '12Q').code).toBe(2);
    expect(zram('serve', '--size', '12Q').err).toMatch(/bad size/);
    expect(zram('serve', '--lock-mode', 'global').err).toMatch(/class or pool/);
    expect(zram('frobnicate').code).toBe(2);
    expect(zram('stat', '--port', '1').err).toMatch(/no zram server is running/);
  });

  it.skipIf(!has('nbdinfo'))('nbdinfo reports the size of the export', () => {
    const r = spawnSync('nbdinfo', ['--size', `nbd://127.0.0.1:${port}/zram0`], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(Number(r.stdout.trim())).toBe(256 << 20);
  });

  it.skipIf(!has('nbdcopy'))(
    'nbdcopy copies a mixed-content file in and out byte-identical through the service',
    () => {
      const size = 64 << 20;
      const data = Buffer.alloc(size);
      for (let i = 0; i < size / 4096; i++) {
        const page = data.subarray(i * 4096, (i + 1) * 4096);
        if (i % 4 === 1) page.fill(`page ${i} of some text that compresses; `);
        else if (i % 4 === 2)
          for (let k = 0; k < 4096; k++) page[k] = (Math.imul(i * 4096 + k, 2654435761) >>> 24) & 255;
        else if (i % 4 === 3) page.fill(i & 255);
      }
      const src = join(dir, 'src.img');
      const back = join(dir, 'back.img');
      writeFileSync(src, data);
      expect(spawnSync('nbdcopy', [src, `nbd://127.0.0.1:${port}/zram0`]).status).toBe(0);
      expect(spawnSync('nbdcopy', [`nbd://127.0.0.1:${port}/zram0`, back]).status).toBe(0);
      expect(Buffer.compare(readFileSync(back).subarray(0, size), data)).toBe(0);
    },
  );

  it.skipIf(!has('qemu-io'))('qemu-io patterns at unaligned offsets verify', () => {
    const r = spawnSync(
      'qemu-io',
      [
        '-f',
        'raw',
        `nbd://127.0.0.1:${port}/zram0`,
        '-c',
        'write -P 0x5c 100000513 70001',
        '-c',
        'read -P 0x5c 100000513 70001',
        '-c',
        'write -P 0x11 200003584 512',
        '-c',
        'read -P 0x11 200003584 512',
      ],
      { encoding: 'utf8' },
    );
    expect(r.status).toBe(0);
    expect(r.stdout + r.stderr).not.toMatch(/Pattern verification failed/);
  });

  it.skipIf(!has('fio'))("fio's nbd engine: random writes with verify=crc32c report zero errors", () => {
    const r = spawnSync(
      'fio',
      [
        '--name=verify',
        '--ioengine=nbd',
        `--uri=nbd://127.0.0.1:${port}/zram0`,
        '--rw=randwrite',
        '--bs=4k',
        '--iodepth=16',
        '--size=16M',
        '--offset=128M',
        '--verify=crc32c',
        '--do_verify=1',
        '--verify_fatal=1',
        '--verify_state_save=0',
        '--buffer_compress_percentage=50',
        '--refill_buffers',
        '--output-format=json',
      ],
      { encoding: 'utf8', cwd: dir, timeout: 120_000 },
    );
    expect(r.status).toBe(0);
    const job = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))).jobs[0];
    expect(job.error).toBe(0);
    expect(job.write.io_bytes).toBe(16 << 20);
    expect(job.read.io_bytes).toBe(16 << 20); // the verify pass read everything back
  });

  it('zram stat shows the zramctl table and the kernel stat files; control commands act on the server', async () => {
    // Stands on its own: writes 64 distinct, compressible pages through a raw NBD client first.
    const c = await RawClient.connect(port);
    await c.handshake();
    const page = Buffer.alloc(4096);
    for (let i = 0; i < 64; i++) {
      page.fill(`page ${i} of the cli stat test `);
      c.request({ type: nbd.NBD_CMD_WRITE, offset: (1024 + i) * 4096, length: 4096, cookie: i, data: page });
    }
    for (let i = 0; i < 64; i++) expect((await c.reply()).error).toBe(0);
    c.request({ type: nbd.NBD_CMD_DISC, offset: 0, length: 0 });
    c.socket.end();
    await c.whenClosed;
    const s = zram('stat', '--port', String(port), '--lock-stat');
    expect(s.code).toBe(0);
    expect(s.out).toMatch(/^NAME +ALGORITHM +DISKSIZE +DATA +COMPR +TOTAL +STREAMS\nzram0 +lz4 +256M /);
    expect(s.out).toMatch(/mm_stat: +\d+ +\d+ +\d+ +\d+ +\d+ +\d+ +\d+ +\d+ +\d+\n/);
    expect(s.out).toMatch(/io_stat: +\d+ +\d+ +\d+ +\d+\n/);
    expect(s.out).toMatch(/bd_stat: +\d+ +\d+ +\d+\n/);
    expect(s.out).toMatch(/debug_stat:\nversion: 1\n/);
    expect(s.out).toMatch(/lock_stat version 0\.4/);
    expect(zram('compact', '--port', String(port)).code).toBe(0);
    const idle = zram('idle', 'all', '--port', String(port));
    expect(idle.code).toBe(0);
    expect(Number(idle.out)).toBeGreaterThan(0);
    const wb = zram('writeback', 'idle', '--port', String(port));
    expect(wb.code).toBe(0);
    expect(Number(wb.out)).toBeGreaterThan(0);
    const after = zram('stat', '--port', String(port)).out;
    const bd = /bd_stat: +(\d+) +(\d+) +(\d+)/.exec(after)!;
    expect(Number(bd[3])).toBeGreaterThan(0);
    expect(zram('writeback', 'bogus', '--port', String(port)).code).toBe(1);
    expect(zram('reset', '--port', String(port)).code).toBe(0);
    expect(/mm_stat: +(\d+)/.exec(zram('stat', '--port', String(port)).out)![1]).toBe('0');
  });
});
