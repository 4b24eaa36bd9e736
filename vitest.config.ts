import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Vitest's default is one worker per core but one (so 1 on a 2-core machine). Most of the slow files mostly
    // wait on real child processes (the CLI, server nodes, PostgreSQL, NATS), so two files at a time on 2 cores:
    // the suite's wall time went from 931 s to 485 s on the 2-core VM, with every test passing.
    maxWorkers: Math.max(2, availableParallelism() - 1),
  },
});
