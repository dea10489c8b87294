import { describe, expect, it } from 'vitest';
import * as nbd from './protocol.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Feeds `bytes` to a decoder in pieces of the given sizes (cycled) and collects every event. */
function decodeSplit(
  dec: nbd.ServerDecoder,
  bytes: Buffer,
  sizes: number[],
  onEvent?: (ev: nbd.ServerEvent) => void,
): nbd.ServerEvent[] {
  const events: nbd.ServerEvent[] = [];
  let pos = 0;
  let k = 0;
  while (pos < bytes.length) {
    const n = Math.max(1, sizes[k++ % sizes.length]!);
    dec.push(bytes.subarray(pos, pos + n));
    pos += n;
    for (let ev = dec.next(); ev !== null; ev = dec.next()) {
      events.push(ev);
      onEvent?.(ev);
    }
  }
  return events;
}

describe('NBD constants', () => {
  it('has the magics of proto.md', () => {
    expect(Buffer.from(nbd.NBD_MAGIC.toString(16), 'hex').toString('latin1')).toBe('NBDMAGIC');
    expect(Buffer.from(nbd.NBD_IHAVEOPT.toString(16), 'hex').toString('latin1')).toBe('IHAVEOPT');
    expect(nbd.NBD_OPT_REPLY_MAGIC).toBe(0x3e889045565a9n);
    expect(nbd.NBD_REQUEST_MAGIC).toBe(0x25609513);
    expect(nbd.NBD_SIMPLE_REPLY_MAGIC).toBe(0x67446698);
    expect(nbd.NBD_STRUCTURED_REPLY_MAGIC).toBe(0x668e33ef);
  });

  it('numbers options, replies, commands and errors as proto.md', () => {
    expect([
      nbd.NBD_OPT_EXPORT_NAME,
      nbd.NBD_OPT_ABORT,
      nbd.NBD_OPT_LIST,
      nbd.NBD_OPT_STARTTLS,
      nbd.NBD_OPT_INFO,
      nbd.NBD_OPT_GO,
      nbd.NBD_OPT_STRUCTURED_REPLY,
    ]).toEqual([1, 2, 3, 5, 6, 7, 8]);
    expect([nbd.NBD_OPT_LIST_META_CONTEXT, nbd.NBD_OPT_SET_META_CONTEXT]).toEqual([9, 10]);
    expect([nbd.NBD_REP_ACK, nbd.NBD_REP_SERVER, nbd.NBD_REP_INFO]).toEqual([1, 2, 3]);
    expect(nbd.NBD_REP_ERR_UNSUP).toBe(2 ** 31 + 1);
    expect(nbd.NBD_REP_ERR_INVALID).toBe(2 ** 31 + 3);
    expect(nbd.NBD_REP_ERR_UNKNOWN).toBe(2 ** 31 + 6);
    expect(nbd.isOptionReplyError(nbd.NBD_REP_ERR_SHUTDOWN)).toBe(true);
    expect(nbd.isOptionReplyError(nbd.NBD_REP_ACK)).toBe(false);
    expect([
      nbd.NBD_CMD_READ,
      nbd.NBD_CMD_WRITE,
      nbd.NBD_CMD_DISC,
      nbd.NBD_CMD_FLUSH,
      nbd.NBD_CMD_TRIM,
      nbd.NBD_CMD_WRITE_ZEROES,
    ]).toEqual([0, 1, 2, 3, 4, 6]);
    expect([
      nbd.NBD_EPERM,
      nbd.NBD_EIO,
      nbd.NBD_ENOMEM,
      nbd.NBD_EINVAL,
      nbd.NBD_ENOSPC,
      nbd.NBD_EOVERFLOW,
      nbd.NBD_ESHUTDOWN,
    ]).toEqual([1, 5, 12, 22, 28, 75, 108]);
    expect(nbd.NBD_FLAG_SEND_WRITE_ZEROES).toBe(64);
    expect(nbd.NBD_FLAG_CAN_MULTI_CONN).toBe(256);
    expect(nbd.NBD_REPLY_TYPE_ERROR).toBe(32769);
  });
});

