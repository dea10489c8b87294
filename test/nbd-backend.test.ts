// The NBD server's backend contract, without external clients: error
// mapping (RangeError/EINVAL → EINVAL, ENOMEM/ENOSPC → ENOSPC, EIO and
// anything else → EIO), FLUSH waiting for writes in flight, FUA, replies
// answered as they finish (out of order), a misbehaving backend, and
// ZramDeviceBackend's write-zeroes at unaligned edges.
import { ZsError } from '@zsmalloc/core';
import { ZramDevice, ZramError, ZramRangeError } from '@zsmalloc/zram';
import { ServiceBackend, ZramService } from '@zsmalloc/workers';
import { NbdServer, ZramDeviceBackend, nbdErrorOf, type BlockBackend } from '@zsmalloc/workers/nbd';
import { describe, expect, it } from 'vitest';
import { RawClient, nbd, randomBytes } from './nbd-helpers.js';

describe('nbdErrorOf', () => {
  it('maps backend errors to NBD error values', () => {
    expect(nbdErrorOf(new RangeError('out'))).toBe(nbd.NBD_EINVAL);
    expect(nbdErrorOf(new ZsError('EINVAL', 'bad'))).toBe(nbd.NBD_EINVAL);
    expect(nbdErrorOf(new ZsError('ENOMEM', 'full'))).toBe(nbd.NBD_ENOSPC);
    expect(nbdErrorOf(new ZsError('ENOSPC', 'full'))).toBe(nbd.NBD_ENOSPC);
    expect(nbdErrorOf(new ZsError('EBUSY', 'busy'))).toBe(nbd.NBD_EIO);
    expect(nbdErrorOf(new ZramError('EIO', 'backing file'))).toBe(nbd.NBD_EIO);
    expect(nbdErrorOf(Object.assign(new Error('x'), { code: 'ENOSPC' }))).toBe(nbd.NBD_ENOSPC); // rebuilt after a thread hop
    expect(nbdErrorOf(new Error('boom'))).toBe(nbd.NBD_EIO);
    expect(nbdErrorOf('string')).toBe(nbd.NBD_EIO);
    expect(nbdErrorOf(undefined)).toBe(nbd.NBD_EIO);
  });
});

describe('ZramDeviceBackend', () => {
  it('writes zeroes over unaligned ranges, leaving the bytes around them alone', async () => {
    const dev = ZramDevice.create({ disksize: 1 << 20 });
    const be = new ZramDeviceBackend(dev);
    expect(be.size).toBe(1 << 20);
    const all = randomBytes(1 << 20, 3);
    await be.write(0, all);
    const ranges: [number, number][] = [
      [100, 10],
      [4000, 200],
      [5000, 20000],
      [65536, 65536],
      [200_001, 300_000],
      [(1 << 20) - 7, 7],
    ];
    for (const [o, l] of ranges) {
      await be.writeZeroes(o, l);
      all.fill(0, o, o + l);
    }
    const back = await be.read(0, 1 << 20);
    expect(Buffer.from(back).equals(all)).toBe(true);
    await expect(be.writeZeroes((1 << 20) - 4096, 8192)).rejects.toThrow(RangeError);
    await expect(be.read(1 << 20, 1)).rejects.toThrow(RangeError);
    await expect(be.write(-1, new Uint8Array(1))).rejects.toThrow(RangeError);
    await be.trim(0, 1 << 20);
    expect((await be.read(0, 4096)).every((x) => x === 0)).toBe(true);
    dev.verify();
    dev.close();
  });
});

