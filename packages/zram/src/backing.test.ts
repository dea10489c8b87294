// The backing file: opened once without following symlinks (O_EXCL for generated
// names) and shared by descriptor; injected ENOSPC/EIO on its reads and writes
// lose no page and keep bd_stat true.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ZsError } from '@zsmalloc/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { injectBackingFault } from './backing.js';
import { ZramDevice } from './device.js';
import { ZramError } from './errors.js';
import { fillPage, type PageKind } from './pages.js';

const PAGE = 4096;
let dir = '';

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zram-backing-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
afterEach(() => injectBackingFault(null));

function bd(dev: ZramDevice): number[] {
  return dev.bdStat().trim().split(/\s+/).map(Number);
}

function readPage(dev: ZramDevice, i: number): Uint8Array {
  const dst = new Uint8Array(PAGE);
  dev.readPage(i, dst);
  return dst;
}

function filled(n: number): { dev: ZramDevice; ref: Uint8Array[] } {
  const dev = ZramDevice.create({ disksize: 32 * PAGE, backingFile: path.join(dir, `f${Math.random()}.img`) });
  const kinds: PageKind[] = ['text', 'random', 'binary'];
  const ref: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    ref[i] = fillPage(new Uint8Array(PAGE), kinds[i % 3]!, i + 1);
    dev.writePage(i, ref[i]!);
  }
  return { dev, ref };
}

describe('overwriting written-back pages', () => {
  it('counts each overwrite as its net change (the block given back, the new content counted)', () => {
    const { dev } = filled(6);
    dev.markIdle('all');
    expect(dev.writeback('idle')).toBe(6);
    const kinds: PageKind[] = ['zero', 'same', 'text', 'random', 'binary', 'text'];
    for (let i = 0; i < 6; i++) dev.writePage(i, fillPage(new Uint8Array(PAGE), kinds[i]!, 50 + i));
    const mm = dev.statValues().mm;
    expect(mm.origDataSize).toBe(6 * PAGE);
    expect(dev.statValues().bd.bdCount).toBe(0);
    expect(dev.recountStats()).toBe(0);
    dev.verify();
    dev.close();
  });
});

describe('opening the backing file', () => {
  it('refuses a symlink, even one to a file we could write', () => {
    const target = path.join(dir, 'target.img');
    fs.writeFileSync(target, 'keep me');
    const link = path.join(dir, 'link.img');
    fs.symlinkSync(target, link);
    expect(() => ZramDevice.create({ disksize: 8 * PAGE, backingFile: link })).toThrow(/symlink/);
    expect(fs.readFileSync(target, 'utf8')).toBe('keep me');
  });

  it('refuses what is not a regular file', () => {
    expect(() => ZramDevice.create({ disksize: 8 * PAGE, backingFile: dir })).toThrow(ZsError);
  });

  it('refuses a file open to group or others, or with a second link, and leaves it as it was', () => {
    const open = path.join(dir, 'open.img');
    fs.writeFileSync(open, 'shared', { mode: 0o600 });
    fs.chmodSync(open, 0o606); // world-writable
    expect(() => ZramDevice.create({ disksize: 8 * PAGE, backingFile: open })).toThrow(/open to other users/);
    fs.chmodSync(open, 0o640);
    expect(() => ZramDevice.create({ disksize: 8 * PAGE, backingFile: open })).toThrow(/open to other users/);
    expect(fs.readFileSync(open, 'utf8')).toBe('shared');
    expect(fs.statSync(open).mode & 0o777).toBe(0o640);
    const linked = path.join(dir, 'linked.img');
    fs.writeFileSync(linked, 'twice', { mode: 0o600 });
    fs.linkSync(linked, path.join(dir, 'second-name.img'));
    expect(() => ZramDevice.create({ disksize: 8 * PAGE, backingFile: linked })).toThrow(/2 links/);
    expect(fs.readFileSync(linked, 'utf8')).toBe('twice');
  });

  it.skipIf(process.getuid?.() !== 0)("refuses another user's file, even a private one, and leaves it alone", () => {
    const theirs = path.join(dir, 'theirs.img');
    fs.writeFileSync(theirs, 'not ours', { mode: 0o600 });
    fs.chownSync(theirs, 65534, 65534);
    expect(() => ZramDevice.create({ disksize: 8 * PAGE, backingFile: theirs })).toThrow(
      /belongs to uid 65534, not to us/,
    );
    expect(fs.readFileSync(theirs, 'utf8')).toBe('not ours');
    expect(fs.statSync(theirs).size).toBe(8);
  });

  it('refuses a FIFO without waiting for a writer', () => {
    const fifo = path.join(dir, 'fifo');
    expect(spawnSync('mkfifo', ['-m', '600', fifo]).status).toBe(0);
    expect(() => ZramDevice.create({ disksize: 8 * PAGE, backingFile: fifo })).toThrow(/not a regular file/);
  });

  it('with a generated name (exclusive), refuses a file that already exists and leaves it alone', () => {
    const f = path.join(dir, 'taken.img');
    fs.writeFileSync(f, 'someone else');
    expect(() => ZramDevice.create({ disksize: 8 * PAGE, backingFile: f, backingFileExclusive: true })).toThrow(
      /already exists/,
    );
    expect(fs.readFileSync(f, 'utf8')).toBe('someone else');
    const fresh = path.join(dir, 'fresh.img');
    const dev = ZramDevice.create({ disksize: 8 * PAGE, backingFile: fresh, backingFileExclusive: true });
    expect(fs.statSync(fresh).mode & 0o777).toBe(0o600);
    dev.close();
  });

  it('is opened once: every thread view uses the same descriptor, renaming the path changes nothing', () => {
    const { dev, ref } = filled(4);
    dev.markIdle('all');
    expect(dev.writeback('idle')).toBe(4);
    // Replace the path with a symlink to another file: the open descriptor still points at ours.
    const file = dev.backingFile;
    fs.renameSync(file, `${file}.moved`);
    fs.symlinkSync(path.join(dir, 'target.img'), file);
    const other = ZramDevice.attach(dev.shared);
    for (let i = 0; i < 4; i++) expect(readPage(other, i)).toEqual(ref[i]);
    other.close(); // a thread's view closes nothing shared
    for (let i = 0; i < 4; i++) expect(readPage(dev, i)).toEqual(ref[i]);
    dev.close();
  });
});

