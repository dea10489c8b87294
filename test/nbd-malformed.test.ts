// What no well-behaved client sends, over a raw socket after a real
// handshake: unknown options and commands, malformed option data, bad
// magics, absurd lengths, out-of-range requests, bad command flags, a full
// memory limit; plus pipelining, flow control, DISC and server shutdown.
// Each hostile connection gets the right error reply or is closed; the server
// keeps serving other clients (nbdinfo, qemu-io) and no stored data changes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, missing, nbd, randomBytes, run, serve, waitFor, type Served } from './nbd-helpers.js';

const SIZE = 8 << 20;
const PATTERN = Buffer.alloc(64 * 1024, 0xab);

describe('NBD server: malformed and hostile requests', () => {
  let s: Served;
  beforeAll(async () => {
    s = await serve({ disksize: SIZE });
    // Data written before any abuse, checked at the end.
    const c = await RawClient.connect(s.port);
    await c.handshake();
    c.request({ type: nbd.NBD_CMD_WRITE, offset: 0, length: PATTERN.length, cookie: 1, data: PATTERN });
    expect((await c.reply()).error).toBe(0);
    c.close();
  });
  afterAll(async () => {
    await s?.close();
  });

  function deviceBytes(offset: number, length: number): Buffer {
    const b = Buffer.alloc(length);
    s.dev.read(offset, b);
    return b;
  }

  function expectPatternIntact(): void {
    expect(deviceBytes(0, PATTERN.length).equals(PATTERN)).toBe(true);
    expect(deviceBytes(PATTERN.length, 4096).every((x) => x === 0)).toBe(true);
  }

  describe('option haggling', () => {
    it('answers unknown options with ERR_UNSUP, bad data with ERR_INVALID, unknown exports with ERR_UNKNOWN, then GO works', async () => {
      const c = await RawClient.connect(s.port);
      await c.read(18);
      c.write(Buffer.from([0, 0, 0, 3]));
      c.write(nbd.encodeClientOption(0x1234, Buffer.from('whatever')));
      expect(await c.optionReply()).toMatchObject({ option: 0x1234, type: nbd.NBD_REP_ERR_UNSUP });
      c.write(nbd.encodeClientOption(nbd.NBD_OPT_STARTTLS));
      expect((await c.optionReply()).type).toBe(nbd.NBD_REP_ERR_UNSUP);
      c.write(nbd.encodeClientOption(nbd.NBD_OPT_SET_META_CONTEXT, Buffer.alloc(12)));
      expect((await c.optionReply()).type).toBe(nbd.NBD_REP_ERR_UNSUP);
      c.write(nbd.encodeClientOption(nbd.NBD_OPT_GO, Buffer.from([0, 0, 0, 99, 1, 2])));
      expect((await c.optionReply()).type).toBe(nbd.NBD_REP_ERR_INVALID);
      c.write(nbd.encodeClientOption(nbd.NBD_OPT_LIST, Buffer.from([1])));
      expect((await c.optionReply()).type).toBe(nbd.NBD_REP_ERR_INVALID);
      c.write(nbd.encodeClientOption(nbd.NBD_OPT_INFO, nbd.encodeInfoRequestData('zram1')));
      const unk = await c.optionReply();
      expect(unk.type).toBe(nbd.NBD_REP_ERR_UNKNOWN);
      expect(Buffer.from(unk.data).toString()).toMatch(/zram1/);

      c.write(nbd.encodeClientOption(nbd.NBD_OPT_LIST));
      const srv = await c.optionReply();
      expect(srv.type).toBe(nbd.NBD_REP_SERVER);
      expect(
        Buffer.from(srv.data)
          .subarray(4, 4 + Buffer.from(srv.data).readUInt32BE(0))
          .toString(),
      ).toBe('zram0');
      expect((await c.optionReply()).type).toBe(nbd.NBD_REP_ACK);

      c.write(
        nbd.encodeClientOption(
          nbd.NBD_OPT_INFO,
          nbd.encodeInfoRequestData('zram0', [nbd.NBD_INFO_NAME, nbd.NBD_INFO_DESCRIPTION, 0x4444]),
        ),
      );
      const infos: number[] = [];
      for (let r = await c.optionReply(); r.type !== nbd.NBD_REP_ACK; r = await c.optionReply()) {
        expect(r.type).toBe(nbd.NBD_REP_INFO);
        infos.push(nbd.decodeInfo(r.data).info);
      }
      expect(infos.sort()).toEqual(
        [nbd.NBD_INFO_EXPORT, nbd.NBD_INFO_NAME, nbd.NBD_INFO_DESCRIPTION, nbd.NBD_INFO_BLOCK_SIZE].sort(),
      );

      c.write(nbd.encodeClientOption(nbd.NBD_OPT_GO, nbd.encodeInfoRequestData('')));
      let r = await c.optionReply();
      while (r.type === nbd.NBD_REP_INFO) r = await c.optionReply();
      expect(r.type).toBe(nbd.NBD_REP_ACK);
      c.request({ type: nbd.NBD_CMD_READ, offset: 0, length: 4096, cookie: 5 });
      const rep = await c.reply(new Map([[5, 4096]]));
      expect(rep.error).toBe(0);
      expect(rep.data!.equals(PATTERN.subarray(0, 4096))).toBe(true);
      c.close();
    });

    it('closes on a bad option magic, unknown client flags, an unknown EXPORT_NAME, and after ABORT', async () => {
      const a = await RawClient.connect(s.port);
      await a.read(18);
      a.write(Buffer.from([0, 0, 0, 1]));
      a.write(Buffer.from('IHAVEOPTX'.repeat(4)));
      await a.whenClosed;

      const b = await RawClient.connect(s.port);
      await b.read(18);
      b.write(Buffer.from([0, 0, 0, 0x20]));
      await b.whenClosed;

      const c = await RawClient.connect(s.port);
      await c.read(18);
      c.write(Buffer.from([0, 0, 0, 1]));
      c.write(nbd.encodeClientOption(nbd.NBD_OPT_EXPORT_NAME, Buffer.from('nope')));
      await c.whenClosed;

      const d = await RawClient.connect(s.port);
      await d.read(18);
      d.write(Buffer.from([0, 0, 0, 1]));
      d.write(nbd.encodeClientOption(nbd.NBD_OPT_ABORT));
      expect((await d.optionReply()).type).toBe(nbd.NBD_REP_ACK);
      await d.whenClosed;

      const e = await RawClient.connect(s.port);
      await e.read(18);
      e.write(Buffer.from([0, 0, 0, 1])); // no NO_ZEROES: 124 zero bytes follow size and flags
      e.write(nbd.encodeClientOption(nbd.NBD_OPT_GO, Buffer.alloc(0)));
      expect((await e.optionReply()).type).toBe(nbd.NBD_REP_ERR_INVALID);
      e.write(nbd.encodeClientOption(nbd.NBD_OPT_EXPORT_NAME, Buffer.from('zram0')));
      const reply = await e.read(134);
      expect(nbd.readU64(reply, 0)).toBe(SIZE);
      expect(reply.readUInt16BE(8) & nbd.NBD_FLAG_HAS_FLAGS).toBe(1);
      expect(reply.subarray(10).every((x) => x === 0)).toBe(true);
      e.request({ type: nbd.NBD_CMD_READ, offset: 4096, length: 512, cookie: 9 });
      expect((await e.reply(new Map([[9, 512]]))).data!.equals(PATTERN.subarray(0, 512))).toBe(true);
      e.close();
    });
  });

  for (const structured of [false, true]) {
    describe(`transmission with ${structured ? 'structured' : 'simple'} replies`, () => {
      let c: RawClient;
      beforeAll(async () => {
        c = await RawClient.connect(s.port);
        await c.handshake({ structured });
      });
      afterAll(() => c?.close());

      async function roundTrip(req: Parameters<RawClient['request']>[0]) {
        c.request(req);
        const r = await c.reply(new Map([[req.cookie ?? 0, req.length]]));
        expect(r.cookie).toBe(req.cookie ?? 0);
        return r;
      }

      it('answers unknown commands with EINVAL and keeps the connection', async () => {
        for (const type of [nbd.NBD_CMD_CACHE, nbd.NBD_CMD_BLOCK_STATUS, 8, 0x55, 0xffff]) {
          const r = await roundTrip({ type, offset: 0, length: 4096, cookie: 100 + type });
          expect(r.error).toBe(nbd.NBD_EINVAL);
          expect(r.data).toBeUndefined();
          if (structured) expect(r.message).toMatch(/unknown command/);
        }
        expect(
          (await roundTrip({ type: nbd.NBD_CMD_READ, offset: 0, length: 100, cookie: 7 })).data!.equals(
            PATTERN.subarray(0, 100),
          ),
        ).toBe(true);
      });

      it("answers out-of-range requests with EINVAL (a WRITE's data is consumed, nothing is written)", async () => {
        const cases = [
          { type: nbd.NBD_CMD_READ, offset: SIZE - 4096, length: 8192 },
          { type: nbd.NBD_CMD_READ, offset: SIZE, length: 1 },
          { type: nbd.NBD_CMD_READ, offset: 2 ** 62, length: 4096 },
          { type: nbd.NBD_CMD_TRIM, offset: SIZE - 4096, length: 8192 },
          { type: nbd.NBD_CMD_WRITE_ZEROES, offset: 0, length: SIZE + 4096 },
          { type: nbd.NBD_CMD_WRITE, offset: SIZE - 100, length: 200, data: Buffer.alloc(200, 0xee) },
          { type: nbd.NBD_CMD_WRITE, offset: 2 ** 53, length: 16, data: Buffer.alloc(16, 0xee) },
        ];
        let cookie = 200;
        for (const k of cases) expect((await roundTrip({ ...k, cookie: cookie++ })).error).toBe(nbd.NBD_EINVAL);
        expect(deviceBytes(SIZE - 4096, 4096).every((x) => x === 0)).toBe(true);
        expectPatternIntact();
      });

      it('answers command flags not valid for the command with EINVAL', async () => {
        const cases = [
          { type: nbd.NBD_CMD_WRITE_ZEROES, flags: nbd.NBD_CMD_FLAG_FAST_ZERO, offset: 0, length: 4096 },
          { type: nbd.NBD_CMD_WRITE, flags: nbd.NBD_CMD_FLAG_DF, offset: 0, length: 8, data: Buffer.alloc(8) },
          { type: nbd.NBD_CMD_READ, flags: 0x8000, offset: 0, length: 8 },
        ];
        let cookie = 300;
        for (const k of cases) expect((await roundTrip({ ...k, cookie: cookie++ })).error).toBe(nbd.NBD_EINVAL);
        expectPatternIntact();
      });

      it('answers an absurd READ length with EINVAL and keeps the connection', async () => {
        const r = await roundTrip({ type: nbd.NBD_CMD_READ, offset: 0, length: 0xffffffff, cookie: 400 });
        expect(r.error).toBe(nbd.NBD_EINVAL);
        expect(r.data).toBeUndefined();
        const r2 = await roundTrip({ type: nbd.NBD_CMD_READ, offset: 0, length: (32 << 20) + 1, cookie: 401 });
        expect(r2.error).toBe(nbd.NBD_EINVAL);
        expect(
          (await roundTrip({ type: nbd.NBD_CMD_READ, offset: 10, length: 10, cookie: 402 })).data!.equals(
            PATTERN.subarray(0, 10),
          ),
        ).toBe(true);
      });

      it('runs pipelined requests concurrently, answering each by its cookie', async () => {
        const base = 1 << 20;
        const parts: Buffer[] = [];
        const expected = new Map<number, Buffer>();
        const lengths = new Map<number, number>();
        for (let i = 0; i < 48; i++) {
          const data = randomBytes(5000 + i * 37, i + (structured ? 1000 : 0));
          const off = base + i * 12288 + (i % 5);
          parts.push(
            nbd.encodeRequest({
              type: nbd.NBD_CMD_WRITE,
              offset: off,
              length: data.length,
              cookieLo: 1000 + i,
              flags: i % 4 === 0 ? nbd.NBD_CMD_FLAG_FUA : 0,
            }),
            data,
          );
          expected.set(1000 + i, data);
        }
        parts.push(nbd.encodeRequest({ type: nbd.NBD_CMD_FLUSH, offset: 0, length: 0, cookieLo: 1999 }));
        // One write() for all 49 requests; replies may come in any order.
        c.write(Buffer.concat(parts));
        const seen = new Set<number>();
        for (let i = 0; i < 49; i++) {
          const r = await c.reply();
          expect(r.error).toBe(0);
          seen.add(r.cookie);
        }
        expect(seen.size).toBe(49);

        const reads: Buffer[] = [];
        for (let i = 0; i < 48; i++) {
          const off = base + i * 12288 + (i % 5);
          reads.push(
            nbd.encodeRequest({
              type: nbd.NBD_CMD_READ,
              offset: off,
              length: expected.get(1000 + i)!.length,
              cookieLo: 2000 + i,
            }),
          );
          lengths.set(2000 + i, expected.get(1000 + i)!.length);
        }
        // Split the pipelined reads at odd places.
        const all = Buffer.concat(reads);
        for (let at = 0; at < all.length; at += 13) c.write(all.subarray(at, at + 13));
        for (let i = 0; i < 48; i++) {
          const r = await c.reply(lengths);
          expect(r.error).toBe(0);
          expect(r.data!.equals(expected.get(r.cookie - 1000)!)).toBe(true);
        }
      });

      it('serves zero-length requests', async () => {
        expect((await roundTrip({ type: nbd.NBD_CMD_READ, offset: 0, length: 0, cookie: 500 })).error).toBe(0);
        expect(
          (await roundTrip({ type: nbd.NBD_CMD_WRITE, offset: 0, length: 0, cookie: 501, data: Buffer.alloc(0) }))
            .error,
        ).toBe(0);
        expectPatternIntact();
      });
    });
  }

  it('closes the connection on a bad request magic; nothing is written', async () => {
    const c = await RawClient.connect(s.port);
    await c.handshake();
    c.request({
      type: nbd.NBD_CMD_WRITE,
      offset: 0,
      length: 4096,
      cookie: 1,
      data: Buffer.alloc(4096, 0xee),
      magic: 0x25609514,
    });
    await c.whenClosed;
    expect(c.buffered).toBe(0); // no reply: the cookie of a bad header cannot be trusted
    expectPatternIntact();
  });

  it('answers an absurd WRITE length with EINVAL, then closes (its data cannot be skipped); nothing is written', async () => {
    const c = await RawClient.connect(s.port);
    await c.handshake({ structured: true });
    c.request({ type: nbd.NBD_CMD_READ, offset: 0, length: 4096, cookie: 1 });
    c.request({ type: nbd.NBD_CMD_WRITE, offset: 0, length: 0xfffffff0, cookie: 2 });
    c.write(Buffer.alloc(8192, 0xee)); // the start of "its data"
    const got = new Map<number, Awaited<ReturnType<RawClient['reply']>>>();
    for (let i = 0; i < 2; i++) {
      const r = await c.reply();
      got.set(r.cookie, r);
    }
    expect(got.get(1)!.error).toBe(0);
    expect(got.get(2)!.error).toBe(nbd.NBD_EINVAL);
    expect(got.get(2)!.message).toMatch(/exceeds/);
    await c.whenClosed;
    expectPatternIntact();
  });

  it('answers requests in flight, then closes on NBD_CMD_DISC', async () => {
    const c = await RawClient.connect(s.port);
    await c.handshake();
    c.write(
      Buffer.concat([
        nbd.encodeRequest({ type: nbd.NBD_CMD_READ, offset: 0, length: 8, cookieLo: 1 }),
        nbd.encodeRequest({ type: nbd.NBD_CMD_FLUSH, offset: 0, length: 0, cookieLo: 2 }),
        nbd.encodeRequest({ type: nbd.NBD_CMD_DISC, offset: 0, length: 0, cookieLo: 3 }),
        nbd.encodeRequest({ type: nbd.NBD_CMD_WRITE, offset: 0, length: 8, cookieLo: 4 }), // after DISC: ignored
        Buffer.alloc(8, 0xee),
      ]),
    );
    const r1 = await c.reply(new Map([[1, 8]]));
    const r2 = await c.reply(new Map([[1, 8]]));
    expect(new Set([r1.cookie, r2.cookie])).toEqual(new Set([1, 2]));
    await c.whenClosed;
    expect(c.buffered).toBe(0);
    expectPatternIntact();
  });

  it('stops reading when a client does not read its replies (flow control), and delivers them all later', async () => {
    const c = await RawClient.connect(s.port);
    await c.handshake();
    c.socket.pause();
    const N = 192;
    const MiB = 1 << 20;
    const reqs: Buffer[] = [];
    for (let i = 0; i < N; i++)
      reqs.push(nbd.encodeRequest({ type: nbd.NBD_CMD_READ, offset: (i % 8) * MiB, length: MiB, cookieLo: i }));
    c.write(Buffer.concat(reqs)); // 192 MiB of replies requested at once
    // The server has stopped: everything it took on is answered, the replies sit
    // queued behind the client's full receive window, and requests remain unread.
    const st = await waitFor(
      () =>
        s.server
          .stats()
          .find((x) => x.phase === 'transmission' && x.requests > 0 && x.inflight === 0 && x.queuedReplyBytes > 0),
      'the server to stop reading with replies queued',
    );
    // Bounded by maxInflightBytes (32 MiB by default) plus one request, not 192 MiB.
    expect(st.requests).toBeLessThan(N);
    expect(st.queuedReplyBytes + st.inflightBytes).toBeLessThan(40 * MiB);
    expect(st.heldBytes).toBeLessThanOrEqual(s.server.totals().maxConnectionBytes);
    c.socket.resume();
    const lengths = new Map(Array.from({ length: N }, (_, i) => [i, MiB] as [number, number]));
    const seen = new Set<number>();
    for (let i = 0; i < N; i++) {
      const r = await c.reply(lengths);
      expect(r.error).toBe(0);
      expect(r.data!.length).toBe(MiB);
      seen.add(r.cookie);
    }
    expect(seen.size).toBe(N);
    c.close();
  });

  it.skipIf(missing('qemu-io') !== null)(
    'a real client still works afterwards and the data written first is intact',
    async () => {
      const r = await run(
        'qemu-io',
        [
          '-f',
          'raw',
          s.uri,
          '-c',
          'read -P 0xab 0 64k',
          '-c',
          'read -P 0 64k 64k',
          '-c',
          'write -P 0x3c 128k 4k',
          '-c',
          'read -P 0x3c 128k 4k',
        ],
        {
          timeoutMs: 20_000,
        },
      );
      expect(r.code).toBe(0);
      expect(r.stdout + r.stderr).not.toMatch(/fail|error/i);
    },
  );

  it.skipIf(missing('nbdinfo') !== null)('nbdinfo still reports the size afterwards', async () => {
    const r = await run('nbdinfo', ['--size', s.uri], { timeoutMs: 20_000 });
    expect(r.stdout.trim()).toBe(String(SIZE));
    s.dev.verify();
  });
});

