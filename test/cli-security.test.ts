// `zram serve` as a user runs it, locked down: the control socket comes out
// 0600 in a private 0700 directory even under umask 000; a control path that
// holds something else fails startup and is left alone; the CLI will not talk
// to another user's socket; --unix and --tls require serve real clients; a
// non-loopback --host is refused without TLS; a symlinked backing file is
// refused.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missing, runOk } from './nbd-helpers.js';

const cli = new URL('../packages/workers/dist/cli.js', import.meta.url).pathname;
let dir = '';
let runtime = '';
const servers: ChildProcess[] = [];

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zram-cli-sec-'));
  runtime = path.join(dir, 'run'); // $XDG_RUNTIME_DIR for the servers started here
  fs.mkdirSync(runtime, { mode: 0o700 });
});

afterAll(async () => {
  for (const s of servers) {
    if (s.exitCode === null && s.signalCode === null) {
      s.kill('SIGTERM');
      await new Promise((r) => s.once('exit', r));
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

const env = () => ({ ...process.env, XDG_RUNTIME_DIR: runtime });

function zram(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000, env: env() });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** Starts `zram serve` under umask 000 (the most permissive); resolves with its banner line. */
function serve(...args: string[]): Promise<{ proc: ChildProcess; banner: string; stderr: () => string }> {
  const quoted = [process.execPath, cli, 'serve', '--size', '16M', '--workers', '1', ...args]
    .map((a) => `'${a.replace(/'/g, "'\\''")}'`)
    .join(' ');
  const proc = spawn('sh', ['-c', `umask 000; exec ${quoted}`], { stdio: ['ignore', 'pipe', 'pipe'], env: env() });
  servers.push(proc);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('zram0:'));
      if (line) resolve({ proc, banner: line, stderr: () => err });
    });
    proc.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
    });
    proc.once('exit', (code) => reject(new Error(`zram serve exited with ${code}: ${err}`)));
  });
}

async function stop(proc: ChildProcess): Promise<void> {
  proc.kill('SIGTERM');
  if (proc.exitCode === null) await new Promise((r) => proc.once('exit', r));
}

describe('zram serve: control channel', () => {
  it('creates the control socket 0600 in a private 0700 directory even under umask 000', async () => {
    const { proc, banner } = await serve('--port', '0');
    const port = Number(/NBD on 127\.0\.0\.1:(\d+)/.exec(banner)![1]);
    const ctl = path.join(runtime, 'zram', `nbd-${port}.sock`);
    expect(banner).toContain(`control ${ctl}`);
    expect(fs.statSync(path.join(runtime, 'zram')).mode & 0o777).toBe(0o700);
    const st = fs.lstatSync(ctl);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    // The CLI finds it from the port.
    const s = zram('stat', '--port', String(port));
    expect(s.code).toBe(0);
    expect(s.out).toMatch(/^NAME +ALGORITHM/);
    expect(s.out).toMatch(/nbd: +connections 0 refused 0 handshake_timeouts 0 held_bytes 0/);
    await stop(proc);
    expect(fs.existsSync(ctl)).toBe(false);
  });

  it('fails to start, deleting nothing, when the control path is a regular file or a symlink', () => {
    const file = path.join(dir, 'notes.txt');
    fs.writeFileSync(file, 'precious');
    const r = zram('serve', '--size', '16M', '--workers', '1', '--port', '0', '--control', file);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/not a socket; leaving it alone/);
    expect(fs.readFileSync(file, 'utf8')).toBe('precious');
    const link = path.join(dir, 'ctl-link');
    fs.symlinkSync(file, link);
    const l = zram('serve', '--size', '16M', '--workers', '1', '--port', '0', '--control', link);
    expect(l.code).toBe(1);
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(fs.readFileSync(file, 'utf8')).toBe('precious');
  });

  it('refuses a private directory that is open to others or not ours', () => {
    const loose = path.join(dir, 'loose');
    fs.mkdirSync(path.join(loose, 'zram'), { recursive: true });
    fs.chmodSync(path.join(loose, 'zram'), 0o755);
    const r = spawnSync(process.execPath, [cli, 'stat', '--port', '10809'], {
      encoding: 'utf8',
      env: { ...process.env, XDG_RUNTIME_DIR: loose },
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/open to other users/);
    if (process.getuid?.() !== 0) return; // only root can hand a directory to another user
    const theirs = path.join(dir, 'theirs');
    fs.mkdirSync(path.join(theirs, 'zram'), { recursive: true, mode: 0o700 });
    fs.chownSync(path.join(theirs, 'zram'), 65534, 65534);
    const t = spawnSync(process.execPath, [cli, 'stat', '--port', '10809'], {
      encoding: 'utf8',
      env: { ...process.env, XDG_RUNTIME_DIR: theirs },
    });
    expect(t.status).toBe(1);
    expect(t.stderr).toMatch(/belongs to uid 65534, not to us; refusing to use it/);
  });

  it.skipIf(process.getuid?.() !== 0)("the CLI refuses to talk to another user's socket", async () => {
    // Only root can hand a socket to another user; the server side of it is a plain listener.
    const p = path.join(dir, 'theirs.sock');
    const srv = net.createServer((s) => s.end('{"ok":true,"result":"gotcha"}\n'));
    await new Promise<void>((r) => srv.listen(p, r));
    try {
      fs.chownSync(p, 65534, 65534);
      const r = zram('reset', '--control', p);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/belongs to uid 65534, not to us; refusing/);
      expect(r.out).not.toMatch(/gotcha/);
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });
});

