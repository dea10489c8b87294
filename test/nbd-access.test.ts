// Who may reach the export, with real clients where one exists: a Unix socket
// created 0600 whatever the umask (nbdinfo, nbdcopy, fio over nbd+unix://);
// TLS with pre-shared keys in nbdkit's PSK file format, negotiated by STARTTLS
// (nbdinfo, nbdcopy, fio over nbds://), and refused to a client without TLS,
// with a wrong key or an unknown user; a non-loopback address refused unless
// TLS is required; and what a hostile client meets: the connection cap, the
// handshake time limit, the per-connection byte cap, and an unknown
// NBD_OPT_EXPORT_NAME closed without a reply byte.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { ZramDevice } from '@zsmalloc/zram';
import {
  NbdServer,
  PskFileError,
  ZramDeviceBackend,
  isLoopback,
  loadPskFile,
  minConnectionBytes,
} from '@zsmalloc/workers/nbd';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, missing, nbd, randomBytes, run, runOk, serve, waitFor, type Served } from './nbd-helpers.js';

const KEY = '8d3f0c1e5a7b9d2f4e6a8c0b1d3f5e7a';
const SIZE = 16 << 20;
let dir = '';
let pskFile = '';
let wrongKeyFile = '';
let unknownUserFile = '';

function writePrivate(name: string, text: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text, { mode: 0o600 });
  return f;
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nbd-access-'));
  pskFile = writePrivate('keys.psk', `alice:${KEY}\n`);
  wrongKeyFile = writePrivate('wrong.psk', `alice:${'0'.repeat(32)}\n`);
  unknownUserFile = writePrivate('mallory.psk', `mallory:${KEY}\n`);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const alice = () => ({ user: 'alice', pskFile });

/** Greeting, then client flags: the client is in option haggling. */
async function haggling(c: RawClient): Promise<void> {
  await c.read(18);
  c.write(Buffer.from([0, 0, 0, nbd.NBD_FLAG_C_FIXED_NEWSTYLE | nbd.NBD_FLAG_C_NO_ZEROES]));
}

/** Runs the client side of the TLS handshake on a raw client whose STARTTLS was acknowledged. */
async function tlsUpgrade(c: RawClient): Promise<tls.TLSSocket> {
  const t = tls.connect({
    socket: c.socket,
    ciphers: 'PSK-AES256-GCM-SHA384',
    maxVersion: 'TLSv1.2',
    checkServerIdentity: () => undefined,
    pskCallback: () => ({ identity: 'alice', psk: Buffer.from(KEY, 'hex') }),
  });
  await new Promise<void>((resolve, reject) => {
    t.once('secureConnect', resolve);
    t.once('error', reject);
  });
  return t;
}

/** The first `n` bytes that arrive over TLS. */
function tlsRead(t: tls.TLSSocket, n: number): Promise<Buffer> {
  return new Promise((resolve) => {
    let b = Buffer.alloc(0);
    const on = (d: Buffer) => {
      b = Buffer.concat([b, d]);
      if (b.length >= n) {
        t.off('data', on);
        resolve(b);
      }
    };
    t.on('data', on);
  });
}

function deviceBytes(s: Served, offset: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  s.dev.read(offset, b);
  return b;
}

const FIO_VERIFY = [
  '--output-format=json',
  '--verify_state_save=0',
  '--name=verify',
  '--ioengine=nbd',
  '--rw=randwrite',
  '--bs=4k',
  '--size=4m',
  '--iodepth=8',
  '--verify=crc32c',
  '--do_verify=1',
  '--verify_fatal=1',
];

/**
 * fio writes 4 MiB at random and reads every block back, checking it. With
 * `tls`, fio runs under nbdkit's nbd plugin, which connects to our server
 * with TLS-PSK and hands fio a local socket: libnbd refuses the tls-psk-file
 * URI parameter unless the application allows local files, and fio's nbd
 * engine does not, so fio cannot carry a PSK itself.
 */
