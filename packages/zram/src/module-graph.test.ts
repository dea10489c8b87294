// zram's modules import each other without cycles (the device facade sits on
// top; the modules under it take narrow types, not the facade), and nothing in
// zram imports the packages above it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = path.dirname(fileURLToPath(import.meta.url));

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (p.endsWith('.ts') && !p.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const IMPORT = /^\s*(?:import|export)\b[^'"]*?from\s+'([^']+)'/gm;

function imports(file: string): string[] {
  return [...fs.readFileSync(file, 'utf8').matchAll(IMPORT)].map((m) => m[1]!);
}

/** Every cycle found by a depth-first walk, as module paths relative to src/. */
function cycles(files: string[]): string[][] {
  const graph = new Map<string, string[]>();
  for (const f of files)
    graph.set(
      f,
      imports(f)
        .filter((s) => s.startsWith('.'))
        .map((s) => path.resolve(path.dirname(f), s.replace(/\.js$/, '.ts'))),
    );
  const state = new Map<string, 'open' | 'done'>();
  const found: string[][] = [];
  const walk = (n: string, stack: string[]): void => {
    state.set(n, 'open');
    stack.push(n);
    for (const d of graph.get(n) ?? []) {
      if (state.get(d) === 'open') found.push([...stack.slice(stack.indexOf(d)), d].map((x) => path.relative(SRC, x)));
      else if (state.get(d) === undefined) walk(d, stack);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of graph.keys()) if (state.get(n) === undefined) walk(n, []);
  return found;
}

describe('zram module graph', () => {
  const files = sources(SRC);

  it('finds the modules it checks (the walk is not empty)', () => {
    const names = files.map((f) => path.relative(SRC, f));
    for (const m of [
      'device.ts',
      'slot-store.ts',
      'postprocess.ts',
      'inspect.ts',
      'options.ts',
      'range.ts',
      'codec.ts',
    ])
      expect(names).toContain(m);
    expect(imports(path.join(SRC, 'codec.ts'))).toContain('./codecs/zstd.js');
  });

  it('has no import cycles', () => {
    expect(cycles(files)).toEqual([]);
  });

  it('the cycle finder does find a cycle', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zram-graph-'));
    try {
      fs.writeFileSync(path.join(dir, 'a.ts'), "import { b } from './b.js';\n");
      fs.writeFileSync(path.join(dir, 'b.ts'), "import type { A } from './a.js';\n");
      expect(cycles([path.join(dir, 'a.ts'), path.join(dir, 'b.ts')])).toHaveLength(1);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('imports nothing from the packages above zram', () => {
    for (const f of files)
      for (const s of imports(f)) expect(s, path.relative(SRC, f)).not.toMatch(/^@zsmalloc\/(workers|bench)/);
  });
});
