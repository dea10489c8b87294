// Reads V8 CPU profiles (.cpuprofile, as `node --cpu-prof` writes them) and
// prints where the time went: self time per function, largest first, with
// its share of the profile, and the share of samples the thread was idle.
// Used to break down the NBD server's main-thread CPU under `bench:nbd
// --cpu-prof DIR`; `node packages/bench/dist/cpu-profile.js FILE... [--top N]`.

import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface SelfTime {
  name: string;
  /** Microseconds of samples that landed in this function itself. */
  us: number;
  /** Share of the busy (non-idle) time. */
  share: number;
}

export interface ProfileSummary {
  /** Wall microseconds the profile spans. */
  spanUs: number;
  /** Microseconds sampled outside "(idle)" and "(program)"-free waiting: the thread's busy time. */
  busyUs: number;
  top: SelfTime[];
}

/** Self time per function (name and location), largest first. */
export function summarize(p: CpuProfile, top = 25): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const self = new Map<string, number>();
  let busy = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]!);
    const dt = p.timeDeltas[i] ?? 0;
    if (n === undefined) continue;
    const f = n.callFrame;
    if (f.functionName === '(idle)') continue;
    busy += dt;
    const where = f.url === '' ? '' : ` ${basename(f.url)}:${f.lineNumber + 1}`;
    const key = `${f.functionName || '(anonymous)'}${where}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  }
  const rows = [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => ({ name, us, share: busy === 0 ? 0 : us / busy }));
  return { spanUs: p.endTime - p.startTime, busyUs: busy, top: rows };
}

function main(): void {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    options: { top: { type: 'string', default: '25' } },
    allowPositionals: true,
  });
  if (positionals.length === 0) {
    process.stderr.write('usage: cpu-profile.js FILE.cpuprofile... [--top N]\n');
    process.exit(2);
  }
  for (const file of positionals) {
    const s = summarize(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, Number(values.top));
    process.stdout.write(
      `${file}: ${(s.spanUs / 1e6).toFixed(1)} s sampled, busy ${(s.busyUs / 1e6).toFixed(2)} s (${((100 * s.busyUs) / Math.max(1, s.spanUs)).toFixed(0)}%)\n`,
    );
    for (const r of s.top)
      process.stdout.write(
        `  ${(100 * r.share).toFixed(1).padStart(5)}%  ${(r.us / 1000).toFixed(0).padStart(6)} ms  ${r.name}\n`,
      );
  }
}

if (import.meta.url === `file://${process.argv[1]}`) main();