describe('handshake encoding', () => {
  it('greets with NBDMAGIC, IHAVEOPT and FIXED_NEWSTYLE|NO_ZEROES', () => {
    expect(hex(nbd.encodeGreeting())).toBe(`${Buffer.from('NBDMAGICIHAVEOPT').toString('hex')}0003`);
  });

  it('checks client flags', () => {
    const hs = nbd.NBD_FLAG_FIXED_NEWSTYLE | nbd.NBD_FLAG_NO_ZEROES;
    expect(nbd.checkClientFlags(0, hs)).toBeNull();
    expect(nbd.checkClientFlags(3, hs)).toBeNull();
    expect(nbd.checkClientFlags(4, hs)).toMatch(/unknown client flags/);
    expect(nbd.checkClientFlags(0x80000000, hs)).toMatch(/unknown/);
    expect(nbd.checkClientFlags(2, nbd.NBD_FLAG_FIXED_NEWSTYLE)).toMatch(/NO_ZEROES/);
  });

  it('encodes option replies', () => {
    const r = nbd.encodeOptionReply(7, nbd.NBD_REP_ACK);
    expect(hex(r)).toBe('0003e889045565a9' + '00000007' + '00000001' + '00000000');
    const e = nbd.encodeOptionReply(99, nbd.NBD_REP_ERR_UNSUP, 'no');
    expect(hex(e)).toBe('0003e889045565a9' + '00000063' + '80000001' + '00000002' + '6e6f');
    const d = nbd.decodeOptionReply(e)!;
    expect(d).toMatchObject({ option: 99, type: nbd.NBD_REP_ERR_UNSUP, total: 22 });
    expect(Buffer.from(d.data).toString()).toBe('no');
    expect(nbd.decodeOptionReply(e.subarray(0, 21))).toBeNull();
  });

  it('encodes NBD_REP_SERVER, NBD_INFO_EXPORT, NAME, DESCRIPTION and BLOCK_SIZE', () => {
    const s = nbd.decodeOptionReply(nbd.encodeServerReply('zram0', 'desc'))!;
    expect(s.type).toBe(nbd.NBD_REP_SERVER);
    expect(s.option).toBe(nbd.NBD_OPT_LIST);
    expect(hex(s.data)).toBe(`00000005${Buffer.from('zram0desc').toString('hex')}`);

    const size = 2 ** 40 + 4096;
    const ex = nbd.decodeOptionReply(nbd.encodeInfoExport(nbd.NBD_OPT_GO, size, 0x1ed))!;
    expect(ex.type).toBe(nbd.NBD_REP_INFO);
    expect(hex(ex.data)).toBe('0000' + '0000010000001000' + '01ed');
    expect(nbd.decodeInfo(ex.data)).toEqual({ info: nbd.NBD_INFO_EXPORT, size, flags: 0x1ed });

    const nm = nbd.decodeOptionReply(nbd.encodeInfoString(nbd.NBD_OPT_INFO, nbd.NBD_INFO_NAME, 'zram0'))!;
    expect(nbd.decodeInfo(nm.data)).toEqual({ info: nbd.NBD_INFO_NAME, text: 'zram0' });
    const bs = nbd.decodeOptionReply(nbd.encodeInfoBlockSize(nbd.NBD_OPT_GO, 1, 4096, 32 << 20))!;
    expect(hex(bs.data)).toBe('0003' + '00000001' + '00001000' + '02000000');
    expect(nbd.decodeInfo(bs.data)).toEqual({ info: 3, minimum: 1, preferred: 4096, maximum: 32 << 20 });
    expect(() => nbd.decodeInfo(new Uint8Array(1))).toThrow(nbd.NbdProtocolError);
  });

  it('encodes the NBD_OPT_EXPORT_NAME reply with and without the 124 zero bytes', () => {
    const a = nbd.encodeExportNameReply(1 << 30, 0x12d, true);
    expect(hex(a)).toBe('0000000040000000' + '012d');
    const b = nbd.encodeExportNameReply(1 << 30, 0x12d, false);
    expect(b.length).toBe(134);
    expect(b.subarray(10).every((x) => x === 0)).toBe(true);
  });
});