describe('both zram backends share the range check and the page span', () => {
  /** Unaligned edges, a range inside one page, two partial pages, whole pages; then refused ranges. */
  async function exercise(be: BlockBackend, size: number): Promise<void> {
    const flat = randomBytes(size, 9);
    await be.write(0, flat);
    const edits: [number, number][] = [
      [100, 200],
      [4000, 200],
      [4095, 8194],
      [3 * 4096, 2 * 4096],
      [size - 4096 - 7, 4096 + 7],
    ];
    for (const [o, l] of edits) {
      const src = randomBytes(l, o);
      await be.write(o, src);
      flat.set(src, o);
      expect(Buffer.from(await be.read(o, l)).equals(Buffer.from(src)), `[${o}, +${l})`).toBe(true);
    }
    await be.writeZeroes(4095, 4098);
    flat.fill(0, 4095, 4095 + 4098);
    await be.write(size, new Uint8Array(0)); // zero length at the very end is inside
    expect(Buffer.from(await be.read(0, size)).equals(Buffer.from(flat))).toBe(true);
    const refused: [string, () => Promise<unknown>][] = [
      ['read', () => be.read(size, 1)],
      ['read', () => be.read(Number.NaN, 1)],
      ['write', () => be.write(size - 1, new Uint8Array(2))],
      ['write', () => be.write(-1, new Uint8Array(1))],
      ['writeZeroes', () => be.writeZeroes(0, size + 1)],
      ['writeZeroes', () => be.writeZeroes(1.5, 1)],
    ];
    for (const [op, call] of refused) {
      const err = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ZramRangeError);
      expect((err as ZramRangeError).op).toBe(op);
    }
    expect(Buffer.from(await be.read(0, size)).equals(Buffer.from(flat))).toBe(true); // refused requests changed nothing
  }

  it('ZramDeviceBackend', async () => {
    const dev = ZramDevice.create({ disksize: 64 * 4096 });
    await exercise(new ZramDeviceBackend(dev), dev.disksize);
    dev.verify();
    dev.close();
  });

  it('ServiceBackend', async () => {
    const svc = await ZramService.start({ disksize: 64 * 4096, compressionWorkers: 1, compaction: false });
    try {
      await exercise(new ServiceBackend(svc), svc.disksize);
      svc.device.verify();
    } finally {
      await svc.close();
    }
  });
});

/** A backend in memory whose calls can be delayed or made to fail. */
class FakeBackend implements BlockBackend {
  readonly size = 1 << 20;
  readonly mem = new Uint8Array(this.size);
  readonly events: string[] = [];
  writeDelayMs = 0;
  /** When set, every write waits for this promise (the test decides when writes finish). */
  writeGate: Promise<void> | null = null;
  failRead: unknown = null;
  failWrite: unknown = null;
  shortRead = false;

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (this.failRead) throw this.failRead;
    return this.mem.slice(offset, offset + (this.shortRead ? length - 1 : length));
  }
  async write(offset: number, data: Uint8Array): Promise<void> {
    this.events.push(`write ${offset} start`);
    if (this.writeDelayMs) await new Promise((r) => setTimeout(r, this.writeDelayMs));
    if (this.writeGate) await this.writeGate;
    if (this.failWrite) throw this.failWrite;
    this.mem.set(data, offset);
    this.events.push(`write ${offset} done`);
  }
  async trim(): Promise<void> {}
  async writeZeroes(offset: number, length: number): Promise<void> {
    this.mem.fill(0, offset, offset + length);
  }
  async flush(): Promise<void> {
    this.events.push('flush');
  }
}

async function withServer(fn: (be: FakeBackend, c: RawClient, server: NbdServer) => Promise<void>) {
  for (const structured of [false, true]) {
    const be = new FakeBackend();
    const server = await NbdServer.start({ backend: be, port: 0 });
    try {
      const c = await RawClient.connect(server.address().port);
      await c.handshake({ structured });
      await fn(be, c, server);
      c.close();
    } finally {
      await server.close();
    }
  }
}

