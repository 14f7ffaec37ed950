/** What a provider hands the suite: how to make two connected endpoints, and what it declares it can do. */
import type { Context, ProviderCapabilities } from '@rdma-session/core'

/**
 * Optional fault hooks a target returns from `setup()` when its provider can inject faults (the
 * suite then has `faultInjection`). Kept tiny on purpose: the generic suite needs only this.
 */
export interface ConformanceFaults {
  /**
   * Makes the host of `ctx` unreachable from now on: packets to and from it are
   * lost, so a peer's requests exhaust their transport retries (RETRY_EXC_ERR).
   */
  killHost(ctx: Context): void | Promise<void>
}

/** Two endpoints on the same fabric/network, fresh for each test. A provider may add its own fields (its fabric, say) for teardown. */
export interface ConformanceEnv {
  readonly a: Context
  readonly b: Context
  /** Fault hooks; see ConformanceFaults. Their presence gives the suite `faultInjection`. */
  readonly faults?: unknown
}

/**
 * What the suite keys its skips on: the provider's capabilities and one of the suite's own,
 * `faultInjection` (setup() returns ConformanceFaults), which is not a provider capability.
 */
export interface SuiteCapabilities extends ProviderCapabilities {
  readonly faultInjection: boolean
}

export interface ConformanceTarget<E extends ConformanceEnv = ConformanceEnv> {
  /** The provider's name, used in test titles and skip notes, e.g. 'mock'. */
  readonly name: string
  /**
   * Opens two contexts that can reach each other. Called before every test; the
   * suite closes both contexts after the test (and checks they leak no handles),
   * then calls `teardown`.
   */
  setup(): Promise<E>
  /** Releases what setup() made besides the two contexts (a fabric, sockets, …). */
  teardown?(env: E): Promise<void>
  /**
   * The capability record the suite keys its skips on. Fields left out are read
   * from `a.capabilities` of a probe setup() at collection time (`faultInjection`:
   * whether that setup() returned `faults`).
   */
  readonly capabilities?: Partial<SuiteCapabilities>
  /** Per-test timeout in ms (default 10 000); the scale test gets four times this. */
  readonly timeoutMs?: number
}

const CAPABILITY_KEYS: readonly (keyof SuiteCapabilities)[] = [
  'encryption', 'atomics', 'immediate', 'maxMtu', 'maxQps', 'maxQpWr', 'maxSge', 'maxInline', 'maxMrSize', 'qosScheduling', 'faultInjection',
]

/** The full capability record: what the target declares, completed from a probe setup() when needed. */
export async function resolveCapabilities<E extends ConformanceEnv>(target: ConformanceTarget<E>): Promise<SuiteCapabilities> {
  const declared = target.capabilities ?? {}
  if (CAPABILITY_KEYS.every((k) => declared[k] !== undefined)) return declared as SuiteCapabilities
  const env = await target.setup()
  try {
    return { ...env.a.capabilities, faultInjection: env.faults !== undefined, ...declared }
  } finally {
    await Promise.allSettled([env.a.close(), env.b.close()])
    await target.teardown?.(env)
  }
}

/** Closes both contexts of a test's env, then calls the target's teardown (also when a close fails). */
export async function closeEnv<E extends ConformanceEnv>(target: { teardown?(env: E): Promise<void> }, env: E): Promise<void> {
  try {
    await Promise.all([env.a.close(), env.b.close()])
  } finally {
    await target.teardown?.(env)
  }
}

/** The fault hooks of an env, or an error saying what the provider must return. */
export function faultsOf(env: ConformanceEnv, provider: string): ConformanceFaults {
  const f = env.faults as Partial<ConformanceFaults> | undefined
  if (f === undefined || f === null || typeof f.killHost !== 'function') {
    throw new Error(`provider '${provider}' declares faultInjection=true, so setup() must return faults: { killHost(ctx) } (see ConformanceFaults)`)
  }
  return f as ConformanceFaults
}