describe('option parsing', () => {
  it('parses INFO/GO data', () => {
    const data = nbd.encodeInfoRequestData('zram0', [nbd.NBD_INFO_NAME, nbd.NBD_INFO_BLOCK_SIZE]);
    expect(hex(data)).toBe(`00000005${Buffer.from('zram0').toString('hex')}000200010003`);
    expect(nbd.parseOption(nbd.NBD_OPT_GO, data)).toEqual({ kind: 'go', name: 'zram0', requests: [1, 3] });
    expect(nbd.parseOption(nbd.NBD_OPT_INFO, nbd.encodeInfoRequestData(''))).toEqual({
      kind: 'info',
      name: '',
      requests: [],
    });
  });

  it('reports malformed INFO/GO data as invalid', () => {
    const good = nbd.encodeInfoRequestData('zram0', [1]);
    const cases: Uint8Array[] = [
      good.subarray(0, 5), // too short
      good.subarray(0, good.length - 1), // request list cut
      Buffer.concat([good, Buffer.from([0])]), // trailing byte
      (() => {
        const b = Buffer.from(good);
        b.writeUInt32BE(1000, 0);
        return b;
      })(), // name longer than data
      (() => {
        const b = Buffer.from(good);
        b.writeUInt32BE(0xffffffff, 0);
        return b;
      })(),
      nbd.encodeInfoRequestData('a\0b'), // NUL in name
      Buffer.concat([Buffer.from([0, 0, 0, 2, 0xc3, 0x28]), Buffer.from([0, 0])]), // bad UTF-8
    ];
    for (const c of cases) expect(nbd.parseOption(nbd.NBD_OPT_GO, c).kind).toBe('invalid');
  });

  it('parses the other options and flags unknown ones', () => {
    expect(nbd.parseOption(nbd.NBD_OPT_EXPORT_NAME, Buffer.from('zram0'))).toEqual({
      kind: 'export-name',
      name: 'zram0',
    });
    expect(nbd.parseOption(nbd.NBD_OPT_EXPORT_NAME, Buffer.alloc(0))).toEqual({ kind: 'export-name', name: '' });
    expect(nbd.parseOption(nbd.NBD_OPT_EXPORT_NAME, Buffer.alloc(5000, 0x61)).kind).toBe('invalid');
    expect(nbd.parseOption(nbd.NBD_OPT_ABORT, Buffer.alloc(0))).toEqual({ kind: 'abort' });
    expect(nbd.parseOption(nbd.NBD_OPT_LIST, Buffer.alloc(0))).toEqual({ kind: 'list' });
    expect(nbd.parseOption(nbd.NBD_OPT_LIST, Buffer.alloc(1)).kind).toBe('invalid');
    expect(nbd.parseOption(nbd.NBD_OPT_STRUCTURED_REPLY, Buffer.alloc(0))).toEqual({ kind: 'structured-reply' });
    expect(nbd.parseOption(nbd.NBD_OPT_STRUCTURED_REPLY, Buffer.alloc(4)).kind).toBe('invalid');
    expect(nbd.parseOption(nbd.NBD_OPT_STARTTLS, Buffer.alloc(0))).toEqual({ kind: 'starttls' });
    expect(nbd.parseOption(nbd.NBD_OPT_STARTTLS, Buffer.alloc(1)).kind).toBe('invalid');
    expect(nbd.parseOption(nbd.NBD_OPT_SET_META_CONTEXT, Buffer.alloc(8))).toEqual({ kind: 'unsupported', option: 10 });
    expect(nbd.parseOption(0xdeadbeef, Buffer.alloc(3))).toEqual({ kind: 'unsupported', option: 0xdeadbeef });
  });
});

