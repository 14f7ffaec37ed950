// Vitest settings every package uses. With RDMA_TEST_REPORT=1 (set by .ci/run) each
// package also writes test-results.json, which tools/test-summary.mjs adds up.
import { fileURLToPath } from 'node:url'

// A hard limit on each package's whole run (RDMA_TEST_WATCHDOG_MIN, default 20): see the file.
const watchdog = fileURLToPath(new URL('./tools/vitest-watchdog.mjs', import.meta.url))

export function vitestConfig(overrides = {}) {
  const { test = {}, ...rest } = overrides
  return {
    ...rest,
    test: {
      testTimeout: 30_000,
      hookTimeout: 30_000,
      globalSetup: [watchdog],
      reporters: process.env.RDMA_TEST_REPORT ? ['default', ['json', { outputFile: 'test-results.json' }]] : ['default'],
      ...test,
    },
  }
}