describe('NbdServer over a fault-injecting backend', () => {
  it('maps backend failures to EIO / ENOSPC replies and keeps the connection', async () => {
    await withServer(async (be, c) => {
      be.failRead = new ZramError('EIO', 'backing device read failed');
      c.request({ type: nbd.NBD_CMD_READ, offset: 0, length: 4096, cookie: 1 });
      const r1 = await c.reply(new Map([[1, 4096]]));
      expect(r1.error).toBe(nbd.NBD_EIO);
      expect(r1.data).toBeUndefined(); // a failed simple READ reply carries no data
      be.failRead = null;
      be.failWrite = new ZsError('ENOMEM', 'mem_limit reached');
      c.request({ type: nbd.NBD_CMD_WRITE, offset: 0, length: 8, cookie: 2, data: Buffer.alloc(8, 1) });
      expect((await c.reply()).error).toBe(nbd.NBD_ENOSPC);
      be.failWrite = new Error('unexpected');
      c.request({ type: nbd.NBD_CMD_WRITE, offset: 0, length: 8, cookie: 3, data: Buffer.alloc(8, 1) });
      expect((await c.reply()).error).toBe(nbd.NBD_EIO);
      be.failWrite = null;
      be.shortRead = true;
      c.request({ type: nbd.NBD_CMD_READ, offset: 0, length: 100, cookie: 4 });
      expect((await c.reply(new Map([[4, 100]]))).error).toBe(nbd.NBD_EIO);
      be.shortRead = false;
      c.request({ type: nbd.NBD_CMD_READ, offset: 0, length: 8, cookie: 5 });
      const r5 = await c.reply(new Map([[5, 8]]));
      expect(r5.error).toBe(0);
      expect(r5.data!.every((x) => x === 0)).toBe(true); // the failed writes stored nothing
    });
  });

  it('answers requests as they finish: a fast READ overtakes a slow WRITE', async () => {
    await withServer(async (be, c) => {
      // the WRITE cannot finish until the READ's reply has arrived: a server that
      // answered in order (or ran one request at a time) never sends that reply
      let release = (): void => {};
      be.writeGate = new Promise<void>((r) => {
        release = r;
      });
      c.request({ type: nbd.NBD_CMD_WRITE, offset: 4096, length: 4, cookie: 1, data: Buffer.from([1, 2, 3, 4]) });
      c.request({ type: nbd.NBD_CMD_READ, offset: 0, length: 4, cookie: 2 });
      const first = await c.reply(new Map([[2, 4]]));
      release();
      const second = await c.reply(new Map([[2, 4]]));
      expect([first.cookie, second.cookie]).toEqual([2, 1]);
    });
  });

  it('FLUSH waits for writes in flight (on any connection); FUA flushes after its write', async () => {
    await withServer(async (be, c, server) => {
      be.writeDelayMs = 150;
      c.request({ type: nbd.NBD_CMD_WRITE, offset: 0, length: 4, cookie: 1, data: Buffer.from([9, 9, 9, 9]) });
      c.request({ type: nbd.NBD_CMD_FLUSH, offset: 0, length: 0, cookie: 2 });
      const a = await c.reply();
      const b = await c.reply();
      expect([a.cookie, b.cookie]).toEqual([1, 2]);
      expect(be.events).toEqual(['write 0 start', 'write 0 done', 'flush']);
      // A FLUSH on another connection also waits (CAN_MULTI_CONN is advertised).
      be.events.length = 0;
      const c2 = await RawClient.connect(server.address().port);
      await c2.handshake();
      c.request({ type: nbd.NBD_CMD_WRITE, offset: 16, length: 4, cookie: 10, data: Buffer.from([5, 5, 5, 5]) });
      await new Promise((r) => setTimeout(r, 20)); // the write is in flight
      c2.request({ type: nbd.NBD_CMD_FLUSH, offset: 0, length: 0, cookie: 11 });
      expect((await c2.reply()).cookie).toBe(11);
      expect(be.events).toEqual(['write 16 start', 'write 16 done', 'flush']);
      expect((await c.reply()).cookie).toBe(10);
      c2.close();
      be.events.length = 0;
      c.request({
        type: nbd.NBD_CMD_WRITE,
        flags: nbd.NBD_CMD_FLAG_FUA,
        offset: 8,
        length: 4,
        cookie: 3,
        data: Buffer.from([7, 7, 7, 7]),
      });
      expect((await c.reply()).error).toBe(0);
      expect(be.events).toEqual(['write 8 start', 'write 8 done', 'flush']);
    });
  });
});