async function fioVerify(uri: string, tls?: { port: number }): Promise<void> {
  const cwd = fs.mkdtempSync(path.join(dir, 'fio-'));
  const r = tls
    ? await run(
        'nbdkit',
        [
          '-U',
          '-',
          'nbd',
          'hostname=127.0.0.1',
          `port=${tls.port}`,
          'export=zram0',
          'tls=require',
          `tls-psk=${pskFile}`,
          'tls-username=alice',
          '--run',
          `fio ${FIO_VERIFY.join(' ')} --uri="$uri"`,
        ],
        { timeoutMs: 40_000, cwd },
      )
    : await run('fio', [...FIO_VERIFY, `--uri=${uri}`], { timeoutMs: 40_000, cwd });
  const at = r.stdout.indexOf('{');
  if (r.code !== 0 || at < 0) throw new Error(`fio exited ${r.code ?? r.signal}\n${r.stdout}\n${r.stderr}`);
  const job = (JSON.parse(r.stdout.slice(at)) as { jobs: { error: number; read: { io_bytes: number } }[] }).jobs[0]!;
  expect(job.error).toBe(0);
  expect(job.read.io_bytes).toBe(4 << 20); // every block written was read back and checked
}

/** nbdcopy a random file in and out; returns whether both copies came back identical. */
async function copyRoundTrip(uri: string, seed: number): Promise<void> {
  const src = randomBytes(2 << 20, seed);
  const inFile = path.join(dir, `in-${seed}.bin`);
  const outFile = path.join(dir, `out-${seed}.bin`);
  fs.writeFileSync(inFile, Buffer.concat([src, Buffer.alloc(SIZE - src.length)]));
  await runOk('nbdcopy', [inFile, uri], { timeoutMs: 40_000 });
  await runOk('nbdcopy', [uri, outFile], { timeoutMs: 40_000 });
  expect(fs.readFileSync(outFile).subarray(0, src.length).equals(src)).toBe(true);
}

describe('NBD over a Unix socket', () => {
  let s: Served;
  let sock = '';
  beforeAll(async () => {
    sock = path.join(dir, 'nbd.sock');
    const old = process.umask(0); // the most permissive umask: the socket must still come out 0600
    try {
      s = await serve({ disksize: SIZE, unix: sock });
    } finally {
      process.umask(old);
    }
  });
  afterAll(async () => {
    await s?.close();
  });

  it('is created 0600 even under umask 0, and the URI is nbd+unix', () => {
    const st = fs.lstatSync(sock);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(s.uri).toBe(`nbd+unix:///zram0?socket=${encodeURIComponent(sock)}`);
  });

  it.skipIf(missing('nbdinfo') !== null)('nbdinfo reads the size over nbd+unix://', async () => {
    const r = await runOk('nbdinfo', ['--size', `nbd+unix:///zram0?socket=${sock}`]);
    expect(Number(r.stdout.trim())).toBe(SIZE);
  });

  it.skipIf(missing('nbdcopy') !== null)(
    'nbdcopy copies in and out byte-identical',
    async () => {
      await copyRoundTrip(s.uri, 1);
    },
    60_000,
  );

  it.skipIf(missing('fio') !== null)(
    'fio (nbd engine, uri=) writes and verifies',
    async () => {
      await fioVerify(`nbd+unix:///zram0?socket=${sock}`);
      s.dev.verify();
    },
    60_000,
  );

  it('refuses a path that exists and is not a socket, and deletes nothing', async () => {
    const file = path.join(dir, 'precious.txt');
    fs.writeFileSync(file, 'keep');
    await expect(serve({ disksize: SIZE, unix: file })).rejects.toThrow(/not a socket/);
    expect(fs.readFileSync(file, 'utf8')).toBe('keep');
    const link = path.join(dir, 'link.sock');
    fs.symlinkSync(file, link);
    await expect(serve({ disksize: SIZE, unix: link })).rejects.toThrow(/not a socket/);
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
  });

  it('refuses a socket another server still answers on', async () => {
    await expect(serve({ disksize: SIZE, unix: sock })).rejects.toThrow(/already answers/);
    expect(fs.lstatSync(sock).isSocket()).toBe(true);
  });
});

