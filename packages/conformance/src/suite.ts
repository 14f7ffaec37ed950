/** The handle each test group registers through: the live env, the capabilities, and capability-gated tests. */
import type { ConformanceEnv, SuiteCapabilities } from './target.js'

type FlagCapability = { [K in keyof SuiteCapabilities]: SuiteCapabilities[K] extends boolean ? K : never }[keyof SuiteCapabilities]
type NumberCapability = { [K in keyof SuiteCapabilities]: SuiteCapabilities[K] extends number ? K : never }[keyof SuiteCapabilities]

/** A condition on the declared capabilities; a test whose condition fails is skipped and the skip is printed. */
export type Requirement =
  | { readonly flag: FlagCapability; readonly is?: boolean }
  | { readonly number: NumberCapability; readonly atLeast: number }

export const needs = (flag: FlagCapability): Requirement => ({ flag })
export const lacks = (flag: FlagCapability): Requirement => ({ flag, is: false })
export const atLeast = (number: NumberCapability, min: number): Requirement => ({ number, atLeast: min })

export interface TestOptions {
  readonly requires?: readonly Requirement[]
  /** Multiplies the target's per-test timeout. */
  readonly timeoutFactor?: number
}

/** What a registered test becomes: a vitest `it` (runConformance) or an entry in a list (the mutation runner). */
export type RegisterTest = (name: string, fn: () => Promise<void>, timeoutMs: number, skip: boolean) => void

export class Suite {
  readonly provider: string
  readonly caps: SuiteCapabilities
  readonly timeoutMs: number
  readonly #register: RegisterTest
  #env: ConformanceEnv | null = null

  constructor(provider: string, caps: SuiteCapabilities, timeoutMs: number, register: RegisterTest) {
    this.provider = provider
    this.caps = caps
    this.timeoutMs = timeoutMs
    this.#register = register
  }

  /** The endpoints of the running test. */
  get env(): ConformanceEnv {
    if (this.#env === null) throw new Error('conformance: no env; setup() has not run for this test')
    return this.#env
  }
  /** @internal */
  setEnv(env: ConformanceEnv | null): void {
    this.#env = env
  }

  /** Registers a test; with `requires`, it is skipped (and the skip printed) unless the capabilities meet them. */
  test(name: string, fn: () => Promise<void>, options: TestOptions = {}): void {
    const unmet = (options.requires ?? []).map((r) => this.#unmet(r)).filter((why): why is string => why !== null)
    const timeout = this.timeoutMs * (options.timeoutFactor ?? 1)
    if (unmet.length > 0) console.info(`[conformance:${this.provider}] skipped ${name}: provider declares ${unmet.join(', ')}`)
    this.#register(name, fn, timeout, unmet.length > 0)
  }

  /** A description of why the requirement is unmet, or null. */
  #unmet(r: Requirement): string | null {
    if ('flag' in r) {
      const want = r.is ?? true
      return this.caps[r.flag] === want ? null : `${r.flag}=${String(this.caps[r.flag])}`
    }
    const v = this.caps[r.number]
    return v >= r.atLeast ? null : `${r.number}=${v} (needs >= ${r.atLeast})`
  }
}
