// A real pool past 16 GiB, touched only around a chosen line: the frames below
// (line - span/2) are taken with allocPages (frame descriptors are written, the
// frames never are), then objects fill `span` of memory, so zspages, objects that
// cross frames and frames of one zspage lie on both sides of the line (16 GiB by
// default: the boundary between the 4th and the 5th 4 GiB segment, and where one
// Int32 view of memory used to end). Every object is read back and checked, most
// are freed and the pool compacted, frames above the line migrate below it, and
// pool.verify runs. Reports times, the process RSS and what crossed the line.
// A benchmark-style probe, not a test: it needs a few GiB of memory.
//
// Usage: node packages/bench/dist/big-pool.js [--max-bytes 20G] [--line 16G] [--span 2G]

import { parseArgs } from 'node:util';
import {
  MAX_ORDER,
  MIGRATE_OK,
  PAGE_SIZE,
  ZsPool,
  getNextPfn,
  isolateFrame,
  migrateFrame,
  objToOffset,
  objToPfn,
} from '@zsmalloc/core';
import { parseSize } from '@zsmalloc/workers';

const GiB = 2 ** 30;
const SIZES = [48, 200, 700, 1500, 3000, 3000, 4096];

function pattern(b: Uint8Array, seed: number): void {
  for (let k = 0; k < b.length; k++) b[k] = (seed * 131 + k * 7 + (k >>> 8)) & 255;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      'max-bytes': { type: 'string', default: '20G' },
      line: { type: 'string', default: '16G' },
      span: { type: 'string', default: '2G' },
    },
  });
  const maxBytes = parseSize(values['max-bytes']!);
  const line = parseSize(values.line!) / PAGE_SIZE;
  const span = parseSize(values.span!);
  const t0 = performance.now();
  const lap = (what: string): void =>
    console.log(
      `${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s  ${what}  (rss ${(process.memoryUsage().rss / GiB).toFixed(2)} GiB)`,
    );
  const pool = ZsPool.create({ maxBytes, name: 'big' });
  lap(`pool of ${(maxBytes / GiB).toFixed(2)} GiB: ${pool.shared.phys.segments.length} segments`);
  const below = line - span / 2 / PAGE_SIZE;
  const reserved: number[] = [];
  while (pool.phys.presentFrames < below) reserved.push(pool.allocPages(MAX_ORDER));
  lap(`${((below * PAGE_SIZE) / GiB).toFixed(2)} GiB taken with allocPages (descriptors only)`);

  const handles: number[] = [];
  const buf = new Uint8Array(PAGE_SIZE);
  for (let i = 0; pool.stats().pagesUsed * PAGE_SIZE < span; i++) {
    const b = buf.subarray(0, SIZES[i % SIZES.length]!);
    pattern(b, i);
    handles.push(pool.mallocWrite(b));
  }
  const st = pool.stats();
  let above = 0;
  let crossing = 0;
  let spanning = 0;
  for (let i = 0; i < handles.length; i++) {
    const loc = pool.handles.words[handles[i]!]!;
    const pfn = objToPfn(loc);
    if (pfn >= line) above++;
    if (pfn === line - 1 && objToOffset(loc) + 8 + SIZES[i % SIZES.length]! > PAGE_SIZE) crossing++;
  }
  const map = pool.frameMap();
  for (let p = 0; p < map.length; p++) if (map[p] === 1 && p < line && getNextPfn(pool.phys.fd, p) >= line) spanning++;
  lap(
    `${handles.length} objects in ${st.pagesUsed} frames (${((st.pagesUsed * PAGE_SIZE) / GiB).toFixed(2)} GiB); ` +
      `${above} start at or above the line, ${crossing} cross it, ${spanning} zspage links cross it`,
  );

  const check = (h: number, i: number): void => {
    const n = pool.read(h, buf);
    const want = new Uint8Array(n);
    pattern(want, i);
    if (n !== SIZES[i % SIZES.length] || Buffer.compare(buf.subarray(0, n), want) !== 0)
      throw new Error(`object ${i} (handle ${h}) corrupted`);
  };
  handles.forEach(check);
  lap('every object read back and checked');
  pool.verify();
  lap('verify');

  for (let i = 0; i < handles.length; i++) if (i % 4 !== 0) pool.free(handles[i]!);
  const freed = pool.compact();
  lap(`3 in 4 objects freed; compaction freed ${freed} frames`);
  // every zspage frame above the line migrates into a frame below it (freed reserved blocks)
  const after = pool.frameMap();
  let target = -1;
  let moved = 0;
  for (let p = line; p < after.length; p++) {
    if (after[p] !== 1 && after[p] !== 2) continue;
    if (target < 0 || (target & ((1 << MAX_ORDER) - 1)) === 0) {
      const block = reserved.pop();
      if (block === undefined) break;
      pool.freePages(block, MAX_ORDER);
      target = block;
    }
    pool.phys.zoneLock();
    const ok = pool.phys.isolateFreeFrameLocked(target);
    pool.phys.zoneUnlock();
    if (!ok || !isolateFrame(pool, p)) throw new Error(`cannot isolate frame ${p} or target ${target}`);
    if (migrateFrame(pool, p, target) !== MIGRATE_OK) throw new Error(`frame ${p} did not migrate`);
    target++;
    moved++;
  }
  let stillAbove = 0;
  for (let i = 0; i < handles.length; i += 4) if (objToPfn(pool.handles.words[handles[i]!]!) >= line) stillAbove++;
  lap(`${moved} frames migrated from above the line to below it; ${stillAbove} objects still start above it`);
  for (let i = 0; i < handles.length; i += 4) check(handles[i]!, i);
  pool.verify();
  lap('every remaining object checked, verify');
}

main();
