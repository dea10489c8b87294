// The compression settings of a zram device: comp_algorithm, recomp_algorithm
// and algorithm_params, kept as algorithm ids per priority in the shared status
// words (S.COMP_ID0 + priority) and parameters in the AlgorithmParamsStore.
// Every change bumps S.PARAMS_GEN so each thread rebuilds its codecs. A
// rejected change changes nothing.

import { ZsError } from '@zsmalloc/core';
import {
  PARAM_PRIORITIES,
  parseAlgorithmParams,
  type AlgorithmParamsRequest,
  type AlgorithmParamsStore,
} from './algorithm-params.js';
import { algorithmId, algorithmListing, algorithmName, algorithmTakesParams } from './codec.js';
import { checkZstdLevel, loadZstdDictionary } from './codecs/zstd.js';
import { S } from './stats.js';

/** Compression priorities: 0 is the primary algorithm, 1..3 the recompression ones. */
export const MAX_COMPS = 4;

/** Where a device keeps its compression settings. */
export interface CompSettings {
  readonly st: Int32Array;
  readonly params: AlgorithmParamsStore;
}

function initialized(st: Int32Array): boolean {
  return Atomics.load(st, S.DISKSIZE_PAGES) !== 0;
}

/** The algorithm id + 1 at a priority (0 = unset). */
function compId(st: Int32Array, prio: number): number {
  return Atomics.load(st, S.COMP_ID0 + prio);
}

export function primaryAlgorithm(st: Int32Array): string {
  return algorithmName(compId(st, 0) - 1);
}

/** comp_algorithm store: unknown names fail with the list of known ones; EBUSY once initialized. */
export function setAlgorithm(st: Int32Array, name: string): void {
  const id = algorithmId(name);
  if (initialized(st)) throw new ZsError('EBUSY', "can't change the algorithm of an initialized device");
  Atomics.store(st, S.COMP_ID0, id + 1);
  Atomics.add(st, S.PARAMS_GEN, 1);
}

/** recomp_algorithm store; see ZramDevice.setRecompAlgorithm. */
export function setRecompAlgorithm(st: Int32Array, name: string, priority: number): void {
  const id = algorithmId(name);
  if (!Number.isInteger(priority) || priority < 1 || priority >= MAX_COMPS) {
    throw new ZsError('EINVAL', `recompression priority must be 1..${MAX_COMPS - 1}, got ${priority}`);
  }
  const cur = compId(st, priority);
  if (cur === id + 1) return;
  if (cur !== 0 && initialized(st))
    throw new ZsError('EBUSY', `priority ${priority} already uses ${algorithmName(cur - 1)}`);
  Atomics.store(st, S.COMP_ID0 + priority, id + 1);
  Atomics.add(st, S.PARAMS_GEN, 1);
}

/** recomp_algorithm show: "#N: " and the listing for every configured priority. */
export function recompAlgorithmText(st: Int32Array): string {
  let s = '';
  for (let prio = 1; prio < MAX_COMPS; prio++) {
    const id = compId(st, prio);
    if (id !== 0) s += `#${prio}: ${algorithmListing(algorithmName(id - 1))}`;
  }
  return s;
}

/** algorithm_params store; see ZramDevice.setAlgorithmParams. */
export function setAlgorithmParams(c: CompSettings, request: string | AlgorithmParamsRequest): void {
  const st = c.st;
  const req = typeof request === 'string' ? parseAlgorithmParams(request) : request;
  if (req === null || typeof req !== 'object')
    throw new ZsError('EINVAL', 'algorithm_params: expected a string or object');
  let prio = req.priority ?? 0;
  if (req.algo !== undefined) {
    const id = algorithmId(req.algo);
    prio = -1;
    for (let p = 0; p < MAX_COMPS; p++)
      if (compId(st, p) === id + 1) {
        prio = p;
        break;
      }
    if (prio < 0) throw new ZsError('EINVAL', `algorithm_params: no priority uses ${req.algo}`);
  }
  if (!Number.isInteger(prio) || prio < 0 || prio >= MAX_COMPS || prio >= PARAM_PRIORITIES)
    throw new ZsError('EINVAL', `algorithm_params: priority must be 0..${MAX_COMPS - 1}, got ${String(prio)}`);
  const algId = compId(st, prio) - 1;
  if (algId < 0) throw new ZsError('EINVAL', `algorithm_params: no algorithm at priority ${prio}`);
  const name = algorithmName(algId);
  if ((req.level !== undefined || req.dict !== undefined) && !algorithmTakesParams(name))
    throw new ZsError('EINVAL', `algorithm_params: ${name} takes no level or dictionary here (zstd does)`);
  if (initialized(st)) throw new ZsError('EBUSY', "can't change algorithm_params of an initialized device");
  if (req.level !== undefined) checkZstdLevel(req.level);
  const dict = req.dict !== undefined ? loadZstdDictionary(req.dict) : undefined;
  c.params.set(prio, req.level, req.dict, dict);
  Atomics.add(st, S.PARAMS_GEN, 1);
}

/** Every configured priority's algorithm and parameters: "#N: NAME level=L dict=PATH" lines. */
export function algorithmParamsText(c: CompSettings): string {
  let s = '';
  for (let prio = 0; prio < MAX_COMPS; prio++) {
    const id = compId(c.st, prio);
    if (id === 0) continue;
    const p = c.params.describe(prio);
    s += `#${prio}: ${algorithmName(id - 1)}${p ? ` ${p}` : ''}\n`;
  }
  return s;
}

/** The algorithm of each priority (undefined where unset). */
export function algorithmsByPriority(st: Int32Array): (string | undefined)[] {
  const out: (string | undefined)[] = [];
  for (let prio = 0; prio < MAX_COMPS; prio++) {
    const id = compId(st, prio);
    out.push(id ? algorithmName(id - 1) : undefined);
  }
  return out;
}

/** reset: the default algorithm alone at priority 0, no recompression algorithms, no parameters. */
export function resetCompSettings(c: CompSettings, defaultId: number): void {
  Atomics.store(c.st, S.COMP_ID0, defaultId + 1);
  for (let prio = 0; prio < PARAM_PRIORITIES; prio++) c.params.clear(prio);
  Atomics.add(c.st, S.PARAMS_GEN, 1);
}
