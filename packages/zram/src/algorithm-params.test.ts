import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAlgorithmParams } from './algorithm-params.js';
import { trainZstdDictionary } from './codecs/zstd-dict.js';
import { ZramDevice } from './device.js';
import { fillPage, swapLikeKind } from './pages.js';

const PAGE = 4096;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'algo-params-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function swapPage(i: number): Uint8Array {
  const kind = swapLikeKind(i);
  return fillPage(new Uint8Array(PAGE), kind === 'random' ? 'text' : kind, i + 1);
}

function dictFile(): string {
  const samples: Uint8Array[] = [];
  for (let i = 50_000; samples.length < 200; i++) {
    const k = swapLikeKind(i);
    if (k === 'text' || k === 'binary') samples.push(fillPage(new Uint8Array(PAGE), k, i + 1));
  }
  const p = path.join(tmp, `dict-${Math.random().toString(36).slice(2)}`);
  fs.writeFileSync(p, trainZstdDictionary(samples, { dictSize: 32 * 1024, segmentSize: 128 }));
  return p;
}

function expectEinval(f: () => unknown): void {
  expect(f).toThrow(expect.objectContaining({ code: 'EINVAL' }));
}

describe('algorithm_params parsing', () => {
  it('parses the kernel forms in any order, with quotes and a trailing newline', () => {
    expect(parseAlgorithmParams('priority=1 level=8')).toEqual({ priority: 1, level: 8 });
    expect(parseAlgorithmParams('algo=zstd level=-3\n')).toEqual({ algo: 'zstd', level: -3 });
    expect(parseAlgorithmParams('dict=/etc/dictionary algo=zstd')).toEqual({ algo: 'zstd', dict: '/etc/dictionary' });
    expect(parseAlgorithmParams('  level=+5   dict="/a b/c"  ')).toEqual({ level: 5, dict: '/a b/c' });
    expect(parseAlgorithmParams('')).toEqual({});
  });

  it('rejects malformed strings with EINVAL', () => {
    for (const bad of [
      'level',
      'level=',
      'level=abc',
      'level=3x',
      'level=1.5',
      'priority=99999999999',
      'priority=',
      'algo=',
      'dict=',
      'colour=blue',
      'level=3 =4',
      'dict="/unterminated',
    ]) {
      expectEinval(() => parseAlgorithmParams(bad));
    }
  });
});

describe('algorithm_params on the device', () => {
  it('zstd level and dictionary as the primary algorithm round-trip every page', () => {
    const dict = dictFile();
    const dev = ZramDevice.create({ disksize: 256 * PAGE, algorithm: 'zstd', algorithmParams: `level=7 dict=${dict}` });
    expect(dev.algorithmParams()).toBe(`#0: zstd level=7 dict=${dict}\n`);
    const plain = ZramDevice.create({ disksize: 256 * PAGE, algorithm: 'zstd', algorithmParams: 'level=7' });
    for (let i = 0; i < 256; i++) {
      dev.writePage(i, swapPage(i));
      plain.writePage(i, swapPage(i));
    }
    const got = new Uint8Array(PAGE);
    for (let i = 0; i < 256; i++) {
      dev.readPage(i, got);
      expect(Buffer.compare(got, swapPage(i)), `page ${i}`).toBe(0);
    }
    dev.verify();
    expect(dev.statValues().mm.comprDataSize).toBeLessThan(plain.statValues().mm.comprDataSize);
  });

  it('a second thread view builds the same codec from shared memory', () => {
    const dict = dictFile();
    const dev = ZramDevice.create({ disksize: 16 * PAGE, algorithm: 'zstd', algorithmParams: { dict, level: 3 } });
    dev.writePage(3, swapPage(3));
    const other = ZramDevice.attach(dev.shared, { pool: dev.pool });
    const got = new Uint8Array(PAGE);
    other.readPage(3, got);
    expect(Buffer.compare(got, swapPage(3))).toBe(0);
  });

  it('zstd with a dictionary works as a recompression algorithm', () => {
    const dict = dictFile();
    const dev = ZramDevice.create({ disksize: 0, algorithm: 'lz4' });
    dev.setRecompAlgorithm('zstd', 1);
    dev.setAlgorithmParams(`algo=zstd level=9 dict=${dict}`);
    expect(dev.algorithmParams()).toBe(`#0: lz4\n#1: zstd level=9 dict=${dict}\n`);
    dev.setDisksize(128 * PAGE);
    for (let i = 0; i < 128; i++) dev.writePage(i, swapPage(i));
    const before = dev.statValues().mm.comprDataSize;
    expect(dev.recompress({})).toBeGreaterThan(0);
    expect(dev.statValues().mm.comprDataSize).toBeLessThan(before);
    const got = new Uint8Array(PAGE);
    for (let i = 0; i < 128; i++) {
      dev.readPage(i, got);
      expect(Buffer.compare(got, swapPage(i)), `page ${i}`).toBe(0);
    }
    dev.verify();
  });

  it('resolves priority by algo, and setting again replaces every parameter', () => {
    const dev = ZramDevice.create({ disksize: 0, algorithm: 'zstd' });
    dev.setRecompAlgorithm('brotli', 2);
    dev.setAlgorithmParams('level=5');
    dev.setAlgorithmParams('priority=0 level=9');
    expect(dev.algorithmParams()).toBe('#0: zstd level=9\n#2: brotli\n');
    dev.setAlgorithmParams('algo=zstd');
    expect(dev.algorithmParams()).toBe('#0: zstd\n#2: brotli\n');
  });

  it('rejects bad requests with EINVAL/ENOENT/EBUSY and changes nothing', () => {
    const dict = dictFile();
    const dev = ZramDevice.create({ disksize: 0, algorithm: 'zstd', algorithmParams: `level=4 dict=${dict}` });
    dev.setRecompAlgorithm('deflate', 1);
    const before = dev.algorithmParams();
    const bad = path.join(tmp, 'bad.dict');
    const good = fs.readFileSync(path.resolve(__dirname, '../../../test/fixtures/zstd-format.dict'));
    fs.writeFileSync(bad, good.subarray(0, 100));
    expectEinval(() => dev.setAlgorithmParams('priority=4 level=3'));
    expectEinval(() => dev.setAlgorithmParams('priority=-1 level=3'));
    expectEinval(() => dev.setAlgorithmParams('priority=2 level=3')); // no algorithm there
    expectEinval(() => dev.setAlgorithmParams('algo=brotli level=3')); // no priority uses brotli
    expectEinval(() => dev.setAlgorithmParams('algo=deflate level=3')); // deflate takes no level here
    expectEinval(() => dev.setAlgorithmParams('level=23'));
    expectEinval(() => dev.setAlgorithmParams('level=3 bogus=1'));
    expectEinval(() => dev.setAlgorithmParams(`dict=${bad}`));
    expect(() => dev.setAlgorithmParams(`dict=${path.join(tmp, 'missing')}`)).toThrow(
      expect.objectContaining({ code: 'ENOENT' }),
    );
    expect(dev.algorithmParams()).toBe(before);
    dev.setDisksize(8 * PAGE);
    expect(() => dev.setAlgorithmParams('level=1')).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    dev.writePage(0, swapPage(0));
    const got = new Uint8Array(PAGE);
    dev.readPage(0, got);
    expect(Buffer.compare(got, swapPage(0))).toBe(0);
    dev.reset();
    expect(dev.algorithmParams()).toBe('#0: lz4\n');
  });
});
