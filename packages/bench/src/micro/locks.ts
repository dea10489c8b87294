// Lock micro-benchmark: an uncontended mutex lock+unlock through a pool's
// LockContext (lock_stat off, then on) next to the bare Atomics loop a lock
// cannot beat: compareExchange(0 -> 1) then store(0), and the same pair as
// WebAssembly atomics on a shared wasm memory (what the per-CPU caches' gates and
// the handle claim use, wasm-atomics.ts). Then lockdep's cost: the
// zone lock's class (ranked innermost) taken alone and under two held locks
// (pool and class lock), with lockdep off and on, each next to the other.

import { LC_ZONE, SITE_BENCH, ZsPool, atomicOps, createAtomicMemory } from '@zsmalloc/core';
import { measure, type Case, type MicroConfig } from '../measure.js';
import { linkBaselines, type BenchRow } from '../report.js';

const BARE = 'Atomics CAS+store (bare)';

export async function benchLocks(cfg: MicroConfig): Promise<BenchRow[]> {
  const plain = ZsPool.create({ maxBytes: 1 << 20, lockStat: false, name: 'bench_lock' });
  const stat = ZsPool.create({ maxBytes: 1 << 20, lockStat: true, name: 'bench_lock_stat' });
  const plainCls = plain.lockClassId('bench_mutex');
  const statCls = stat.lockClassId('bench_mutex');
  const a = new Int32Array(new SharedArrayBuffer(64));
  const i = 4;
  const wasmOps = atomicOps(createAtomicMemory(64));
  const pl = plain.locks;
  const sl = stat.locks;
  const ldPool = ZsPool.create({ maxBytes: 1 << 20, lockdep: true, name: 'bench_lockdep' });
  const ld = ldPool.locks;
  const LD_OFF = 'zone-class mutex lock+unlock (lockdep off)';
  const LD_NESTED_OFF = 'zone-class mutex under pool+class lock (lockdep off)';

  const cases: Case[] = [
    {
      name: BARE,
      group: 'locks',
      batch: 50_000,
      run(n) {
        for (let k = 0; k < n; k++) {
          Atomics.compareExchange(a, i, 0, 1);
          Atomics.store(a, i, 0);
        }
        return n;
      },
    },
    {
      name: 'wasm atomic CAS+store (bare)',
      group: 'locks',
      batch: 50_000,
      baseline: BARE,
      run(n) {
        for (let k = 0; k < n; k++) {
          wasmOps.cas(i, 0, 1);
          wasmOps.store(i, 0);
        }
        return n;
      },
    },
    {
      name: 'mutex lock+unlock (lock_stat off)',
      group: 'locks',
      batch: 50_000,
      baseline: BARE,
      run(n) {
        for (let k = 0; k < n; k++) {
          pl.mutexLock(a, i, plainCls);
          pl.mutexUnlock(a, i);
        }
        return n;
      },
    },
    {
      name: 'mutex lock+unlock (lock_stat on)',
      group: 'locks',
      batch: 20_000,
      baseline: BARE,
      run(n) {
        for (let k = 0; k < n; k++) {
          sl.mutexLock(a, i, statCls);
          sl.mutexUnlock(a, i);
        }
        return n;
      },
    },
    {
      name: LD_OFF,
      group: 'lockdep',
      batch: 50_000,
      run(n) {
        for (let k = 0; k < n; k++) {
          pl.mutexLock(a, i, LC_ZONE, SITE_BENCH);
          pl.mutexUnlock(a, i);
        }
        return n;
      },
    },
    {
      name: 'zone-class mutex lock+unlock (lockdep on)',
      group: 'lockdep',
      batch: 50_000,
      baseline: LD_OFF,
      run(n) {
        for (let k = 0; k < n; k++) {
          ld.mutexLock(a, i, LC_ZONE, SITE_BENCH);
          ld.mutexUnlock(a, i);
        }
        return n;
      },
    },
    {
      name: LD_NESTED_OFF,
      group: 'lockdep',
      batch: 50_000,
      run(n) {
        plain.poolWriteLock(SITE_BENCH);
        plain.classLock(0, SITE_BENCH);
        for (let k = 0; k < n; k++) {
          pl.mutexLock(a, i, LC_ZONE, SITE_BENCH);
          pl.mutexUnlock(a, i);
        }
        plain.classUnlock(0);
        plain.poolWriteUnlock();
        return n;
      },
    },
    {
      name: 'zone-class mutex under pool+class lock (lockdep on)',
      group: 'lockdep',
      batch: 50_000,
      baseline: LD_NESTED_OFF,
      run(n) {
        ldPool.poolWriteLock(SITE_BENCH);
        ldPool.classLock(0, SITE_BENCH);
        for (let k = 0; k < n; k++) {
          ld.mutexLock(a, i, LC_ZONE, SITE_BENCH);
          ld.mutexUnlock(a, i);
        }
        ldPool.classUnlock(0);
        ldPool.poolWriteUnlock();
        return n;
      },
    },
  ];
  // an unlock leaves its owner's tag in the word; start every batch from a clear word
  for (const c of cases)
    c.prepare = () => {
      Atomics.store(a, i, 0);
    };
  const rows = linkBaselines(await measure(cases, cfg, 'locks'));
  const acq = stat.lockStats().find((s) => s.name === 'bench_mutex');
  const off = rows.find((r) => r.name === 'mutex lock+unlock (lock_stat off)')!;
  off.targets = [
    {
      goal: '<= 1.5x the bare Atomics loop',
      measured: `${(off.ratio ?? NaN).toFixed(2)}x`,
      met: (off.ratio ?? Infinity) <= 1.5,
    },
  ];
  rows.find((r) => r.name === 'mutex lock+unlock (lock_stat on)')!.extra = {
    lockStatAcquisitions: acq?.acquisitions ?? 0,
  };
  plain.detach();
  stat.detach();
  ldPool.detach();
  return rows;
}
