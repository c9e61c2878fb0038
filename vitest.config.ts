import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests start real processes (and some run PGlite, whose first open runs initdb): generous on a
    // loaded 2-core machine. Tests wait for conditions, so a pass takes no longer for it.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Integration tests start real node processes; keep the 2-core machine from oversubscribing.
    maxWorkers: 2,
  },
});
