/** @rdma-session/conformance: the one vitest suite every provider runs, parameterized by setup() and capabilities. */
import { afterEach, beforeEach, describe, expect } from 'vitest'
import { Suite } from './suite.js'
import { resolveCapabilities, type ConformanceEnv, type ConformanceTarget } from './target.js'
import { ZERO_HANDLES } from './fixtures.js'
import { operationTests } from './groups/operations.js'
import { errorStatusTests } from './groups/error-statuses.js'
import { stateMachineTests } from './groups/state-machine.js'
import { sessionTests } from './groups/sessions.js'
import { sessionParameterTests } from './groups/session-parameters.js'
import { orderingTests } from './groups/ordering.js'
import { scaleTests } from './groups/scale.js'
import { stripingTests } from './groups/striping.js'
import { encryptionTests } from './groups/encryption.js'
import { closeTests } from './groups/close.js'
import { qpFailureTests } from './groups/qp-failures.js'

export type { ConformanceEnv, ConformanceFaults, ConformanceTarget } from './target.js'
/** Deterministic test bytes (xorshift32), different for each seed: for providers' own test suites too. */
export { pattern } from './fixtures.js'

const DEFAULT_TIMEOUT_MS = 10_000

/** The groups in the order they run; each registers its tests on the suite. */
const CONFORMANCE_GROUPS = {
  'operations': operationTests,
  'error statuses': errorStatusTests,
  'QP state machine': stateMachineTests,
  'sessions': sessionTests,
  'session parameters and QoS': sessionParameterTests,
  'ordering': orderingTests,
  'scale': scaleTests,
  'striping': stripingTests,
  'encryption': encryptionTests,
  'QP failures': qpFailureTests,
  'close and leaks': closeTests,
} as const satisfies Record<string, (suite: Suite) => void>

/**
 * Registers the conformance suite with vitest. Call it at the top level of a
 * test file. Each test gets fresh endpoints from `target.setup()`; afterwards
 * the suite closes both contexts, checks that no handle leaked, and calls
 * `target.teardown`. Tests are skipped only by declared capability, and every
 * skip is printed.
 */
export function runConformance<E extends ConformanceEnv>(target: ConformanceTarget<E>): void {
  describe(`conformance: ${target.name}`, async () => {
    const caps = await resolveCapabilities(target)
    const timeoutMs = target.timeoutMs ?? DEFAULT_TIMEOUT_MS
    const suite = new Suite(target.name, caps, timeoutMs)
    let env: E | null = null

    beforeEach(async () => {
      env = await target.setup()
      suite.setEnv(env)
    }, timeoutMs)

    afterEach(async () => {
      const done = env
      env = null
      suite.setEnv(null)
      if (done === null) return
      try {
        await Promise.all([done.a.close(), done.b.close()])
        expect(done.a.handles, 'handles left on endpoint a after its context closed').toEqual(ZERO_HANDLES)
        expect(done.b.handles, 'handles left on endpoint b after its context closed').toEqual(ZERO_HANDLES)
      } finally {
        await target.teardown?.(done)
      }
    }, timeoutMs)

    for (const [name, register] of Object.entries(CONFORMANCE_GROUPS)) {
      describe(name, () => register(suite))
    }
  })
}
