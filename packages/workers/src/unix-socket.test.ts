// Private Unix sockets: created 0600 under any umask, a stale socket of ours
// replaced, anything else at the path left alone and refused; the private
// runtime directory checked before use; clients refuse what is not a socket.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SocketPathError, checkOwnSocket, listenPrivate, privateRuntimeDir } from './unix-socket.js';

let dir = '';
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'unix-socket-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function close(s: net.Server): Promise<void> {
  return new Promise((r) => s.close(() => r()));
}

describe('listenPrivate', () => {
  it('creates the socket 0600 under umask 0 by narrowing the umask at bind (no chmod after)', async () => {
    const p = path.join(dir, 'a.sock');
    const s = net.createServer();
    const old = process.umask(0);
    try {
      await listenPrivate(s, p, 'test socket');
    } finally {
      process.umask(old);
    }
    expect(process.umask()).toBe(old); // restored
    expect(fs.lstatSync(p).mode & 0o777).toBe(0o600);
    await close(s);
  });

  it('replaces a stale socket of ours (its server died without removing it)', async () => {
    const p = path.join(dir, 'stale.sock');
    // A process that binds and is killed leaves the socket file behind.
    const r = spawnSync(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(p)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    expect(r.signal).toBe('SIGKILL');
    expect(fs.lstatSync(p).isSocket()).toBe(true);
    const s = net.createServer();
    await listenPrivate(s, p, 'test socket');
    expect(fs.lstatSync(p).mode & 0o777).toBe(0o600);
    await close(s);
  });

  it('refuses a live socket, a regular file, a directory and a symlink, and leaves them alone', async () => {
    const live = path.join(dir, 'live.sock');
    const first = net.createServer();
    await listenPrivate(first, live, 'test socket');
    await expect(listenPrivate(net.createServer(), live, 'test socket')).rejects.toThrow(/already answers/);
    expect(fs.lstatSync(live).isSocket()).toBe(true);
    await close(first);

    const file = path.join(dir, 'file');
    fs.writeFileSync(file, 'x');
    await expect(listenPrivate(net.createServer(), file, 'test socket')).rejects.toThrow(SocketPathError);
    expect(fs.readFileSync(file, 'utf8')).toBe('x');
    await expect(listenPrivate(net.createServer(), dir, 'test socket')).rejects.toThrow(/not a socket/);
    const link = path.join(dir, 'link');
    fs.symlinkSync(file, link);
    await expect(listenPrivate(net.createServer(), link, 'test socket')).rejects.toThrow(/not a socket/);
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
  });
});

describe('privateRuntimeDir', () => {
  const saved = process.env.XDG_RUNTIME_DIR;
  afterAll(() => {
    if (saved === undefined) delete process.env.XDG_RUNTIME_DIR;
    else process.env.XDG_RUNTIME_DIR = saved;
  });

  it('creates $XDG_RUNTIME_DIR/zram 0700 under umask 0, and refuses it once it is open to others or a symlink', () => {
    const rt = fs.mkdtempSync(path.join(dir, 'rt-'));
    process.env.XDG_RUNTIME_DIR = rt;
    const old = process.umask(0);
    try {
      expect(privateRuntimeDir(true)).toBe(path.join(rt, 'zram'));
    } finally {
      process.umask(old);
    }
    expect(fs.statSync(path.join(rt, 'zram')).mode & 0o777).toBe(0o700);
    fs.chmodSync(path.join(rt, 'zram'), 0o770);
    expect(() => privateRuntimeDir(true)).toThrow(/open to other users/);
    fs.rmdirSync(path.join(rt, 'zram'));
    fs.mkdirSync(path.join(rt, 'elsewhere'), { mode: 0o700 });
    fs.symlinkSync(path.join(rt, 'elsewhere'), path.join(rt, 'zram'));
    expect(() => privateRuntimeDir(true)).toThrow(/not a directory/);
  });

  it('falls back to a per-uid directory under the temp directory without XDG_RUNTIME_DIR; a client does not create it', () => {
    delete process.env.XDG_RUNTIME_DIR;
    const savedTmp = process.env.TMPDIR;
    process.env.TMPDIR = fs.mkdtempSync(path.join(dir, 'tmp-')); // a temp directory no server has used
    try {
      const d = privateRuntimeDir(false);
      expect(d).toBe(path.join(os.tmpdir(), `zram-${process.getuid?.() ?? -1}`));
      expect(fs.existsSync(d)).toBe(false);
    } finally {
      if (savedTmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = savedTmp;
    }
  });
});

describe('checkOwnSocket', () => {
  it('accepts our socket and a missing path, refuses a regular file', async () => {
    const p = path.join(dir, 'own.sock');
    const s = net.createServer();
    await listenPrivate(s, p, 'test socket');
    expect(() => checkOwnSocket(p, 'test socket')).not.toThrow();
    await close(s);
    expect(() => checkOwnSocket(path.join(dir, 'missing.sock'), 'test socket')).not.toThrow();
    const f = path.join(dir, 'plain');
    fs.writeFileSync(f, '');
    expect(() => checkOwnSocket(f, 'test socket')).toThrow(/not a socket/);
  });
});
