// The per-page cost of zram's 64-bit statistics: the counter updates one
// stored page makes (pages_stored +1, compr_data_size +size, the
// mem_used_max maximum), done as zram does them (BigInt64Array Atomics,
// stats.ts) next to the same updates on 32-bit Int32Array words (what the
// counters were before) and on split 32-bit low/high word pairs with a carry.

import { C, add64, inc64 } from '@zsmalloc/zram';
import { measure, type Case, type MicroConfig } from '../measure.js';
import { linkBaselines, type BenchRow } from '../report.js';

const BASE = 'stats update per page: Int32 Atomics (32-bit)';

export async function benchStats64(cfg: MicroConfig): Promise<BenchRow[]> {
  const sab = new SharedArrayBuffer(256);
  const w32 = new Int32Array(sab, 0, 16);
  const w64 = new BigInt64Array(sab, 128, 16);
  const sizes = new Int32Array(1024);
  for (let i = 0; i < sizes.length; i++) sizes[i] = 200 + ((i * 2654435761) >>> 20);
  let k = 0;
  const batch = 100_000;
  const cases: Case[] = [
    {
      name: BASE,
      group: 'stats64',
      batch,
      run(m) {
        for (let i = 0; i < m; i++) {
          const size = sizes[k++ & 1023]!;
          Atomics.add(w32, 0, 1);
          Atomics.add(w32, 1, size);
          const used = i & 0xffff;
          const cur = Atomics.load(w32, 2);
          if (used > cur) Atomics.compareExchange(w32, 2, cur, used);
        }
        return m;
      },
    },
    {
      name: 'stats update per page: BigInt64 Atomics (zram)',
      group: 'stats64',
      batch,
      baseline: BASE,
      run(m) {
        for (let i = 0; i < m; i++) {
          const size = sizes[k++ & 1023]!;
          inc64(w64, C.PAGES_STORED);
          add64(w64, C.COMPR_DATA_SIZE, size);
          const used = BigInt(i & 0xffff);
          const cur = Atomics.load(w64, C.MAX_USED_PAGES);
          if (used > cur) Atomics.compareExchange(w64, C.MAX_USED_PAGES, cur, used);
        }
        return m;
      },
    },
    {
      name: 'stats update per page: split lo/hi Int32 with carry',
      group: 'stats64',
      batch,
      baseline: BASE,
      run(m) {
        for (let i = 0; i < m; i++) {
          const size = sizes[k++ & 1023]!;
          if (Atomics.add(w32, 4, 1) >>> 0 === 0xffffffff) Atomics.add(w32, 5, 1);
          if ((Atomics.add(w32, 6, size) >>> 0) + size > 0xffffffff) Atomics.add(w32, 7, 1);
          const used = i & 0xffff;
          const cur = Atomics.load(w32, 8);
          if (used > cur) Atomics.compareExchange(w32, 8, cur, used);
        }
        return m;
      },
    },
  ];
  return linkBaselines(await measure(cases, cfg, 'stats64'));
}