describe('NBD with TLS required (pre-shared keys)', () => {
  let s: Served;
  beforeAll(async () => {
    s = await serve({ disksize: SIZE, tls: 'require', psk: loadPskFile(pskFile) });
    s.dev.write(0, Buffer.alloc(4096, 0x5c));
  });
  afterAll(async () => {
    await s?.close();
  });

  it.skipIf(missing('nbdinfo') !== null)(
    'nbdinfo connects with nbds://USER@host:port/zram0?tls-psk-file=',
    async () => {
      const uri = `nbds://alice@127.0.0.1:${s.port}/zram0?tls-psk-file=${pskFile}`;
      expect(s.server.uri(alice())).toBe(
        `nbds://alice@127.0.0.1:${s.port}/zram0?tls-psk-file=${encodeURIComponent(pskFile)}`,
      );
      const r = await runOk('nbdinfo', ['--size', uri]);
      expect(Number(r.stdout.trim())).toBe(SIZE);
    },
  );

  it.skipIf(missing('nbdinfo') !== null)(
    'refuses nbdinfo without TLS, with a wrong key, and as an unknown user',
    async () => {
      const plain = await run('nbdinfo', ['--size', `nbd://127.0.0.1:${s.port}/zram0`]);
      expect(plain.code).not.toBe(0);
      expect(plain.stderr).toMatch(/TLS/);
      const wrong = await run('nbdinfo', [
        '--size',
        `nbds://alice@127.0.0.1:${s.port}/zram0?tls-psk-file=${wrongKeyFile}`,
      ]);
      expect(wrong.code).not.toBe(0);
      expect(wrong.stdout).toBe('');
      const unknown = await run('nbdinfo', [
        '--size',
        `nbds://mallory@127.0.0.1:${s.port}/zram0?tls-psk-file=${unknownUserFile}`,
      ]);
      expect(unknown.code).not.toBe(0);
      expect(unknown.stdout).toBe('');
    },
  );

  it.skipIf(missing('nbdcopy') !== null)(
    'nbdcopy copies over TLS; a plaintext nbdcopy writes nothing',
    async () => {
      await copyRoundTrip(s.server.uri(alice()), 2);
      const before = deviceBytes(s, 0, 4096);
      const junk = path.join(dir, 'junk.bin');
      fs.writeFileSync(junk, Buffer.alloc(SIZE, 0xee));
      const r = await run('nbdcopy', [junk, `nbd://127.0.0.1:${s.port}/zram0`], { timeoutMs: 20_000 });
      expect(r.code).not.toBe(0);
      expect(deviceBytes(s, 0, 4096).equals(before)).toBe(true);
    },
    60_000,
  );

  it.skipIf(missing('fio', 'nbdkit') !== null)(
    "fio writes and verifies over TLS-PSK (through nbdkit's nbd plugin)",
    async () => {
      await fioVerify('', { port: s.port });
      s.dev.verify();
    },
    60_000,
  );

  it('answers every option but STARTTLS and ABORT with ERR_TLS_REQD (STRUCTURED_REPLY and unknown ones too); ABORT is acknowledged; EXPORT_NAME ends the session without a byte', async () => {
    const c = await RawClient.connect(s.port);
    await haggling(c);
    c.write(nbd.encodeClientOption(nbd.NBD_OPT_GO, nbd.encodeInfoRequestData('zram0')));
    expect((await c.optionReply()).type).toBe(nbd.NBD_REP_ERR_TLS_REQD);
    c.write(nbd.encodeClientOption(nbd.NBD_OPT_LIST));
    expect((await c.optionReply()).type).toBe(nbd.NBD_REP_ERR_TLS_REQD);
    c.write(nbd.encodeClientOption(nbd.NBD_OPT_INFO, nbd.encodeInfoRequestData('')));
    expect((await c.optionReply()).type).toBe(nbd.NBD_REP_ERR_TLS_REQD);
    c.write(nbd.encodeClientOption(nbd.NBD_OPT_STRUCTURED_REPLY));
    expect((await c.optionReply()).type).toBe(nbd.NBD_REP_ERR_TLS_REQD);
    expect(s.server.stats().every((x) => !x.structured)).toBe(true);
    c.write(nbd.encodeClientOption(999)); // an option this server does not know
    expect((await c.optionReply()).type).toBe(nbd.NBD_REP_ERR_TLS_REQD);
    c.write(nbd.encodeClientOption(nbd.NBD_OPT_EXPORT_NAME, Buffer.from('zram0')));
    expect((await c.rest()).length).toBe(0);
    // ABORT is answered (ACK) before TLS, then the session ends.
    const a = await RawClient.connect(s.port);
    await haggling(a);
    a.write(nbd.encodeClientOption(nbd.NBD_OPT_ABORT));
    const ack = await a.optionReply();
    expect(ack.type).toBe(nbd.NBD_REP_ACK);
    await a.whenClosed;
  });

  it('ends the session when plaintext follows STARTTLS before the TLS handshake (no injection)', async () => {
    const c = await RawClient.connect(s.port);
    await haggling(c);
    c.write(
      Buffer.concat([
        nbd.encodeClientOption(nbd.NBD_OPT_STARTTLS),
        nbd.encodeClientOption(nbd.NBD_OPT_GO, nbd.encodeInfoRequestData('zram0')),
      ]),
    );
    expect((await c.rest()).length).toBe(0);
    expect(s.logs.some((l) => /plaintext data after NBD_OPT_STARTTLS/.test(l))).toBe(true);
  });

  it('upgrades the same connection in place: after STARTTLS the options run over TLS, and stats name the user', async () => {
    const c = await RawClient.connect(s.port);
    await haggling(c);
    c.write(nbd.encodeClientOption(nbd.NBD_OPT_STARTTLS));
    expect((await c.optionReply()).type).toBe(nbd.NBD_REP_ACK);
    c.socket.removeAllListeners('data');
    const t = await tlsUpgrade(c);
    const st = await waitFor(() => s.server.stats().find((x) => x.tls), 'the server to finish the TLS handshake');
    expect(st.tlsUser).toBe('alice');
    expect(st.phase).toBe('handshake');
    // NBD_OPT_LIST now answers (over TLS) instead of ERR_TLS_REQD.
    t.write(nbd.encodeClientOption(nbd.NBD_OPT_LIST));
    const got = await new Promise<Buffer>((resolve) => {
      let b = Buffer.alloc(0);
      t.on('data', (d: Buffer) => {
        b = Buffer.concat([b, d]);
        if (b.length >= 20 && b.readUInt32BE(12) === nbd.NBD_REP_SERVER) resolve(b);
      });
    });
    expect(got.readUInt32BE(8)).toBe(nbd.NBD_OPT_LIST);
    t.destroy();
  });

  it('drops a client that sends STARTTLS and then stalls the TLS handshake, at the handshake limit', async () => {
    const u = await serve({ disksize: SIZE, tls: 'require', psk: loadPskFile(pskFile), handshakeTimeoutMs: 300 });
    try {
      const c = await RawClient.connect(u.port);
      await haggling(c);
      c.write(nbd.encodeClientOption(nbd.NBD_OPT_STARTTLS));
      expect((await c.optionReply()).type).toBe(nbd.NBD_REP_ACK);
      await c.whenClosed; // never says ClientHello
      expect(u.server.totals().handshakeTimeouts).toBe(1);
    } finally {
      await u.close();
    }
  });

  it.skipIf(missing('nbdinfo') !== null)('also over a Unix socket (nbds+unix://)', async () => {
    const sock = path.join(dir, 'tls.sock');
    const u = await serve({ disksize: SIZE, unix: sock, tls: 'require', psk: loadPskFile(pskFile) });
    try {
      const r = await runOk('nbdinfo', ['--size', `nbds+unix://alice@/zram0?socket=${sock}&tls-psk-file=${pskFile}`]);
      expect(Number(r.stdout.trim())).toBe(SIZE);
      const plain = await run('nbdinfo', ['--size', `nbd+unix:///zram0?socket=${sock}`]);
      expect(plain.code).not.toBe(0);
    } finally {
      await u.close();
    }
  });
});

