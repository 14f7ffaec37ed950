// Vitest settings every package uses. With RDMA_TEST_REPORT=1 (set by .ci/run) each
// package also writes test-results.json, which tools/test-summary.mjs adds up.
export function vitestConfig(overrides = {}) {
  const { test = {}, ...rest } = overrides
  return {
    ...rest,
    test: {
      testTimeout: 30_000,
      hookTimeout: 30_000,
      reporters: process.env.RDMA_TEST_REPORT ? ['default', ['json', { outputFile: 'test-results.json' }]] : ['default'],
      ...test,
    },
  }
}
