import { defineConfig } from 'vitest/config';

// Tests live next to the code (packages/*/src/**/*.test.ts) and under test/.
// They import the built packages (dist) so worker threads and tests run the same JavaScript.
export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
  },
});
