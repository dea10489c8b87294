// `zram serve --algorithm zstd --level --dict`, `zram algorithm-params` and
// `zram train-dict` as a user runs them: a dictionary trained from a sample
// file serves a zstd device, stat shows the parameters, malformed parameter
// strings are refused with EINVAL, and a dictionary can be trained from pages
// read back from the running device.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fillPage, swapLikeKind } from '../packages/zram/dist/pages.js';
import { missing } from './nbd-helpers.js';

const cli = new URL('../packages/workers/dist/cli.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'zram-zstd-cli-'));
const dict = join(dir, 'swap.dict');
let server: ChildProcess | undefined;
let port = 0;

function zram(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

function swapLike(first: number, n: number): Buffer {
  const b = Buffer.alloc(n * 4096);
  for (let i = 0; i < n; i++) fillPage(b.subarray(i * 4096, (i + 1) * 4096), swapLikeKind(first + i), first + i + 1);
  return b;
}

beforeAll(async () => {
  writeFileSync(join(dir, 'sample.bin'), swapLike(10_000, 400));
  const t = zram('train-dict', '--sample', join(dir, 'sample.bin'), '--out', dict, '--dict-size', '16K');
  expect(t.code, t.err).toBe(0);
  server = spawn(
    process.execPath,
    [
      cli,
      'serve',
      '--size',
      '64M',
      '--port',
      '0',
      '--workers',
      '1',
      '--algorithm',
      'zstd',
      '--level',
      '3',
      '--dict',
      dict,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  port = await new Promise<number>((resolve, reject) => {
    let out = '';
    server!.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /NBD on 127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    server!.once('exit', (code) => reject(new Error(`zram serve exited with ${code}`)));
    setTimeout(() => reject(new Error('zram serve did not start')), 30_000);
  });
}, 90_000);

afterAll(async () => {
  if (server) {
    server.kill('SIGTERM');
    await new Promise((r) => server!.once('exit', r));
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('zram CLI with zstd', () => {
  it('train-dict writes a new owner-only dictionary and refuses to overwrite one', () => {
    expect(statSync(dict).size).toBeLessThanOrEqual(16 * 1024);
    expect(statSync(dict).size).toBeGreaterThan(8 * 1024);
    expect(statSync(dict).mode & 0o777).toBe(0o600);
    const again = zram('train-dict', '--sample', join(dir, 'sample.bin'), '--out', dict);
    expect(again.code).not.toBe(0);
    expect(again.err).toMatch(/EEXIST|exists/);
  });

  it('stat shows the algorithm and its parameters', () => {
    const r = zram('stat', '--port', String(port));
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/zram0\s+zstd/);
    expect(r.out).toContain(`#0: zstd level=3 dict=${dict}`);
  });

  it('algorithm-params refuses malformed strings with EINVAL and changes nothing', () => {
    for (const bad of [
      ['level'],
      ['level=x'],
      ['priority=9', 'level=1'],
      ['colour=red'],
      ['dict=' + join(dir, 'none')],
    ]) {
      const r = zram('algorithm-params', ...bad, '--port', String(port));
      expect(r.code, bad.join(' ')).not.toBe(0);
      expect(r.err, bad.join(' ')).toMatch(/EINVAL|ENOENT|does not exist/);
    }
    expect(zram('stat', '--port', String(port)).out).toContain(`#0: zstd level=3 dict=${dict}`);
  });

  it('algorithm-params re-initializes an empty device with the new level', () => {
    const r = zram('algorithm-params', 'algo=zstd', 'level=7', `dict=${dict}`, '--port', String(port));
    expect(r.code, r.err).toBe(0);
    expect(zram('stat', '--port', String(port)).out).toContain(`#0: zstd level=7 dict=${dict}`);
  });

  it.skipIf(missing('nbdcopy') !== null)('pages written over NBD read back exactly, and train a dictionary', () => {
    const data = swapLike(0, 512);
    writeFileSync(join(dir, 'data.bin'), data);
    const w = spawnSync('nbdcopy', [join(dir, 'data.bin'), `nbd://127.0.0.1:${port}/zram0`], { encoding: 'utf8' });
    expect(w.status, w.stderr).toBe(0);
    const r = spawnSync('nbdcopy', [`nbd://127.0.0.1:${port}/zram0`, join(dir, 'back.bin')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const back = readFileSync(join(dir, 'back.bin'));
    expect(Buffer.compare(back.subarray(0, data.length), data)).toBe(0);
    // a device holding data refuses new parameters
    const busy = zram('algorithm-params', 'level=1', '--port', String(port));
    expect(busy.err).toMatch(/EBUSY/);
    const out = join(dir, 'from-device.dict');
    const t = zram('train-dict', '--pages', '200', '--out', out, '--port', String(port));
    expect(t.code, t.err).toBe(0);
    expect(existsSync(out)).toBe(true);
    expect(t.out).toMatch(/from 200 sample pages/);
  });
});