describe('NBD server: a full mem_limit is ENOSPC', () => {
  it('answers writes that do not fit with ENOSPC; what was stored stays readable', async () => {
    const s = await serve({ disksize: 8 << 20, memLimit: 1 << 20 });
    try {
      const c = await RawClient.connect(s.port);
      await c.handshake({ structured: true });
      const chunks: Buffer[] = [];
      const errors: number[] = [];
      for (let i = 0; i < 64; i++) {
        const data = randomBytes(64 * 1024, 77 + i); // incompressible: 4 MiB > 1 MiB limit
        chunks.push(data);
        c.request({ type: nbd.NBD_CMD_WRITE, offset: i * 64 * 1024, length: data.length, cookie: i, data });
        errors[i] = (await c.reply()).error;
      }
      expect(errors).toContain(nbd.NBD_ENOSPC);
      expect(errors.filter((e) => e !== 0 && e !== nbd.NBD_ENOSPC)).toEqual([]);
      const firstFail = errors.indexOf(nbd.NBD_ENOSPC);
      expect(firstFail).toBeGreaterThan(0);
      // Everything acknowledged before the first failure reads back.
      for (let i = 0; i < firstFail; i++) {
        c.request({ type: nbd.NBD_CMD_READ, offset: i * 64 * 1024, length: 64 * 1024, cookie: 1000 + i });
        const r = await c.reply();
        expect(r.error).toBe(0);
        expect(r.data!.equals(chunks[i]!)).toBe(true);
      }
      // Freeing space (TRIM) makes writes succeed again.
      c.request({ type: nbd.NBD_CMD_TRIM, offset: 0, length: 8 << 20, cookie: 5000 });
      expect((await c.reply()).error).toBe(0);
      c.request({ type: nbd.NBD_CMD_WRITE, offset: 0, length: 65536, cookie: 5001, data: chunks[0] });
      expect((await c.reply()).error).toBe(0);
      c.close();
      s.dev.verify();
    } finally {
      await s.close();
    }
  });
});

describe('NBD server: close()', () => {
  it('ends idle, negotiating and busy connections and resolves', async () => {
    const s = await serve({ disksize: 4 << 20 });
    const idle = await RawClient.connect(s.port);
    await idle.handshake();
    const haggling = await RawClient.connect(s.port);
    await haggling.read(18);
    const busy = await RawClient.connect(s.port);
    await busy.handshake();
    busy.request({ type: nbd.NBD_CMD_WRITE, offset: 0, length: 4096, cookie: 1, data: Buffer.alloc(4096, 1) });
    const t0 = Date.now();
    await s.close();
    expect(Date.now() - t0).toBeLessThan(3000);
    await Promise.all([idle.whenClosed, haggling.whenClosed, busy.whenClosed]);
    // The write in flight was answered before the close.
    if (busy.buffered >= 16) expect((await busy.reply()).error).toBe(0);
    await expect(RawClient.connect(s.port)).rejects.toThrow();
  });
});