describe('TLS policy and where the server may listen', () => {
  it.skipIf(missing('nbdinfo') !== null)('tls "on" serves plaintext and TLS clients alike', async () => {
    const s = await serve({ disksize: SIZE, tls: 'on', psk: loadPskFile(pskFile) });
    try {
      expect(Number((await runOk('nbdinfo', ['--size', `nbd://127.0.0.1:${s.port}/zram0`])).stdout)).toBe(SIZE);
      expect(Number((await runOk('nbdinfo', ['--size', s.server.uri(alice())])).stdout)).toBe(SIZE);
    } finally {
      await s.close();
    }
  });

  it('forgets STRUCTURED_REPLY negotiated in plaintext once STARTTLS completes (tls on)', async () => {
    const s = await serve({ disksize: SIZE, tls: 'on', psk: loadPskFile(pskFile) });
    try {
      const c = await RawClient.connect(s.port);
      await haggling(c);
      c.write(nbd.encodeClientOption(nbd.NBD_OPT_STRUCTURED_REPLY));
      expect((await c.optionReply()).type).toBe(nbd.NBD_REP_ACK);
      expect(s.server.stats()[0]?.structured).toBe(true);
      c.write(nbd.encodeClientOption(nbd.NBD_OPT_STARTTLS));
      expect((await c.optionReply()).type).toBe(nbd.NBD_REP_ACK);
      c.socket.removeAllListeners('data');
      const t = await tlsUpgrade(c);
      const st = await waitFor(() => s.server.stats().find((x) => x.tls), 'the server to finish the TLS handshake');
      expect(st.structured).toBe(false);
      // The export's flags over TLS no longer promise what only structured replies allow (DF).
      t.write(nbd.encodeClientOption(nbd.NBD_OPT_GO, nbd.encodeInfoRequestData('zram0')));
      const info = await tlsRead(t, 32);
      expect(info.readUInt32BE(12)).toBe(nbd.NBD_REP_INFO);
      expect(info.readUInt16BE(20)).toBe(nbd.NBD_INFO_EXPORT);
      expect(info.readUInt16BE(30) & nbd.NBD_FLAG_SEND_DF).toBe(0);
      t.destroy();
    } finally {
      await s.close();
    }
  });

  it('refuses PSK keys over 512 bytes, from a file or given directly, without quoting them', () => {
    const long = 'ab'.repeat(513);
    const f = writePrivate('long.psk', `alice:${long}\n`);
    let err: unknown;
    try {
      loadPskFile(f);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PskFileError);
    expect((err as Error).message).toMatch(/longer than 512 bytes/);
    expect((err as Error).message).not.toContain('abab');
    expect([...loadPskFile(writePrivate('max.psk', `alice:${'ab'.repeat(512)}\n`)).keys()]).toEqual(['alice']);
    const dev = ZramDevice.create({ disksize: SIZE });
    try {
      const psk = new Map([['alice', Buffer.alloc(513, 0xab)]]);
      expect(() => new NbdServer({ backend: new ZramDeviceBackend(dev), port: 0, tls: 'require', psk })).toThrow(
        /16\.\.512 bytes/,
      );
    } finally {
      dev.close();
    }
  });

  it('logs a failed TLS handshake by its error code, never by its message', async () => {
    const s = await serve({ disksize: SIZE, tls: 'require', psk: loadPskFile(pskFile) });
    try {
      const c = await RawClient.connect(s.port);
      await haggling(c);
      c.write(nbd.encodeClientOption(nbd.NBD_OPT_STARTTLS));
      expect((await c.optionReply()).type).toBe(nbd.NBD_REP_ACK);
      c.socket.removeAllListeners('data');
      const t = tls.connect({
        socket: c.socket,
        ciphers: 'PSK-AES256-GCM-SHA384',
        maxVersion: 'TLSv1.2',
        checkServerIdentity: () => undefined,
        pskCallback: () => ({ identity: 'alice', psk: Buffer.alloc(16, 0x11) }), // the wrong key
      });
      t.on('error', () => {});
      const errors = await waitFor(() => {
        const l = s.logs.filter((x) => x.includes('socket error'));
        return l.length > 0 && l;
      }, 'the server to log the failed handshake');
      for (const l of errors) expect(l).toMatch(/socket error: [A-Z0-9_]+$/);
      t.destroy();
    } finally {
      await s.close();
    }
  });

  it('refuses a non-loopback host without TLS required, unless insecure', () => {
    const dev = ZramDevice.create({ disksize: SIZE });
    const backend = new ZramDeviceBackend(dev);
    try {
      for (const host of ['0.0.0.0', '::', '192.168.1.10', 'example.com'])
        expect(() => new NbdServer({ backend, host, port: 0 })).toThrow(/without TLS/);
      expect(() => new NbdServer({ backend, host: '0.0.0.0', port: 0, tls: 'on', psk: loadPskFile(pskFile) })).toThrow(
        /without TLS/,
      );
      expect(
        () => new NbdServer({ backend, host: '0.0.0.0', port: 0, tls: 'require', psk: loadPskFile(pskFile) }),
      ).not.toThrow();
      expect(() => new NbdServer({ backend, host: '0.0.0.0', port: 0, insecure: true })).not.toThrow();
      expect(() => new NbdServer({ backend, port: 0, tls: 'require' })).toThrow(/pre-shared keys/);
      for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1'])
        expect(isLoopback(h)).toBe(true);
      for (const h of ['0.0.0.0', '::', '10.0.0.1', '::ffff:10.0.0.1', 'zram.local']) expect(isLoopback(h)).toBe(false);
    } finally {
      dev.close();
    }
  });

  it('reads nbdkit PSK files and refuses malformed or group-readable ones', () => {
    const two = writePrivate('two.psk', `alice:${KEY}\nbob:${KEY.toUpperCase()}\n\n`);
    const keys = loadPskFile(two);
    expect([...keys.keys()]).toEqual(['alice', 'bob']);
    expect(keys.get('bob')!.toString('hex')).toBe(KEY);
    for (const bad of ['alice', `:${KEY}`, 'alice:xyz', 'alice:abcd', `alice:${KEY}\nalice:${KEY}`, ''])
      expect(() => loadPskFile(writePrivate('bad.psk', bad))).toThrow(PskFileError);
    const open = writePrivate('open.psk', `alice:${KEY}\n`);
    fs.chmodSync(open, 0o644);
    expect(() => loadPskFile(open)).toThrow(/chmod 600/);
    const link = path.join(dir, 'link.psk');
    fs.symlinkSync(pskFile, link);
    expect(() => loadPskFile(link)).toThrow(PskFileError);
  });
});

