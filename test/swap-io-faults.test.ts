// Backing-file faults inside the service's swap I/O worker (the thread that does
// writeback and swap-in; the fault hook is per thread, so it is armed there):
// an ENOSPC on writeback and an EIO on swap-in lose no page, fail with EIO,
// change nothing else, and bd_stat counts only the I/O that completed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { fillPage } from '@zsmalloc/zram/testing';
import { ZramService } from '@zsmalloc/workers';

const dir = mkdtempSync(join(tmpdir(), 'zram-swapio-faults-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PAGES = 16;

it('ENOSPC on writeback and EIO on swap-in in the swap I/O worker: every page reads back, bd_stat stays true', async () => {
  const svc = await ZramService.start({
    disksize: PAGES * 4096,
    compressionWorkers: 1,
    backingFile: join(dir, 'bf.img'),
  });
  try {
    const ref = new Uint8Array(PAGES * 4096);
    for (let i = 0; i < PAGES; i++) fillPage(ref.subarray(i * 4096, (i + 1) * 4096), i % 2 ? 'text' : 'random', i + 1);
    await svc.writePages(0, ref);
    const bd = () => svc.device.bdStat().trim().split(/\s+/).map(Number);
    const everyPageReadsBack = async () =>
      expect(Buffer.from(await svc.readPages(0, PAGES)).equals(Buffer.from(ref))).toBe(true);

    // Writeback: every fourth block's write fails with ENOSPC.
    svc.idle('all');
    await svc.injectSwapIoFault({ write: 'ENOSPC', blockModulo: 4 });
    await expect(svc.writeback('idle')).rejects.toThrow(/backing block \d+ failed/);
    const [count, reads, writes] = bd();
    expect(reads).toBe(0);
    expect(writes).toBe(count); // only completed writes count; the failed page's block went back
    expect(count).toBeGreaterThan(0);
    expect(count).toBeLessThan(PAGES);
    await everyPageReadsBack();

    // The rest goes out once the fault is gone.
    await svc.injectSwapIoFault(null);
    svc.idle('all');
    await svc.writeback('idle');
    expect(bd()[0]).toBeGreaterThan(count);
    await everyPageReadsBack();

    // Swap-in: every read fails with EIO; nothing changes, and the foreground
    // threads (no fault armed there) still read every page from the backing file.
    const before = { bd: bd(), mm: svc.device.mmStat() };
    await svc.injectSwapIoFault({ read: 'EIO' });
    await expect(svc.readback(0, PAGES)).rejects.toThrow(/EIO|backing block \d+ failed/);
    expect(bd()).toEqual(before.bd);
    expect(svc.device.mmStat()).toBe(before.mm);
    await everyPageReadsBack();

    // Without the fault every written-back page comes back into memory.
    await svc.injectSwapIoFault(null);
    const [held, readSoFar] = bd(); // the foreground reads above count too
    expect(await svc.readback(0, PAGES)).toBe(held);
    expect(bd()[0]).toBe(0);
    expect(bd()[1]).toBe(readSoFar! + held!);
    await everyPageReadsBack();
  } finally {
    await svc.close();
  }
}, 60_000);
