// The server side of the handshake: greeting, client flags, option replies and option parsing
// (replies read back with the client-side parsers).
import { describe, expect, it } from 'vitest';
import * as nbd from '../protocol.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

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