describe('transmission encoding', () => {
  it('round-trips a request header, 64-bit offset and cookie included', () => {
    const r = {
      flags: nbd.NBD_CMD_FLAG_FUA,
      type: nbd.NBD_CMD_WRITE,
      cookieHi: 0xdeadbeef,
      cookieLo: 0x01020304,
      offset: 2 ** 33 + 512,
      length: 4096,
    };
    const b = nbd.encodeRequest(r);
    expect(hex(b)).toBe('25609513' + '0001' + '0001' + 'deadbeef01020304' + '0000000200000200' + '00001000');
    expect(nbd.decodeRequest(b)).toEqual(r);
    expect(() => nbd.decodeRequest(b.subarray(0, 27))).toThrow(nbd.NbdProtocolError);
    expect(() => nbd.decodeRequest(nbd.encodeRequest({ ...r, magic: 0x12345678 }))).toThrow(/bad request magic/);
  });

  it('decodes offsets above 2^53 as numbers beyond any device', () => {
    const b = nbd.encodeRequest({ type: 0, offset: 0, length: 1 });
    b.writeUInt32BE(0xffffffff, 16);
    b.writeUInt32BE(0xffffffff, 20);
    expect(nbd.decodeRequest(b).offset).toBeGreaterThan(2 ** 63);
  });

  it('encodes simple replies', () => {
    const b = nbd.encodeSimpleReply(nbd.NBD_EINVAL, 1, 0xffffffff);
    expect(hex(b)).toBe('67446698' + '00000016' + '00000001ffffffff');
    expect(nbd.decodeSimpleReply(b)).toEqual({ error: 22, cookieHi: 1, cookieLo: 0xffffffff });
    expect(nbd.decodeSimpleReply(b.subarray(0, 15))).toBeNull();
    expect(() => nbd.decodeSimpleReply(nbd.encodeNoneChunk(0, 0))).toThrow(nbd.NbdProtocolError);
  });

  it('encodes structured reply chunks: OFFSET_DATA, NONE, ERROR', () => {
    const h = nbd.encodeOffsetDataHeader(true, 0, 7, 8192, 4096);
    expect(hex(h)).toBe('668e33ef' + '0001' + '0001' + '0000000000000007' + '00001008' + '0000000000002000');
    const chunk = nbd.decodeStructuredChunk(Buffer.concat([h, Buffer.alloc(4096, 1)]))!;
    expect(chunk).toMatchObject({
      flags: nbd.NBD_REPLY_FLAG_DONE,
      type: nbd.NBD_REPLY_TYPE_OFFSET_DATA,
      cookieLo: 7,
      total: 20 + 8 + 4096,
    });
    expect(nbd.readU64(chunk.payload, 0)).toBe(8192);
    expect(() => nbd.encodeOffsetDataHeader(true, 0, 0, 0, 0)).toThrow(RangeError);

    expect(hex(nbd.encodeNoneChunk(0, 9))).toBe('668e33ef' + '0001' + '0000' + '0000000000000009' + '00000000');

    const e = nbd.encodeErrorChunk(true, 0, 3, nbd.NBD_ENOSPC, 'full');
    expect(hex(e)).toBe(`668e33ef0001800100000000000000030000000a0000001c0004${Buffer.from('full').toString('hex')}`);
    expect(() => nbd.encodeErrorChunk(true, 0, 0, 0)).toThrow(RangeError);
    expect(nbd.encodeErrorChunk(true, 0, 0, 5, 'x'.repeat(70000)).length).toBe(20 + 6 + 4096);
  });
});

describe('ByteQueue', () => {
  it('hands out views within a chunk and copies across chunks', () => {
    const q = new nbd.ByteQueue();
    const a = Buffer.from([1, 2, 3, 4]);
    q.push(a);
    q.push(Buffer.from([5, 6]));
    q.push(new Uint8Array(0));
    expect(q.length).toBe(6);
    expect(q.byteAt(4)).toBe(5);
    const x = q.take(2);
    expect(x.buffer).toBe(a.buffer); // a view, no copy
    expect([...x]).toEqual([1, 2]);
    expect([...q.take(3)]).toEqual([3, 4, 5]);
    expect(q.byteAt(0)).toBe(6);
    expect(() => q.take(2)).toThrow(RangeError);
    expect([...q.take(1)]).toEqual([6]);
    expect(q.length).toBe(0);
  });
});

