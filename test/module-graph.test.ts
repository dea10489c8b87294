// Every package's modules import each other without cycles (each facade sits on
// top; the modules under it take narrow types, not the facade), and the packages
// import only the layers below them: core <- zram <- workers <- bench.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const srcOf = (pkg: string) => path.join(ROOT, 'packages', pkg, 'src');

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
function cycles(files: string[], base: string): string[][] {
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
      if (state.get(d) === 'open') found.push([...stack.slice(stack.indexOf(d)), d].map((x) => path.relative(base, x)));
      else if (state.get(d) === undefined) walk(d, stack);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of graph.keys()) if (state.get(n) === undefined) walk(n, []);
  return found;
}

/** The workspace packages each package may import, lowest layer first. */
const LAYERS: Record<string, string[]> = {
  core: [],
  zram: ['core'],
  workers: ['core', 'zram'],
  bench: ['core', 'zram', 'workers'],
};

describe('module graph', () => {
  it('finds the modules it checks (the walk is not empty)', () => {
    const names = (pkg: string) => sources(srcOf(pkg)).map((f) => path.relative(srcOf(pkg), f));
    for (const m of ['pool.ts', 'lock-policy.ts', 'fullness.ts', 'objects.ts', 'zspage-alloc.ts', 'verify.ts'])
      expect(names('core')).toContain(m);
    for (const m of [
      'device.ts',
      'slot-store.ts',
      'postprocess.ts',
      'inspect.ts',
      'options.ts',
      'range.ts',
      'codec.ts',
    ])
      expect(names('zram')).toContain(m);
    expect(names('workers')).toContain('service.ts');
    expect(imports(path.join(srcOf('zram'), 'codec.ts'))).toContain('./codecs/zstd.js');
  });

  for (const pkg of Object.keys(LAYERS)) {
    it(`${pkg} has no import cycles`, () => {
      expect(cycles(sources(srcOf(pkg)), srcOf(pkg))).toEqual([]);
    });

    it(`${pkg} imports only the layers below it`, () => {
      const allowed = LAYERS[pkg]!;
      for (const f of sources(srcOf(pkg)))
        for (const s of imports(f)) {
          const m = /^@zsmalloc\/([a-z]+)/.exec(s);
          if (m) expect(allowed, `${pkg}/${path.relative(srcOf(pkg), f)} imports ${s}`).toContain(m[1]);
        }
    });
  }

  it('the cycle finder does find a cycle', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'module-graph-'));
    try {
      fs.writeFileSync(path.join(dir, 'a.ts'), "import { b } from './b.js';\n");
      fs.writeFileSync(path.join(dir, 'b.ts'), "import type { A } from './a.js';\n");
      expect(cycles([path.join(dir, 'a.ts'), path.join(dir, 'b.ts')], dir)).toHaveLength(1);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