describe('limits against abusive clients', () => {
  it('closes an unknown NBD_OPT_EXPORT_NAME without sending a byte', async () => {
    const s = await serve({ disksize: SIZE });
    try {
      const c = await RawClient.connect(s.port);
      await haggling(c);
      c.write(nbd.encodeClientOption(nbd.NBD_OPT_EXPORT_NAME, Buffer.from('zram7')));
      expect((await c.rest()).length).toBe(0);
    } finally {
      await s.close();
    }
  });

  it('closes a connection after 32 handshake options, without answering the 33rd', async () => {
    const s = await serve({ disksize: SIZE });
    try {
      const c = await RawClient.connect(s.port);
      await haggling(c);
      for (let i = 0; i < 32; i++) {
        c.write(nbd.encodeClientOption(nbd.NBD_OPT_LIST));
        expect((await c.optionReply()).type).toBe(nbd.NBD_REP_SERVER);
        expect((await c.optionReply()).type).toBe(nbd.NBD_REP_ACK);
      }
      c.write(nbd.encodeClientOption(nbd.NBD_OPT_LIST));
      expect((await c.rest()).length).toBe(0);
      expect(s.logs.some((l) => /more than 32 options/.test(l))).toBe(true);
    } finally {
      await s.close();
    }
  });

  it('refuses connections beyond the cap before the greeting, and counts them', async () => {
    const s = await serve({ disksize: SIZE, maxConnections: 2 });
    try {
      const a = await RawClient.connect(s.port);
      const b = await RawClient.connect(s.port);
      await a.read(18);
      await b.read(18);
      const c = await RawClient.connect(s.port);
      expect((await c.rest()).length).toBe(0);
      expect(s.server.totals().refusedConnections).toBe(1);
      a.close();
      await waitFor(() => s.server.connections === 1, 'the closed connection to go');
      const d = await RawClient.connect(s.port);
      await d.handshake(); // room again
      d.close();
      b.close();
    } finally {
      await s.close();
    }
  });

  it('drops a connection that does not finish its handshake in time, not one that did', async () => {
    const s = await serve({ disksize: SIZE, handshakeTimeoutMs: 300 });
    try {
      const done = await RawClient.connect(s.port);
      await done.handshake();
      const stalled = await RawClient.connect(s.port);
      await stalled.read(18); // greeting, then nothing
      await stalled.whenClosed;
      expect(s.server.totals().handshakeTimeouts).toBe(1);
      // The connection that reached transmission first is still served after the stalled one was cut.
      done.request({ type: nbd.NBD_CMD_READ, offset: 0, length: 4096, cookie: 9 });
      const r = await done.reply(new Map([[9, 4096]]));
      expect(r.error).toBe(0);
      expect(done.closed).toBe(false);
      done.close();
      // Also during option haggling (a client that sends options forever is still cut).
      const slow = await RawClient.connect(s.port);
      await haggling(slow);
      slow.write(nbd.encodeClientOption(nbd.NBD_OPT_LIST));
      await slow.optionReply();
      await slow.whenClosed;
      expect(s.server.totals().handshakeTimeouts).toBe(2);
    } finally {
      await s.close();
    }
  });

  it('keeps what a client that never reads its replies holds under the per-connection cap, and shows it in stats', async () => {
    const MiB = 1 << 20;
    const cap = minConnectionBytes(MiB) + MiB / 2; // 2.75 MiB: two 1 MiB READs fit, a third does not
    const s = await serve({ disksize: SIZE, maxPayload: MiB, maxConnectionBytes: cap });
    try {
      const c = await RawClient.connect(s.port);
      await c.handshake();
      c.socket.pause(); // never reads
      const N = 96;
      const reqs: Buffer[] = [];
      for (let i = 0; i < N; i++) {
        if (i % 4 === 3) {
          reqs.push(
            nbd.encodeRequest({ type: nbd.NBD_CMD_WRITE, offset: (i % 8) * MiB, length: MiB, cookieLo: i }),
            randomBytes(MiB, i),
          );
        } else
          reqs.push(nbd.encodeRequest({ type: nbd.NBD_CMD_READ, offset: (i % 8) * MiB, length: MiB, cookieLo: i }));
      }
      // Sample at every READ the server starts: what it holds plus the data it is about to take on.
      let most = 0;
      const backend = s.server.backend;
      const read = backend.read.bind(backend);
      backend.read = (offset: number, length: number) => {
        most = Math.max(most, (s.server.stats()[0]?.heldBytes ?? 0) + length);
        return read(offset, length);
      };
      c.write(Buffer.concat(reqs)); // 72 MiB of READ replies and 24 MiB of WRITE data
      const st = await waitFor(() => {
        const x = s.server.stats()[0];
        if (!x) return undefined;
        most = Math.max(most, x.heldBytes);
        return x.phase === 'transmission' && x.requests > 0 && x.inflight === 0 && x.queuedReplyBytes > 0 && x;
      }, 'the server to stop reading with replies queued');
      expect(st.requests).toBeLessThan(N);
      expect(st.heldBytes).toBe(st.bufferedBytes + st.inflightBytes + st.queuedReplyBytes);
      expect(st.queuedReplyBytes).toBeGreaterThan(0);
      expect(most).toBeLessThanOrEqual(cap);
      expect(s.server.totals().heldBytes).toBe(st.heldBytes);
      expect(s.server.totals().maxConnectionBytes).toBe(cap);
      // Once the client reads, every reply arrives.
      c.socket.resume();
      const lengths = new Map<number, number>();
      for (let i = 0; i < N; i++) if (i % 4 !== 3) lengths.set(i, MiB);
      const seen = new Set<number>();
      for (let i = 0; i < N; i++) {
        const r = await c.reply(lengths);
        expect(r.error).toBe(0);
        seen.add(r.cookie);
        most = Math.max(most, s.server.stats()[0]?.heldBytes ?? 0);
      }
      expect(seen.size).toBe(N);
      expect(most).toBeLessThanOrEqual(cap);
      c.close();
    } finally {
      await s.close();
    }
  }, 60_000);

  it('rejects a handshake limit beyond 2^31-1 ms (a longer timer fires at once) or not whole ms', () => {
    const dev = ZramDevice.create({ disksize: SIZE });
    try {
      const backend = new ZramDeviceBackend(dev);
      for (const ms of [2 ** 31, 1e12, 0.4, -1, Number.POSITIVE_INFINITY])
        expect(() => new NbdServer({ backend, port: 0, handshakeTimeoutMs: ms })).toThrow(/handshakeTimeoutMs/);
      expect(() => new NbdServer({ backend, port: 0, handshakeTimeoutMs: 2 ** 31 - 1 })).not.toThrow();
    } finally {
      dev.close();
    }
  });

  it('keeps what all connections hold together under the server-wide budget, then serves every reply', async () => {
    const MiB = 1 << 20;
    const cap = minConnectionBytes(MiB) + MiB / 2; // per connection: two 1 MiB READs in hand
    const budget = cap + MiB; // four such connections would hold ~11 MiB without it
    const s = await serve({ disksize: SIZE, maxPayload: MiB, maxConnectionBytes: cap, maxServerBytes: budget });
    try {
      const N = 24;
      const clients: RawClient[] = [];
      for (let k = 0; k < 4; k++) {
        const c = await RawClient.connect(s.port);
        await c.handshake();
        c.socket.pause(); // never reads
        clients.push(c);
      }
      let most = 0;
      const backend = s.server.backend;
      const read = backend.read.bind(backend);
      backend.read = (offset: number, length: number) => {
        most = Math.max(most, s.server.totals().heldBytes + length);
        return read(offset, length);
      };
      for (const [k, c] of clients.entries()) {
        const reqs: Buffer[] = [];
        for (let i = 0; i < N; i++)
          reqs.push(
            nbd.encodeRequest({ type: nbd.NBD_CMD_READ, offset: ((i + k) % 8) * MiB, length: MiB, cookieLo: i }),
          );
        c.write(Buffer.concat(reqs));
      }
      await waitFor(() => {
        const t = s.server.totals();
        most = Math.max(most, t.heldBytes);
        return t.budgetWaiting > 0 && s.server.stats().every((x) => x.inflight === 0);
      }, 'connections to wait for the server budget');
      const t = s.server.totals();
      expect(t.maxServerBytes).toBe(budget);
      expect(t.heldBytes).toBeLessThanOrEqual(budget);
      expect(most).toBeLessThanOrEqual(budget);
      expect(s.server.stats().reduce((n, x) => n + x.requests, 0)).toBeLessThan(4 * N);
      // Once the clients read, every reply arrives (waiting connections are woken).
      const lengths = new Map<number, number>();
      for (let i = 0; i < N; i++) lengths.set(i, MiB);
      await Promise.all(
        clients.map(async (c) => {
          c.socket.resume();
          for (let i = 0; i < N; i++) expect((await c.reply(lengths)).error).toBe(0);
        }),
      );
      expect(most).toBeLessThanOrEqual(budget);
      for (const c of clients) c.close();
    } finally {
      await s.close();
    }
  }, 60_000);

  it('rejects a server budget below the per-connection cap', () => {
    const dev = ZramDevice.create({ disksize: SIZE });
    try {
      const backend = new ZramDeviceBackend(dev);
      expect(() => new NbdServer({ backend, port: 0, maxServerBytes: 64 << 20 })).toThrow(/maxServerBytes/);
      expect(new NbdServer({ backend, port: 0 }).totals().maxServerBytes).toBe(256 << 20);
    } finally {
      dev.close();
    }
  });

  it('rejects a byte cap too small to make progress', () => {
    const dev = ZramDevice.create({ disksize: SIZE });
    try {
      expect(
        () =>
          new NbdServer({
            backend: new ZramDeviceBackend(dev),
            maxPayload: 1 << 20,
            maxConnectionBytes: 2 << 20,
          }),
      ).toThrow(/maxConnectionBytes/);
    } finally {
      dev.close();
    }
  });
});
