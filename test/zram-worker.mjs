// Worker for test/zram-threads.test.ts: attaches to a shared ZramDevice and
// either hammers it with I/O (role 'writer') or runs maintenance (role
// 'maintainer': compaction, idle marking, writeback, recompression) until
// told to stop.
//
// Shared pages are written by every writer, in 512-byte sectors that carry
// their own identity and checksum:
//   [0..3]  FNV-1a of bytes 4..511
//   [4..7]  page index   [8] sector (0..7)   [9] writer id   [10..13] seq
//   [14..511] payload derived from (writer, seq, page, sector)
// so a torn, misplaced or stale sector is detectable. Each writer also owns
// private pages that only it touches, checked byte-for-byte against a model.
import { parentPort, workerData } from 'node:worker_threads';
import { ZramDevice } from '@zsmalloc/zram';
import { fillPage, prng } from '@zsmalloc/zram/testing';

const PAGE = 4096;
const SECTOR = 512;

export function fnv(buf, from, to) {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) h = Math.imul(h ^ buf[i], 0x01000193);
  return h >>> 0;
}

/** Writes one self-describing sector at buf[at, at + 512). */
export function stampSector(buf, at, pageIndex, sector, writer, seq) {
  const rnd = prng((writer * 0x9e3779b1) ^ (seq * 0x85ebca6b) ^ (pageIndex << 3) ^ sector);
  const mode = (seq + sector) % 4; // vary compressibility so objects change size class
  for (let i = 14; i < SECTOR; i++) {
    buf[at + i] = mode === 0 ? 0x41 + (i % 7) : mode === 1 ? 0x61 + (rnd() % 16) : mode === 2 ? rnd() & 0xff : (i >> 4) & 0xff;
  }
  const dv = new DataView(buf.buffer, buf.byteOffset + at, SECTOR);
  dv.setUint32(4, pageIndex, true);
  buf[at + 8] = sector;
  buf[at + 9] = writer;
  dv.setUint32(10, seq, true);
  dv.setUint32(0, fnv(buf, at + 4, at + SECTOR), true);
}

/** Checks one sector; returns null when valid, else a description. */
export function checkSector(buf, at, pageIndex, sector) {
  const dv = new DataView(buf.buffer, buf.byteOffset + at, SECTOR);
  if (dv.getUint32(0, true) !== fnv(buf, at + 4, at + SECTOR)) return `page ${pageIndex} sector ${sector}: bad checksum (torn write?)`;
  if (dv.getUint32(4, true) !== pageIndex || buf[at + 8] !== sector) {
    return `page ${pageIndex} sector ${sector}: holds page ${dv.getUint32(4, true)} sector ${buf[at + 8]}`;
  }
  return null;
}

export function sectorOwner(buf, at) {
  const dv = new DataView(buf.buffer, buf.byteOffset + at, SECTOR);
  return { writer: buf[at + 9], seq: dv.getUint32(10, true) };
}

