// Vitest config for the suite that runs INSIDE the rxe guest (the repo is shared read-only, so
// every cache goes to /tmp). Started by guest/run-in-guest.sh; see test/guest.test.ts.
import { defineConfig } from 'vitest/config'

export default defineConfig({
  cacheDir: '/tmp/vitest-cache',
  test: {
    include: ['guest/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    // Threads start faster than forked processes in the TCG guest (no second node over 9p).
    pool: 'threads',
    maxWorkers: 1,
    reporters: ['default'],
  },
})
