// Entry point of `pnpm bench:stress` (issue 7): multi-core stress runs through
// ZramService with sweeps (workers, lock mode, chain size, compaction), the
// seeds' compaction experiment and the baselines; JSON and an HTML report in
// bench-results/. Usage: node packages/bench/dist/stress.js --help

import { parseStressArgs } from './stress/options.js';
import { runStress } from './stress/suite.js';

await runStress(parseStressArgs(process.argv.slice(2)));
