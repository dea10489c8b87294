// nbdinfo (libnbd) against the in-process NBD server: export size, flags,
// block sizes, the export list and the default ("") export name.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missing, run, runOk, serve, type Served } from './nbd-helpers.js';

const skip = missing('nbdinfo');
const SIZE = 48 << 20;

describe.skipIf(skip !== null)(skip ?? 'nbdinfo', () => {
  let s: Served;
  beforeAll(async () => {
    s = await serve({ disksize: SIZE });
  });
  afterAll(async () => {
    await s?.close();
  });

  it('reports the export size, name, flags and block sizes (--json)', async () => {
    const r = await runOk('nbdinfo', ['--json', `nbd://127.0.0.1:${s.port}/zram0`]);
    const info = JSON.parse(r.stdout);
    expect(info.protocol).toBe('newstyle-fixed');
    expect(info.structured).toBe(true);
    const ex = info.exports[0];
    expect(ex['export-name']).toBe('zram0');
    expect(ex['export-size']).toBe(SIZE);
    expect(ex.is_read_only).toBe(false);
    expect(ex.can_flush).toBe(true);
    expect(ex.can_fua).toBe(true);
    expect(ex.can_trim).toBe(true);
    expect(ex.can_zero).toBe(true);
    expect(ex.can_multi_conn).toBe(true);
    expect(ex.block_size_minimum).toBe(1);
    expect(ex.block_size_preferred).toBe(4096);
    expect(ex.block_size_maximum).toBe(32 << 20);
  });

  it('reports the size alone (--size), also for the default export ""', async () => {
    expect((await runOk('nbdinfo', ['--size', `nbd://127.0.0.1:${s.port}/zram0`])).stdout.trim()).toBe(String(SIZE));
    expect((await runOk('nbdinfo', ['--size', `nbd://127.0.0.1:${s.port}`])).stdout.trim()).toBe(String(SIZE));
  });

  it('lists the export (NBD_OPT_LIST)', async () => {
    const r = await runOk('nbdinfo', ['--list', '--json', `nbd://127.0.0.1:${s.port}`]);
    const info = JSON.parse(r.stdout);
    expect(info.exports.map((e: { 'export-name': string }) => e['export-name'])).toEqual(['zram0']);
  });

  it('fails cleanly on an unknown export (NBD_REP_ERR_UNKNOWN) and the server keeps serving', async () => {
    const bad = await run('nbdinfo', ['--size', `nbd://127.0.0.1:${s.port}/nope`]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/unknown export|nope/i);
    expect((await runOk('nbdinfo', ['--size', `nbd://127.0.0.1:${s.port}/zram0`])).stdout.trim()).toBe(String(SIZE));
  });
});
