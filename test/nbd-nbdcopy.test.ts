// nbdcopy (libnbd) copies a 64 MiB mixed-content file (zeros, text, random,
// and pages mixing them) into the export and back out again, byte-identical.
// nbdcopy uses several connections at once here (the server advertises
// CAN_MULTI_CONN) and pipelines up to 64 requests on each.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missing, randomBytes, runOk, serve, type Served } from './nbd-helpers.js';

const skip = missing('nbdcopy');
const SIZE = 64 << 20;

function mixedContent(): Buffer {
  const b = Buffer.alloc(SIZE); // zeros unless written below
  const text = Buffer.from('The zram device stores compressed pages in a zsmalloc pool. ');
  const MiB = 1 << 20;
  for (let mb = 0; mb < 64; mb++) {
    const at = mb * MiB;
    switch (mb % 4) {
      case 0: // zeros, with one odd byte in the middle of the MiB
        b[at + 300_001] = 0x5a;
        break;
      case 1: // text
        for (let i = 0; i < MiB; i += text.length) text.copy(b, at + i, 0, Math.min(text.length, MiB - i));
        b.write(`[MiB ${mb}]`, at);
        break;
      case 2: // random
        randomBytes(MiB, mb + 1).copy(b, at);
        break;
      case 3: // pages that mix: half text, half random, same-filled pages
        for (let p = 0; p < MiB / 4096; p++) {
          const pg = at + p * 4096;
          if (p % 3 === 0) b.fill(p & 0xff, pg, pg + 4096);
          else {
            text.copy(b, pg);
            randomBytes(2048, mb * 1000 + p).copy(b, pg + 2048);
          }
        }
        break;
    }
  }
  return b;
}

describe.skipIf(skip !== null)(skip ?? 'nbdcopy', () => {
  let s: Served;
  let dir: string;
  beforeAll(async () => {
    s = await serve({ disksize: SIZE });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nbd-nbdcopy-'));
  });
  afterAll(async () => {
    await s?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('copies 64 MiB of mixed content in and out, byte-identical', async () => {
    const src = mixedContent();
    const inFile = path.join(dir, 'in.bin');
    const outFile = path.join(dir, 'out.bin');
    fs.writeFileSync(inFile, src);

    await runOk('nbdcopy', [inFile, s.uri], { timeoutMs: 40_000 });
    await runOk('nbdcopy', [s.uri, outFile], { timeoutMs: 40_000 });

    const out = fs.readFileSync(outFile);
    expect(out.length).toBe(SIZE);
    if (!out.equals(src)) {
      let i = 0;
      while (out[i] === src[i]) i++;
      throw new Error(`first difference at byte ${i} (page ${Math.floor(i / 4096)})`);
    }
    // The zram device really holds the data, compressed: the zero pages and
    // same-filled pages take no pool memory, text compresses.
    const mm = s.dev.mmStat().trim().split(/\s+/).map(Number);
    const [origDataSize, comprDataSize] = mm;
    expect(origDataSize).toBeGreaterThan(SIZE / 2);
    expect(comprDataSize).toBeLessThan(origDataSize! * 0.7);
    s.dev.verify();
  }, 60_000);
});
