// algorithm_params: per-priority compression parameters (a level and a
// pre-trained dictionary), the parser for the kernel's
// "priority=N algo=NAME level=L dict=PATH" strings, and the shared-memory
// store every attached thread builds its codecs from.
//
// Parsing follows the kernel's store: space-separated key=value pairs
// (a value may be double-quoted); priority and level are decimal integers;
// algo picks the priority that uses that algorithm (and wins over priority);
// neither means the primary algorithm (priority 0). A key without a value, a
// non-integer, a priority out of range or an algo no priority uses is EINVAL.
// Unlike the kernel, which skips keys it does not know, an unknown key is
// EINVAL too, so a typo cannot silently leave the defaults in place.
//
// Store layout (one growable SharedArrayBuffer):
//   Int32 header, 4 words per priority: [level set, level, dict bytes, path bytes]
//   then MAX_PATH bytes of dict path per priority, then the dictionaries, one
//   ZSTD_MAX_DICT_BYTES area per priority (committed only when a dictionary is set).

import { ZsError } from '@zsmalloc/core';
import type { CodecParams } from './codecs/zcomp.js';

export const PARAM_PRIORITIES = 4;
const HEADER_WORDS = 4 * PARAM_PRIORITIES;
const HEADER_BYTES = HEADER_WORDS * 4;
const MAX_PATH = 4096;
const PATHS_BYTES = MAX_PATH * PARAM_PRIORITIES;
/** Largest dictionary kept per priority (matches the zstd loader's limit). */
export const MAX_DICT_BYTES = 1 << 20;
const DICTS_AT = HEADER_BYTES + PATHS_BYTES;

export interface AlgorithmParamsRequest {
  /** Set by algo= (resolved by the caller against the device's algorithms) or priority=. */
  priority?: number;
  algo?: string;
  level?: number;
  dict?: string;
}

function kstrtoint(key: string, v: string): number {
  const m = /^[+-]?\d+\n?$/.exec(v);
  const n = m ? Number.parseInt(v, 10) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < -(2 ** 31) || n > 2 ** 31 - 1)
    throw new ZsError('EINVAL', `algorithm_params: ${key}=${JSON.stringify(v)} is not an integer`);
  return n;
}

/** Parses "priority=N algo=NAME level=L dict=PATH" (any subset, any order). Throws ZsError('EINVAL'). */
export function parseAlgorithmParams(text: string): AlgorithmParamsRequest {
  if (typeof text !== 'string') throw new ZsError('EINVAL', 'algorithm_params: expected a string');
  const out: AlgorithmParamsRequest = {};
  let s = text.replace(/\n$/, '');
  for (;;) {
    s = s.replace(/^\s+/, '');
    if (s === '') break;
    const m = /^([^\s=]+)(=("[^"]*"|[^\s"]*))?(?=\s|$)/.exec(s);
    if (!m || m[2] === undefined) {
      throw new ZsError('EINVAL', `algorithm_params: expected key=value, got ${JSON.stringify(s.split(/\s/)[0])}`);
    }
    s = s.slice(m[0].length);
    const key = m[1]!;
    let val = m[3]!;
    if (val.startsWith('"')) val = val.slice(1, -1);
    switch (key) {
      case 'priority':
        out.priority = kstrtoint(key, val);
        break;
      case 'level':
        out.level = kstrtoint(key, val);
        break;
      case 'algo':
        if (val === '') throw new ZsError('EINVAL', 'algorithm_params: algo= needs a name');
        out.algo = val;
        break;
      case 'dict':
        if (val === '') throw new ZsError('EINVAL', 'algorithm_params: dict= needs a path');
        out.dict = val;
        break;
      default:
        throw new ZsError('EINVAL', `algorithm_params: unknown parameter ${JSON.stringify(key)}`);
    }
  }
  return out;
}

/** One priority's parameters as stored. */
export interface StoredParams {
  level?: number;
  dictPath?: string;
  dictBytes: number;
}

/** The per-priority parameter store over shared memory. */
export class AlgorithmParamsStore {
  private readonly hdr: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.hdr = new Int32Array(buffer, 0, HEADER_WORDS);
  }

  static allocate(): SharedArrayBuffer {
    return new SharedArrayBuffer(DICTS_AT, { maxByteLength: DICTS_AT + PARAM_PRIORITIES * MAX_DICT_BYTES });
  }

  /** Replaces a priority's parameters (control plane only; the caller checked level and dict). */
  set(prio: number, level: number | undefined, dictPath: string | undefined, dict: Uint8Array | undefined): void {
    const h = this.hdr;
    const b = prio * 4;
    if (dict !== undefined) {
      if (dict.length > MAX_DICT_BYTES) throw new ZsError('EINVAL', `dictionary larger than ${MAX_DICT_BYTES} bytes`);
      const need = DICTS_AT + (prio + 1) * MAX_DICT_BYTES;
      if (this.buffer.byteLength < need) this.buffer.grow(need);
      new Uint8Array(this.buffer, DICTS_AT + prio * MAX_DICT_BYTES, dict.length).set(dict);
    }
    const path = Buffer.from(dictPath ?? '', 'utf8');
    if (path.length > MAX_PATH) throw new ZsError('EINVAL', `dict path longer than ${MAX_PATH} bytes`);
    new Uint8Array(this.buffer, HEADER_BYTES + prio * MAX_PATH, MAX_PATH).fill(0).set(path);
    Atomics.store(h, b, level === undefined ? 0 : 1);
    Atomics.store(h, b + 1, level ?? 0);
    Atomics.store(h, b + 2, dict?.length ?? 0);
    Atomics.store(h, b + 3, path.length);
  }

  clear(prio: number): void {
    this.set(prio, undefined, undefined, undefined);
  }

  get(prio: number): StoredParams {
    const h = this.hdr;
    const b = prio * 4;
    const out: StoredParams = { dictBytes: Atomics.load(h, b + 2) };
    if (Atomics.load(h, b) !== 0) out.level = Atomics.load(h, b + 1);
    const n = Atomics.load(h, b + 3);
    if (n > 0)
      out.dictPath = Buffer.from(new Uint8Array(this.buffer, HEADER_BYTES + prio * MAX_PATH, n)).toString('utf8');
    return out;
  }

  /** What a codec of this priority is built with (the dictionary copied out of shared memory). */
  codecParams(prio: number): CodecParams {
    const p = this.get(prio);
    const out: CodecParams = {};
    if (p.level !== undefined) out.level = p.level;
    if (p.dictBytes > 0) out.dict = new Uint8Array(this.buffer, DICTS_AT + prio * MAX_DICT_BYTES, p.dictBytes).slice();
    return out;
  }

  /** "level=L dict=PATH" of a priority ("" when all default). */
  describe(prio: number): string {
    const p = this.get(prio);
    const parts: string[] = [];
    if (p.level !== undefined) parts.push(`level=${p.level}`);
    if (p.dictPath !== undefined) parts.push(`dict=${p.dictPath}`);
    return parts.join(' ');
  }
}
