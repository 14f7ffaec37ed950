/** @rdma-session/conformance: the one vitest suite every provider runs, parameterized by setup() and capabilities. */
import { afterEach, beforeEach, describe, it } from 'vitest'
import { Suite } from './suite.js'
import { closeEnv, resolveCapabilities, type ConformanceEnv, type ConformanceTarget } from './target.js'
import { CONFORMANCE_GROUPS } from './groups/index.js'

export type { ConformanceEnv, ConformanceFaults, ConformanceTarget, SuiteCapabilities } from './target.js'
export { runMutations, type MutationTarget, type MutationOutcome } from './mutations/runner.js'
export { BREAKS, type Break } from './mutations/breaks.js'
export { interpose, type Tamper } from './mutations/interposer.js'
/** Deterministic test bytes (xorshift32), different for each seed: for providers' own test suites too. */
export { pattern } from './fixtures.js'

export const DEFAULT_TIMEOUT_MS = 10_000

/**
 * Registers the conformance suite with vitest. Call it at the top level of a
 * test file. Each test gets fresh endpoints from `target.setup()`; afterwards
 * the suite closes both contexts and calls `target.teardown` (where a provider
 * checks that nothing of its own was left behind). Tests are skipped only by
 * declared capability, and every skip is printed.
 */
export function runConformance<E extends ConformanceEnv>(target: ConformanceTarget<E>): void {
  describe(`conformance: ${target.name}`, async () => {
    const caps = await resolveCapabilities(target)
    const timeoutMs = target.timeoutMs ?? DEFAULT_TIMEOUT_MS
    const suite = new Suite(target.name, caps, timeoutMs, (name, fn, timeout, skip) => it.skipIf(skip)(name, fn, timeout))
    let env: E | null = null

    beforeEach(async () => {
      env = await target.setup()
      suite.setEnv(env)
    }, timeoutMs)

    afterEach(async () => {
      const done = env
      env = null
      suite.setEnv(null)
      if (done !== null) await closeEnv(target, done)
    }, timeoutMs)

    for (const [name, register] of Object.entries(CONFORMANCE_GROUPS)) {
      describe(name, () => register(suite))
    }
  })
}
