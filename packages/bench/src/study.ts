// Entry point of `pnpm study <experiment>`: one command per experiment, each
// writing JSON and HTML to bench-results/study-<experiment>.* and printing its
// verdict lines. Usage: node packages/bench/dist/study.js --help

import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { defaultResultsDir } from './report.js';
import {
  chainSize,
  EXPERIMENTS,
  fragmentation,
  lockMode,
  realMemory,
  seedsCompaction,
  type Experiment,
  type StudyOptions,
  type StudyResult,
} from './study/experiments.js';
import { ProcReadError } from './study/proc-pages.js';
import { studyReport, verdictLines, writeStudy } from './study/report.js';
import { REPORT_FLAGS, intFlag } from './stress/options.js';

const USAGE = `usage: study.js <experiment> [options]
experiments:
  lock-mode          class vs pool locks under compaction-heavy load, per worker count
  chain-size         chain 4 / 8 / 16: memory used and throughput against chain 8
  seeds-compaction   the seeds' experiment repeated: used ratio before and after compaction
  fragmentation      buddyinfo before and after frame migration
  real-memory        a running process's anonymous pages replayed as the swap stream (--pid)
options:
  --seconds S        timed seconds per run (default 4)
  --repeat N         interleaved repeats per arm (default 5)
  --workers 1,2      worker counts (lock-mode; the last one for chain-size; default 1,2 capped at the cores)
  --pid PID          real-memory: the process to read (needs ptrace permission: same user and
                     kernel.yama.ptrace_scope 0, or CAP_SYS_PTRACE)
  --max-pages N      real-memory: at most this many pages (default 65536)
  --no-kernel        leave the kernel's zram0 out
  --lockdep          check every lock acquisition against the lock order
  --smoke            tiny sizes (checks the command runs; figures mean nothing)
  --json PATH | --no-json     --html PATH | --no-html     --no-progress     --help`;

function parseStudyArgs(argv: string[]): {
  experiment: Experiment;
  opts: StudyOptions;
  jsonPath: string | null;
  htmlPath: string | null;
} {
  const { values: v, positionals } = parseArgs({
    args: argv.filter((a) => a !== '--'),
    options: {
      seconds: { type: 'string' },
      repeat: { type: 'string' },
      workers: { type: 'string' },
      pid: { type: 'string' },
      'max-pages': { type: 'string' },
      ...REPORT_FLAGS,
    },
    strict: true,
    allowPositionals: true,
  });
  if (v.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const experiment = positionals[0];
  if (positionals.length !== 1 || !(EXPERIMENTS as readonly string[]).includes(experiment ?? ''))
    throw new Error(`name one experiment (${EXPERIMENTS.join(', ')})\n${USAGE}`);
  const smoke = v.smoke === true;
  const cores = Math.max(1, availableParallelism());
  const seconds = v.seconds !== undefined ? Number(v.seconds) : smoke ? 0.3 : 4;
  if (!(seconds > 0)) throw new Error('--seconds must be > 0');
  const workers =
    v.workers !== undefined
      ? v.workers.split(',').map((w) => intFlag('workers', w, 1, 64))
      : [1, 2].filter((w) => w <= Math.max(2, cores));
  const exp = experiment as Experiment;
  const dir = defaultResultsDir();
  return {
    experiment: exp,
    opts: {
      smoke,
      seconds,
      repeat: v.repeat !== undefined ? intFlag('repeat', v.repeat, 1, 100) : smoke ? 2 : 5,
      workers,
      lockdep: v.lockdep === true,
      pid: v.pid !== undefined ? intFlag('pid', v.pid, 1) : null,
      maxPages: v['max-pages'] !== undefined ? intFlag('max-pages', v['max-pages'], 1) : 65536,
      kernel: v['no-kernel'] !== true,
      progress: v['no-progress'] !== true && process.stderr.isTTY === true,
      log: (s) => process.stdout.write(`${s}\n`),
    },
    jsonPath: v['no-json'] ? null : (v.json ?? join(dir, `study-${exp}.json`)),
    htmlPath: v['no-html'] ? null : (v.html ?? join(dir, `study-${exp}.html`)),
  };
}

const RUN: Record<Experiment, (o: StudyOptions) => Promise<StudyResult>> = {
  'lock-mode': lockMode,
  'chain-size': chainSize,
  'seeds-compaction': seedsCompaction,
  fragmentation,
  'real-memory': realMemory,
};

async function main(): Promise<void> {
  const { experiment, opts, jsonPath, htmlPath } = parseStudyArgs(process.argv.slice(2));
  const t0 = performance.now();
  opts.log(`study ${experiment}`);
  let result: StudyResult;
  try {
    result = await RUN[experiment](opts);
  } catch (e) {
    if (e instanceof ProcReadError) {
      process.stderr.write(`study real-memory: ${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw e;
  }
  const report = studyReport(result, (performance.now() - t0) / 1000);
  opts.log(result.setup);
  for (const line of verdictLines(result)) opts.log(line);
  if (experiment === 'real-memory') opts.log(JSON.stringify(result.figures, null, 2));
  for (const p of writeStudy(report, jsonPath, htmlPath)) opts.log(`wrote ${p}`);
}

await main();
