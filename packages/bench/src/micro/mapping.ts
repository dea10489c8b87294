// Mapping micro-benchmark: map+unmap of a 1 KiB object that lies inside one
// frame (a view straight into the frame) and of one that straddles two frames
// (copied through the per-thread area; 'rw' also copies back on unmap).

import { ZsPool } from '@zsmalloc/core';
import { measure, type Case, type MicroConfig } from '../measure.js';
import { linkBaselines, type BenchRow } from '../report.js';

const SIZE = 1024;
const IN_FRAME = 'map+unmap ro, in one frame';

/** Allocates 1 KiB objects until it has one of each kind; a direct mapping is a view over the pool's SharedArrayBuffer. */
export function findMappingObjects(pool: ZsPool): { inFrame: number; straddling: number; spare: number[] } {
  let inFrame = 0;
  let straddling = 0;
  const spare: number[] = [];
  for (let k = 0; k < 64 && (inFrame === 0 || straddling === 0); k++) {
    const h = pool.malloc(SIZE);
    const m = pool.map(h, 'ro');
    const direct = m.buffer instanceof SharedArrayBuffer;
    pool.unmap(h);
    if (direct && inFrame === 0) inFrame = h;
    else if (!direct && straddling === 0) straddling = h;
    else spare.push(h);
  }
  if (inFrame === 0 || straddling === 0) throw new Error('mapping: found no straddling 1 KiB object in 64 tries');
  return { inFrame, straddling, spare };
}

export async function benchMapping(cfg: MicroConfig): Promise<BenchRow[]> {
  const pool = ZsPool.create({ maxBytes: 4 << 20, name: 'bench_map' });
  const { inFrame, straddling, spare } = findMappingObjects(pool);
  const fill = new Uint8Array(SIZE).fill(0x5a);
  pool.write(inFrame, fill);
  pool.write(straddling, fill);
  let sink = 0;

  const mapLoop =
    (h: number, mode: 'ro' | 'rw') =>
    (n: number): number => {
      let s = 0;
      for (let k = 0; k < n; k++) {
        const m = pool.map(h, mode);
        s += m[0]!;
        pool.unmap(h);
      }
      sink += s;
      return n;
    };
  const cases: Case[] = [
    { name: IN_FRAME, group: 'mapping', batch: 20_000, run: mapLoop(inFrame, 'ro') },
    {
      name: 'map+unmap rw, in one frame',
      group: 'mapping',
      batch: 20_000,
      baseline: IN_FRAME,
      run: mapLoop(inFrame, 'rw'),
    },
    {
      name: 'map+unmap ro, straddling 2 frames',
      group: 'mapping',
      batch: 20_000,
      baseline: IN_FRAME,
      run: mapLoop(straddling, 'ro'),
    },
    {
      name: 'map+unmap rw, straddling 2 frames',
      group: 'mapping',
      batch: 20_000,
      baseline: IN_FRAME,
      run: mapLoop(straddling, 'rw'),
    },
  ];
  const rows = linkBaselines(await measure(cases, cfg, 'map/unmap'));
  if (!(sink > 0)) throw new Error('mapping: the mappings read nothing');
  const back = new Uint8Array(SIZE);
  pool.read(straddling, back);
  if (!back.every((b) => b === 0x5a)) throw new Error('mapping: straddling object changed by ro/rw map cycles');
  for (const h of [inFrame, straddling, ...spare]) pool.free(h);
  pool.verify();
  pool.detach();
  return rows;
}