describe('backing-file I/O errors', () => {
  it.each(['EIO', 'ENOSPC'] as const)('a %s on writeback leaves every page in memory and bd_stat true', (code) => {
    const { dev, ref } = filled(8);
    dev.markIdle('all');
    let writes = 0;
    injectBackingFault((op) => (op === 'write' && ++writes === 4 ? code : null));
    const err = (() => {
      try {
        dev.writeback('idle');
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(ZramError);
    expect((err as ZramError).code).toBe('EIO');
    expect((err as ZramError).pagesDone).toBe(3);
    expect(bd(dev)).toEqual([3, 0, 3]); // the block taken for the failed page went back
    injectBackingFault(null);
    for (let i = 0; i < 8; i++) expect(readPage(dev, i)).toEqual(ref[i]);
    expect(bd(dev)).toEqual([3, 3, 3]);
    dev.verify();
    dev.close();
  });

  it('an EIO on read fails that read with EIO and changes nothing; the page reads back later', () => {
    const { dev, ref } = filled(4);
    dev.markIdle('all');
    expect(dev.writeback('idle')).toBe(4);
    const mmBefore = dev.mmStat();
    injectBackingFault((op, block) => (op === 'read' && block === 2 ? 'EIO' : null));
    const failed = dev.ioStat();
    const errs: unknown[] = [];
    for (let i = 0; i < 4; i++) {
      try {
        expect(readPage(dev, i)).toEqual(ref[i]);
      } catch (e) {
        errs.push(e);
      }
    }
    expect(errs).toHaveLength(1);
    expect(errs[0]).toBeInstanceOf(ZramError);
    expect((errs[0] as ZramError).code).toBe('EIO');
    // A failed swap-in keeps the page on the backing file.
    expect(() => dev.swapIn(1)).toThrow(ZramError);
    expect(dev.slotState(1).writtenBack).toBe(true);
    expect(bd(dev)).toEqual([4, 3, 4]); // only completed reads count
    expect(Number(dev.ioStat().trim().split(/\s+/)[0])).toBe(Number(failed.trim().split(/\s+/)[0]) + 1);
    expect(dev.mmStat()).toBe(mmBefore);
    injectBackingFault(null);
    for (let i = 0; i < 4; i++) expect(readPage(dev, i)).toEqual(ref[i]);
    expect(dev.swapIn(1)).toBe(true);
    expect(readPage(dev, 1)).toEqual(ref[1]);
    expect(bd(dev)).toEqual([3, 8, 4]);
    dev.verify();
    dev.close();
  });

  it('a failed partial write (read-modify-write of a written-back page) keeps the old page', () => {
    const { dev, ref } = filled(2);
    dev.markIdle('all');
    expect(dev.writeback('idle')).toBe(2);
    injectBackingFault((op) => (op === 'read' ? 'EIO' : null));
    expect(() => dev.write(10, new Uint8Array([1, 2, 3]))).toThrow(ZramError);
    injectBackingFault(null);
    expect(readPage(dev, 0)).toEqual(ref[0]);
    expect(bd(dev)[0]).toBe(2);
    dev.verify();
    dev.close();
  });
});
