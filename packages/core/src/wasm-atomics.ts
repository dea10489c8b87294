// Atomic words in a shared WebAssembly memory: compare-and-swap, exchange, add,
// load and store on Int32 words, and add on 64-bit words, for the paths where
// the count of atomic operations is the cost. JavaScript's Atomics functions are
// calls into the engine's runtime; WebAssembly's atomic instructions compile to
// the processor's own locked instructions, reached by a short call from optimised
// JavaScript (the locks micro benchmark times both in one run). The memory model
// is one: WebAssembly's atomics and JavaScript's Atomics on the same shared
// buffer are sequentially consistent with each other, so a word may be used from
// both (Atomics.wait and notify included: the memory's buffer is a
// SharedArrayBuffer).
//
// Owns the module (assembled here from its opcodes: six functions, no imports
// but the memory) and its instantiation over a given memory. A memory is shared
// between threads by posting the WebAssembly.Memory object; each thread
// instantiates the module over it once.

import { ZsError } from './errors.js';

/** The operations, on word index i of the memory (byte address 4*i). */
export interface AtomicOps {
  /** Compare-and-swap: writes v if the word holds `expected`; returns the old value. */
  cas(i: number, expected: number, v: number): number;
  /** Writes v; returns the old value. */
  exchange(i: number, v: number): number;
  /** Adds v; returns the old value. */
  add(i: number, v: number): number;
  load(i: number): number;
  store(i: number, v: number): void;
  /**
   * Adds v (a 32-bit signed number, sign-extended) to the 64-bit word at index i
   * (byte address 8*i): a 64-bit counter changed without a BigInt (zram's statistics,
   * which BigInt64Array readers read whole).
   */
  add64(i: number, v: number): void;
}

/**
 * A shared WebAssembly.Memory, as far as this package uses it (the typings this
 * package builds against declare no WebAssembly; the runtime object is the real one,
 * and may be posted to another thread).
 */
export interface AtomicMemory {
  /** The memory's bytes: a SharedArrayBuffer (a new one, longer, after a grow). */
  readonly buffer: SharedArrayBuffer;
  /** Grows by `pages` WebAssembly pages; returns the old size in pages. */
  grow(pages: number): number;
}

interface WasmApi {
  Memory: new (d: { initial: number; maximum: number; shared: boolean }) => AtomicMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** Bytes of one WebAssembly page: memories are sized in these. */
export const WASM_PAGE = 65536;

/** A shared memory of at least `bytes` bytes (rounded up to whole pages), growable to maxBytes. */
export function createAtomicMemory(bytes: number, maxBytes = bytes): AtomicMemory {
  const initial = Math.max(1, Math.ceil(bytes / WASM_PAGE));
  const maximum = Math.max(initial, Math.ceil(maxBytes / WASM_PAGE));
  try {
    return new wasm.Memory({ initial, maximum, shared: true });
  } catch (e) {
    // each memory reserves address space for its maximum and guard pages, far beyond
    // its size: a process with thousands of pools alive runs out of it
    throw new ZsError('ENOMEM', `cannot create a shared WebAssembly memory of ${maxBytes} bytes: ${String(e)}`);
  }
}

const I32 = 0x7f;
const DROP = 0x1a;
const I64_EXTEND_I32_S = 0xac;
const FUNC = 0x60;
const LOCAL_GET = 0x20;
const I32_CONST = 0x41;
const I32_SHL = 0x74;
const END = 0x0b;
const ATOMIC = 0xfe;
// the threads proposal's opcodes (after the 0xfe prefix)
const I32_ATOMIC_LOAD = 0x10;
const I32_ATOMIC_STORE = 0x17;
const I32_ATOMIC_RMW_ADD = 0x1e;
const I32_ATOMIC_RMW_XCHG = 0x41;
const I32_ATOMIC_RMW_CMPXCHG = 0x48;
const I64_ATOMIC_RMW_ADD = 0x1f;
const MEMARG_ALIGN4 = [2, 0]; // align 2^2, offset 0
const MEMARG_ALIGN8 = [3, 0]; // align 2^3, offset 0

/** Byte address of word index local 0: local.get 0; i32.const 2; i32.shl. */
const ADDR = [LOCAL_GET, 0, I32_CONST, 2, I32_SHL];
/** Byte address of 64-bit word index local 0. */
const ADDR64 = [LOCAL_GET, 0, I32_CONST, 3, I32_SHL];

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}
function vec(items: number[][]): number[] {
  return [...leb(items.length), ...items.flat()];
}
function section(id: number, body: number[]): number[] {
  return [id, ...leb(body.length), ...body];
}
function name(s: string): number[] {
  return [...leb(s.length), ...[...s].map((ch) => ch.charCodeAt(0))];
}

interface Fn {
  name: keyof AtomicOps;
  params: number;
  result: boolean;
  body: number[];
}

const FNS: Fn[] = [
  {
    name: 'cas',
    params: 3,
    result: true,
    body: [...ADDR, LOCAL_GET, 1, LOCAL_GET, 2, ATOMIC, I32_ATOMIC_RMW_CMPXCHG, ...MEMARG_ALIGN4],
  },
  {
    name: 'exchange',
    params: 2,
    result: true,
    body: [...ADDR, LOCAL_GET, 1, ATOMIC, I32_ATOMIC_RMW_XCHG, ...MEMARG_ALIGN4],
  },
  { name: 'add', params: 2, result: true, body: [...ADDR, LOCAL_GET, 1, ATOMIC, I32_ATOMIC_RMW_ADD, ...MEMARG_ALIGN4] },
  { name: 'load', params: 1, result: true, body: [...ADDR, ATOMIC, I32_ATOMIC_LOAD, ...MEMARG_ALIGN4] },
  {
    name: 'store',
    params: 2,
    result: false,
    body: [...ADDR, LOCAL_GET, 1, ATOMIC, I32_ATOMIC_STORE, ...MEMARG_ALIGN4],
  },
  {
    name: 'add64',
    params: 2,
    result: false,
    body: [...ADDR64, LOCAL_GET, 1, I64_EXTEND_I32_S, ATOMIC, I64_ATOMIC_RMW_ADD, ...MEMARG_ALIGN8, DROP],
  },
];

function assemble(): Uint8Array {
  // one type per function (simplest to read; the module is tiny)
  const types = FNS.map((f) => [
    FUNC,
    ...vec(Array.from({ length: f.params }, () => [I32])),
    ...(f.result ? [1, I32] : [0]),
  ]);
  // import "env" "memory": a shared memory (limits flag 3: shared, with a maximum), 1..65536 pages
  const memImport = [...name('env'), ...name('memory'), 0x02, 0x03, ...leb(1), ...leb(65536)];
  const funcs = FNS.map((_, k) => leb(k));
  const exports = FNS.map((f, k) => [...name(f.name), 0x00, ...leb(k)]);
  const bodies = FNS.map((f) => {
    const code = [0, ...f.body, END]; // no locals
    return [...leb(code.length), ...code];
  });
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec(types)),
    ...section(2, vec([memImport])),
    ...section(3, vec(funcs)),
    ...section(7, vec(exports)),
    ...section(10, vec(bodies)),
  ]);
}

let compiled: object | null = null;

/** The operations over `memory` (a shared WebAssembly memory), for this thread. */
export function atomicOps(memory: AtomicMemory): AtomicOps {
  if (compiled === null) compiled = new wasm.Module(assemble());
  const inst = new wasm.Instance(compiled, { env: { memory } });
  return inst.exports as unknown as AtomicOps;
}
