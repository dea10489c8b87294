// The shape of the stress bench's report (bench-results/stress.json): what the
// suite assembles and the HTML renderer draws. Types only.

import type { BaselinesResult } from './baselines.js';
import type { KindMix, RwMix } from './options.js';
import type { RunResult } from './run.js';
import type { SeedsResult } from './seeds.js';
import type { SweepSummary } from './sweeps.js';

export interface StressReport {
  kind: 'stress';
  smoke: boolean;
  date: string;
  node: string;
  cpus: number;
  cpuModel: string;
  command: string;
  wallSeconds: number;
  /** Runs per arm, interleaved. */
  repeat: number;
  workload: { seconds: number; workingSet: number; requestPages: number; streams: number; mix: KindMix; rw: RwMix };
  baseKey: string;
  runs: RunResult[];
  sweeps: SweepSummary[];
  seeds: SeedsResult;
  baselines: BaselinesResult;
}