describe('zram serve: NBD access', () => {
  it.skipIf(missing('nbdinfo') !== null)(
    '--unix serves nbd+unix:// with a 0600 socket, control next to it',
    async () => {
      const sock = path.join(dir, 'zram.sock');
      const { proc, banner } = await serve('--unix', sock);
      expect(banner).toContain(`NBD on unix:${sock}`);
      expect(fs.lstatSync(sock).mode & 0o777).toBe(0o600);
      expect(fs.lstatSync(`${sock}.control`).mode & 0o777).toBe(0o600);
      const r = await runOk('nbdinfo', ['--size', `nbd+unix:///zram0?socket=${sock}`]);
      expect(Number(r.stdout.trim())).toBe(16 << 20);
      expect(zram('compact', '--unix', sock).code).toBe(0);
      await stop(proc);
    },
  );

  it.skipIf(missing('nbdinfo') !== null)(
    '--tls-psk requires TLS: nbdinfo with the key connects, without it is refused',
    async () => {
      const psk = path.join(dir, 'keys.psk');
      fs.writeFileSync(psk, 'alice:8d3f0c1e5a7b9d2f4e6a8c0b1d3f5e7a\n', { mode: 0o600 });
      const { proc, banner } = await serve('--port', '0', '--tls-psk', psk);
      expect(banner).toContain('TLS require');
      const port = Number(/NBD on 127\.0\.0\.1:(\d+)/.exec(banner)![1]);
      const ok = await runOk('nbdinfo', ['--size', `nbds://alice@127.0.0.1:${port}/zram0?tls-psk-file=${psk}`]);
      expect(Number(ok.stdout.trim())).toBe(16 << 20);
      const plain = spawnSync('nbdinfo', ['--size', `nbd://127.0.0.1:${port}/zram0`], { encoding: 'utf8' });
      expect(plain.status).not.toBe(0);
      await stop(proc);
    },
  );

  it('refuses a non-loopback --host without --tls require unless --insecure, and bad TLS flags', () => {
    const r = zram('serve', '--host', '0.0.0.0', '--port', '0');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/refusing to listen on 0\.0\.0\.0 without TLS/);
    expect(zram('serve', '--tls', 'require').err).toMatch(/needs --tls-psk/);
    expect(zram('serve', '--tls', 'maybe').err).toMatch(/off, on or require/);
    expect(zram('serve', '--handshake-timeout', '-1').err).toMatch(/--handshake-timeout/);
    expect(zram('serve', '--max-connections', '0').err).toMatch(/--max-connections must be an integer/);
    const budget = zram('serve', '--max-server-bytes', '16M');
    expect(budget.code).toBe(2);
    expect(budget.err).toMatch(/--max-server-bytes must be at least the per-connection cap/);
    const small = zram('serve', '--max-connection-bytes', '16M');
    expect(small.code).toBe(2);
    expect(small.err).toMatch(/--max-connection-bytes must be at least/);
    const open = path.join(dir, 'open.psk');
    fs.writeFileSync(open, 'alice:8d3f0c1e5a7b9d2f4e6a8c0b1d3f5e7a\n', { mode: 0o644 });
    fs.chmodSync(open, 0o644);
    expect(zram('serve', '--tls-psk', open).err).toMatch(/chmod 600/);
  });

  it('warns at startup that any local user can reach a TCP export without TLS required, and says how to restrict it', async () => {
    const { proc, stderr } = await serve('--port', '0');
    const deadline = Date.now() + 10_000;
    while (!/warning/.test(stderr()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const lines = stderr()
      .split('\n')
      .filter((l) => /warning/.test(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/any local user can read and write the device/);
    expect(lines[0]).toMatch(/--unix PATH or --tls require/);
    await stop(proc);
    // Restricted exports say nothing of the kind.
    const sock = path.join(dir, 'quiet.sock');
    const u = await serve('--unix', sock);
    await stop(u.proc);
    expect(u.stderr()).not.toMatch(/warning/);
  });

  it("refuses a --handshake-timeout beyond Node's longest timer, or one that would round to no limit", () => {
    for (const t of ['2147484', '0.0004', 'Infinity', 'x']) {
      const h = zram('serve', '--port', '0', '--handshake-timeout', t);
      expect(h.code).toBe(2);
      expect(h.err).toMatch(/--handshake-timeout must be 0 \(none\) or 0\.001\.\.2147483\.647 seconds/);
    }
  });

  it('refuses a backing file that is a symlink', () => {
    const target = path.join(dir, 'target.img');
    fs.writeFileSync(target, 'data');
    const link = path.join(dir, 'backing-link.img');
    fs.symlinkSync(target, link);
    const r = zram('serve', '--size', '16M', '--workers', '1', '--port', '0', '--backing-file', link);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/symlink/);
    expect(fs.readFileSync(target, 'utf8')).toBe('data');
  });
});