function writer(d) {
  const dev = ZramDevice.attach(d.shared);
  const rnd = prng(d.seed);
  const page = new Uint8Array(PAGE);
  const buf = new Uint8Array(4 * SECTOR);
  const lastSeq = new Int32Array(d.sharedPages * 8).fill(-1);
  const model = new Uint8Array(d.privatePages * PAGE); // private pages start zeroed
  const errors = [];
  let seq = 0;
  let reads = 0;
  const sectorsTotal = d.sharedPages * 8;

  for (let it = 0; it < d.iterations && errors.length < 10; it++) {
    const r = rnd() % 100;
    if (r < 25) {
      // full shared page
      const p = rnd() % d.sharedPages;
      seq++;
      for (let s = 0; s < 8; s++) {
        stampSector(page, s * SECTOR, p, s, d.id, seq);
        lastSeq[p * 8 + s] = seq;
      }
      dev.writePage(p, page);
    } else if (r < 40) {
      // 1..4 shared sectors, possibly across a page boundary (read-modify-write)
      const count = 1 + (rnd() % 4);
      const first = rnd() % (sectorsTotal - count + 1);
      seq++;
      for (let k = 0; k < count; k++) {
        const g = first + k;
        stampSector(buf, k * SECTOR, Math.floor(g / 8), g % 8, d.id, seq);
        lastSeq[g] = seq;
      }
      dev.write(first * SECTOR, buf.subarray(0, count * SECTOR));
    } else if (r < 65) {
      // read a shared page and check every sector
      const p = rnd() % d.sharedPages;
      dev.readPage(p, page);
      reads++;
      for (let s = 0; s < 8; s++) {
        const bad = checkSector(page, s * SECTOR, p, s);
        if (bad) errors.push(`writer ${d.id} read: ${bad}`);
      }
    } else if (r < 75) {
      // full private page
      const p = rnd() % d.privatePages;
      const kinds = ['text', 'binary', 'random', 'zero', 'same'];
      fillPage(page, kinds[rnd() % kinds.length], (d.id << 20) + it);
      dev.writePage(d.privateStart + p, page);
      model.set(page, p * PAGE);
    } else if (r < 85) {
      // unaligned private byte range
      const off = rnd() % (model.length - 1);
      const len = 1 + (rnd() % Math.min(model.length - off, 3 * PAGE));
      const src = fillPage(new Uint8Array(len), rnd() % 2 ? 'text' : 'random', it);
      dev.write(d.privateStart * PAGE + off, src);
      model.set(src, off);
    } else if (r < 88) {
      // discard a run of private pages (from an unaligned start: the partial page is skipped)
      const p = rnd() % d.privatePages;
      const pages = 1 + (rnd() % Math.min(3, d.privatePages - p));
      const skew = rnd() % 2 ? 0 : 100;
      dev.discard((d.privateStart + p) * PAGE + skew, pages * PAGE - skew);
      const firstWhole = skew ? p + 1 : p;
      model.fill(0, firstWhole * PAGE, (p + pages) * PAGE);
    } else {
      // private read, unaligned, checked exactly
      const off = rnd() % (model.length - 1);
      const len = 1 + (rnd() % Math.min(model.length - off, 2 * PAGE));
      const dst = new Uint8Array(len);
      dev.read(d.privateStart * PAGE + off, dst);
      reads++;
      if (Buffer.compare(dst, model.subarray(off, off + len)) !== 0) {
        const at = dst.findIndex((b, i) => b !== model[off + i]);
        errors.push(`writer ${d.id}: private byte ${off + at} is ${dst[at]}, expected ${model[off + at]}`);
      }
    }
  }
  // Final exact check of the private pages.
  const all = new Uint8Array(model.length);
  dev.read(d.privateStart * PAGE, all);
  if (Buffer.compare(all, model) !== 0) errors.push(`writer ${d.id}: private pages differ at the end`);
  dev.close();
  parentPort.postMessage({ role: 'writer', id: d.id, errors, writes: seq, reads, lastSeq, model, lockdep: dev.pool.locks.lockdep }, [lastSeq.buffer, model.buffer]);
}

function maintainer(d) {
  const dev = ZramDevice.attach(d.shared);
  const control = new Int32Array(d.control);
  const counts = { compactions: 0, pagesFreed: 0, writtenBack: 0, recompressed: 0, idleMarks: 0, rounds: 0 };
  const errors = [];
  while (Atomics.load(control, 1) === 0) {
    try {
      counts.pagesFreed += dev.compact();
      counts.compactions++;
      if (counts.rounds % 4 === 1) counts.idleMarks += dev.markIdle('all');
      if (counts.rounds % 8 === 3 && d.writeback) counts.writtenBack += dev.writeback('idle');
      if (counts.rounds % 8 === 7) counts.recompressed += dev.recompress({ type: 'idle', maxPages: 4 });
      dev.mmStat();
    } catch (e) {
      errors.push(`maintainer: ${e && e.stack ? e.stack : e}`);
      break;
    }
    counts.rounds++;
  }
  dev.close();
  parentPort.postMessage({ role: 'maintainer', errors, counts, lockdep: dev.pool.locks.lockdep });
}

if (parentPort && workerData) {
  const control = new Int32Array(workerData.control);
  Atomics.add(control, 2, 1); // ready
  Atomics.notify(control, 2);
  while (Atomics.load(control, 0) === 0) Atomics.wait(control, 0, 0, 50); // start barrier
  try {
    if (workerData.role === 'writer') writer(workerData);
    else maintainer(workerData);
  } catch (e) {
    parentPort.postMessage({ role: workerData.role, id: workerData.id, errors: [`crashed: ${e && e.stack ? e.stack : e}`] });
  }
}
