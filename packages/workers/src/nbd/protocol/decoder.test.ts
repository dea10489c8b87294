// The incremental server decoder: split and pipelined input, phases, and fatal violations.
import { describe, expect, it } from 'vitest';
import * as nbd from '../protocol.js';

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

describe('ServerDecoder.decodeRequest (the server fast path)', () => {
  function transmission(opts?: nbd.ServerDecoderOptions): nbd.ServerDecoder {
    const dec = new nbd.ServerDecoder(opts);
    dec.push(
      Buffer.concat([Buffer.from([0, 0, 0, 3]), nbd.encodeClientOption(nbd.NBD_OPT_GO, nbd.encodeInfoRequestData(''))]),
    );
    dec.next();
    dec.next();
    dec.enterTransmission();
    return dec;
  }

  it('fills one reused record per request, header fields read in place or across chunks', () => {
    const dec = transmission();
    const rec = dec.request;
    const data = Buffer.alloc(4096, 7);
    const w = Buffer.concat([
      nbd.encodeRequest({
        type: nbd.NBD_CMD_WRITE,
        flags: 1,
        offset: 2 ** 40 + 4096,
        length: 4096,
        cookieHi: 0xfeedface,
        cookieLo: 0xdeadbeef,
      }),
      data,
    ]);
    const r = nbd.encodeRequest({ type: nbd.NBD_CMD_READ, offset: 8192, length: 4096, cookieLo: 9 });
    // the WRITE whole in one chunk, the READ's header split 3 + 25
    dec.push(Buffer.concat([w, r.subarray(0, 3)]));
    expect(dec.decodeRequest()).toBe(nbd.DECODE_REQUEST);
    expect(dec.request).toBe(rec);
    expect(rec).toMatchObject({ type: nbd.NBD_CMD_WRITE, flags: 1, offset: 2 ** 40 + 4096, length: 4096 });
    expect([rec.cookieHi, rec.cookieLo]).toEqual([0xfeedface, 0xdeadbeef]);
    expect(rec.payload!.equals(data)).toBe(true);
    expect(dec.decodeRequest()).toBe(nbd.DECODE_MORE);
    dec.push(r.subarray(3));
    expect(dec.decodeRequest()).toBe(nbd.DECODE_REQUEST);
    expect(dec.request).toBe(rec);
    expect(rec).toMatchObject({
      type: nbd.NBD_CMD_READ,
      offset: 8192,
      length: 4096,
      cookieHi: 0,
      cookieLo: 9,
      payload: null,
    });
    expect(dec.decodeRequest()).toBe(nbd.DECODE_MORE);
    expect(dec.buffered).toBe(0);
  });

  it('a payload split across chunks arrives whole; a bad magic and an oversized WRITE end decoding', () => {
    const dec = transmission({ maxPayload: 8192 });
    const data = Buffer.from(Array.from({ length: 4096 }, (_, i) => i & 0xff));
    const w = Buffer.concat([
      nbd.encodeRequest({ type: nbd.NBD_CMD_WRITE, offset: 0, length: 4096, cookieLo: 1 }),
      data,
    ]);
    dec.push(w.subarray(0, 1000));
    expect(dec.decodeRequest()).toBe(nbd.DECODE_MORE);
    dec.push(w.subarray(1000));
    expect(dec.decodeRequest()).toBe(nbd.DECODE_REQUEST);
    expect(dec.request.payload!.equals(data)).toBe(true);

    dec.push(nbd.encodeRequest({ type: nbd.NBD_CMD_WRITE, offset: 0, length: 8193, cookieLo: 2 }));
    expect(dec.decodeRequest()).toBe(nbd.DECODE_REQUEST);
    expect(dec.request).toMatchObject({ oversized: true, length: 8193, payload: null });
    expect(dec.phase).toBe('dead');

    const bad = transmission();
    bad.push(Buffer.from([0x25, 0x60, 0x95, 0x14]));
    expect(bad.decodeRequest()).toBe(nbd.DECODE_FATAL);
    expect(bad.fatalReason).toMatch(/magic 0x25609514/);
    expect(bad.phase).toBe('dead');
  });
});
