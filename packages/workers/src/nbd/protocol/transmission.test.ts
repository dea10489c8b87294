// Request headers and simple / structured replies, byte for byte and read back.
import { describe, expect, it } from 'vitest';
import * as nbd from '../protocol.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

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