describe('ServerDecoder', () => {
  function handshakeBytes(): Buffer {
    return Buffer.concat([
      Buffer.from([0, 0, 0, 3]),
      nbd.encodeClientOption(nbd.NBD_OPT_STRUCTURED_REPLY),
      nbd.encodeClientOption(nbd.NBD_OPT_GO, nbd.encodeInfoRequestData('zram0', [3])),
    ]);
  }

  function requestBytes(): { bytes: Buffer; writes: Buffer[] } {
    const parts: Buffer[] = [];
    const writes: Buffer[] = [];
    for (let i = 0; i < 20; i++) {
      const type = [nbd.NBD_CMD_READ, nbd.NBD_CMD_WRITE, nbd.NBD_CMD_FLUSH, nbd.NBD_CMD_TRIM][i % 4]!;
      const length = type === nbd.NBD_CMD_FLUSH ? 0 : 1 + ((i * 977) % 9000);
      parts.push(nbd.encodeRequest({ type, cookieLo: i, offset: i * 4096, length }));
      if (type === nbd.NBD_CMD_WRITE) {
        const data = Buffer.alloc(length, i);
        writes.push(data);
        parts.push(data);
      }
    }
    parts.push(nbd.encodeRequest({ type: nbd.NBD_CMD_DISC, offset: 0, length: 0, cookieLo: 99 }));
    return { bytes: Buffer.concat(parts), writes };
  }

  for (const sizes of [[1], [3, 7, 1], [28], [4096], [1 << 20]]) {
    it(`decodes a handshake and pipelined requests split in pieces of ${sizes.join('/')} bytes`, () => {
      const dec = new nbd.ServerDecoder();
      expect(dec.phase).toBe('client-flags');
      const hs = decodeSplit(dec, handshakeBytes(), sizes, (ev) => {
        if (ev.kind === 'option' && ev.option === nbd.NBD_OPT_GO) dec.enterTransmission();
      });
      expect(hs.map((e) => e.kind)).toEqual(['client-flags', 'option', 'option']);
      expect(hs[0]).toEqual({ kind: 'client-flags', flags: 3 });
      expect(dec.phase).toBe('transmission');

      const { bytes, writes } = requestBytes();
      const evs = decodeSplit(dec, bytes, sizes);
      expect(evs.length).toBe(21);
      let w = 0;
      evs.forEach((ev, i) => {
        expect(ev.kind).toBe('request');
        if (ev.kind !== 'request') return;
        expect(ev.request.cookieLo).toBe(i === 20 ? 99 : i);
        if (ev.request.type === nbd.NBD_CMD_WRITE) {
          expect(ev.payload!.equals(writes[w++]!)).toBe(true);
        } else {
          expect(ev.payload).toBeUndefined();
        }
      });
      expect(w).toBe(writes.length);
      expect(dec.buffered).toBe(0);
    });
  }

  it('decodes options queued behind GO as requests once the server enters transmission', () => {
    const dec = new nbd.ServerDecoder();
    dec.push(Buffer.concat([handshakeBytes(), nbd.encodeRequest({ type: 0, offset: 0, length: 512, cookieLo: 5 })]));
    expect(dec.next()!.kind).toBe('client-flags');
    expect(dec.next()!.kind).toBe('option');
    expect(dec.next()!.kind).toBe('option');
    dec.enterTransmission();
    const ev = dec.next();
    expect(ev).toMatchObject({ kind: 'request', request: { type: 0, length: 512, cookieLo: 5 } });
    expect(() => dec.enterTransmission()).toThrow();
  });

  it('is fatal on a bad option magic, as soon as 8 bytes are in', () => {
    const dec = new nbd.ServerDecoder();
    dec.push(Buffer.from([0, 0, 0, 1]));
    expect(dec.next()!.kind).toBe('client-flags');
    dec.push(Buffer.from('IHAVEOPX'));
    expect(dec.next()).toMatchObject({ kind: 'fatal' });
    expect(dec.phase).toBe('dead');
    dec.push(Buffer.alloc(100));
    expect(dec.next()).toBeNull();
  });

  it('is fatal on oversized option data without waiting for it', () => {
    const dec = new nbd.ServerDecoder({ maxOptionLength: 1024 });
    dec.push(Buffer.from([0, 0, 0, 1]));
    dec.next();
    const h = nbd.encodeClientOption(nbd.NBD_OPT_GO, Buffer.alloc(0));
    h.writeUInt32BE(0xffffffff, 12);
    dec.push(h);
    expect(dec.next()).toMatchObject({ kind: 'fatal', reason: expect.stringMatching(/exceeds/) });
  });

  function transmissionDecoder(opts?: nbd.ServerDecoderOptions): nbd.ServerDecoder {
    const dec = new nbd.ServerDecoder(opts);
    dec.push(
      Buffer.concat([Buffer.from([0, 0, 0, 3]), nbd.encodeClientOption(nbd.NBD_OPT_GO, nbd.encodeInfoRequestData(''))]),
    );
    dec.next();
    dec.next();
    dec.enterTransmission();
    return dec;
  }

  it('is fatal on a bad request magic as soon as its 4 bytes are in', () => {
    const dec = transmissionDecoder();
    dec.push(Buffer.from([0x25, 0x60, 0x95, 0x14]));
    expect(dec.next()).toMatchObject({ kind: 'fatal', reason: expect.stringMatching(/magic 0x25609514/) });
    expect(dec.phase).toBe('dead');
  });

  it('flags a WRITE longer than maxPayload without reading its data, then stops', () => {
    const dec = transmissionDecoder({ maxPayload: 1 << 20 });
    dec.push(nbd.encodeRequest({ type: nbd.NBD_CMD_WRITE, offset: 0, length: 0xffffffff, cookieLo: 1 }));
    dec.push(Buffer.alloc(1000));
    expect(dec.next()).toMatchObject({ kind: 'request', oversized: true, request: { length: 0xffffffff } });
    expect(dec.phase).toBe('dead');
    expect(dec.next()).toBeNull();
  });

  it('passes a huge READ length through (no payload to read): the server answers it', () => {
    const dec = transmissionDecoder({ maxPayload: 1 << 20 });
    dec.push(nbd.encodeRequest({ type: nbd.NBD_CMD_READ, offset: 0, length: 0xffffffff, cookieLo: 1 }));
    expect(dec.next()).toMatchObject({ kind: 'request', request: { length: 0xffffffff } });
    expect(dec.next()).toBeNull();
    expect(dec.phase).toBe('transmission');
  });

  it('passes unknown command types through (the server answers EINVAL)', () => {
    const dec = transmissionDecoder();
    dec.push(nbd.encodeRequest({ type: 0x7777, flags: 0xffff, offset: 0, length: 0 }));
    expect(dec.next()).toMatchObject({ kind: 'request', request: { type: 0x7777, flags: 0xffff } });
  });

  it('survives random garbage in every phase without throwing', () => {
    let seed = 12345;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 16) & 0xff;
    };
    for (let trial = 0; trial < 200; trial++) {
      const dec =
        trial % 2 ? transmissionDecoder({ maxPayload: 4096 }) : new nbd.ServerDecoder({ maxOptionLength: 4096 });
      const junk = Buffer.alloc(64 + (trial % 300));
      for (let i = 0; i < junk.length; i++) junk[i] = rnd();
      if (trial % 4 === 1) junk.writeUInt32BE(nbd.NBD_REQUEST_MAGIC, 0);
      expect(() =>
        decodeSplit(dec, junk, [1 + (trial % 13)], (ev) => {
          if (ev.kind === 'option') nbd.parseOption(ev.option, ev.data);
        }),
      ).not.toThrow();
    }
  });
});
