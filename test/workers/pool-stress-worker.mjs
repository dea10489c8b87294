// Worker for the multi-threaded pool stress test: attaches to a shared ZsPool and
// plays one role — mutator (random malloc/write/read/map/free with content checks),
// compactor (compact() in a loop) or migrator (page migration and frame compaction).
import { parentPort, workerData } from 'node:worker_threads';
import { ZsPool, migratePage, isMovable, compactFrames } from '@zsmalloc/core';

const { shared, role, ops, seed, stop } = workerData;
const pool = ZsPool.attach(shared);
const stopWord = new Int32Array(stop);

let s = seed >>> 0;
const rnd = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s; };
const byteAt = (h, v, k) => (h * 31 + v * 17 + k * 7) & 255;

function mutator() {
  const live = new Map(); // handle -> [size, version]
  const handles = [];
  const buf = new Uint8Array(4096);
  let mismatches = 0;
  let done = 0;
  let enomem = 0;
  for (let i = 0; i < ops; i++) {
    const r = rnd() % 100;
    if (r < 35 || handles.length < 50) {
      const size = 1 + (rnd() % 4096);
      let h;
      try { h = pool.malloc(size); } catch (e) { if (e.code === 'ENOMEM') { enomem++; continue; } throw e; }
      const v = rnd() & 0xffff;
      for (let k = 0; k < size; k++) buf[k] = byteAt(h, v, k);
      pool.write(h, buf.subarray(0, size));
      live.set(h, [size, v]);
      handles.push(h);
    } else if (r < 65) {
      const j = rnd() % handles.length;
      const h = handles[j];
      const [size, v] = live.get(h);
      const n = pool.read(h, buf);
      if (n !== size) mismatches++;
      else for (let k = 0; k < size; k++) if (buf[k] !== byteAt(h, v, k)) { mismatches++; break; }
    } else if (r < 75) {
      const j = rnd() % handles.length;
      const h = handles[j];
      const [size, v] = live.get(h);
      const m = pool.map(h, 'ro');
      if (m.length !== size) mismatches++;
      else for (let k = 0; k < size; k++) if (m[k] !== byteAt(h, v, k)) { mismatches++; break; }
      pool.unmap(h);
    } else if (r < 82) {
      const j = rnd() % handles.length;
      const h = handles[j];
      const [size] = live.get(h);
      const v = rnd() & 0xffff;
      for (let k = 0; k < size; k++) buf[k] = byteAt(h, v, k);
      pool.write(h, buf.subarray(0, size));
      live.set(h, [size, v]);
    } else {
      const j = rnd() % handles.length;
      const h = handles[j];
      handles[j] = handles[handles.length - 1];
      handles.pop();
      live.delete(h);
      pool.free(h);
    }
    done++;
  }
  // final check of everything still live
  for (const [h, [size, v]] of live) {
    const n = pool.read(h, buf);
    if (n !== size) { mismatches++; continue; }
    for (let k = 0; k < size; k++) if (buf[k] !== byteAt(h, v, k)) { mismatches++; break; }
  }
  return { mismatches, done, enomem, live: [...live.entries()] };
}

function compactor() {
  let runs = 0; let freed = 0;
  while (Atomics.load(stopWord, 0) === 0) {
    // as the compaction worker: now and then every CPU's magazines go back first (no-op without caches)
    if ((runs & 3) === 3) pool.drainCaches();
    freed += pool.compact();
    runs++;
  }
  return { runs, freed };
}

function migrator() {
  let migrated = 0; let tries = 0; let blocks = 0; let pfn = 0;
  while (Atomics.load(stopWord, 0) === 0) {
    const present = pool.phys.presentFrames;
    if (present === 0) continue;
    for (let k = 0; k < 64; k++) {
      pfn = (pfn + 1) % present;
      if (isMovable(pool, pfn)) { tries++; if (migratePage(pool, pfn) === 0) migrated++; }
    }
    if ((tries & 255) === 0) compactFrames(pool, 3);
    try { const b = pool.allocPages(2); blocks++; pool.freePages(b, 2); } catch (e) { if (e.code !== 'ENOMEM') throw e; }
  }
  return { migrated, tries, blocks, present: pool.phys.presentFrames, movableNow: (() => { let n = 0; for (let p = 0; p < pool.phys.presentFrames; p++) if (isMovable(pool, p)) n++; return n; })() };
}

let result;
try {
  result = role === 'mutator' ? mutator() : role === 'compactor' ? compactor() : migrator();
  const lockdep = pool.locks.lockdep;
  pool.detach();
  parentPort.postMessage({ ok: true, role, lockdep, ...result });
} catch (e) {
  parentPort.postMessage({ ok: false, role, error: String(e && e.stack || e) });
}
