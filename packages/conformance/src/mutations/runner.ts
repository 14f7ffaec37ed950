/**
 * The mutation run: for each break, the conformance cases it names run against the provider
 * with that break (they must fail) and against the provider as it is (they must pass, so the
 * failure is the break's doing). Prints the table break → catching case; a test per break fails
 * when the break survives.
 */
import { afterAll, describe, expect, it } from 'vitest'
import type { Provider } from '@rdma-session/core'
import { Suite, type RegisterTest } from '../suite.js'
import { closeEnv, resolveCapabilities, type ConformanceEnv } from '../target.js'
import { CONFORMANCE_GROUPS } from '../groups/index.js'
import { BREAKS, type Break } from './breaks.js'
import { interpose } from './interposer.js'

/** Like ConformanceTarget, with setup() putting `wrap` around the provider of both endpoints. */
export interface MutationTarget<E extends ConformanceEnv = ConformanceEnv> {
  readonly name: string
  setup(wrap: (provider: Provider) => Provider): Promise<E>
  teardown?(env: E): Promise<void>
  /** Per-case timeout in ms (default 10 000). */
  readonly timeoutMs?: number
}

export interface MutationOutcome {
  readonly brk: string
  /** The named cases that failed on the broken provider, with the first line of why. */
  readonly caughtBy: readonly { readonly id: string; readonly why: string }[]
  /** Named cases that passed anyway, or could not run (skipped by capability, failed on the healthy provider). */
  readonly missed: readonly { readonly id: string; readonly why: string }[]
}

interface Case {
  readonly run: () => Promise<void>
  readonly timeoutMs: number
  readonly skipped: boolean
}

const firstLine = (err: unknown): string => String(err instanceof Error ? err.message : err).split('\n')[0]!.slice(0, 160)

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms)
  })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}

/** Every conformance case by 'group › name', registered on `suite`. */
function collectCases(makeSuite: (register: RegisterTest) => Suite): { cases: Map<string, Case>; suite: Suite } {
  const cases = new Map<string, Case>()
  let group = ''
  const suite = makeSuite((name, run, timeoutMs, skipped) => void cases.set(`${group} › ${name}`, { run, timeoutMs, skipped }))
  for (const [name, register] of Object.entries(CONFORMANCE_GROUPS)) {
    group = name
    register(suite)
  }
  return { cases, suite }
}

/** Runs one case on fresh endpoints; returns why it failed, or null when it passed. */
async function runCase<E extends ConformanceEnv>(target: MutationTarget<E>, suite: Suite, c: Case, wrap: (p: Provider) => Provider): Promise<string | null> {
  const env = await target.setup(wrap)
  suite.setEnv(env)
  let failure: string | null = null
  try {
    await withTimeout(c.run(), c.timeoutMs, 'the case')
  } catch (err) {
    failure = firstLine(err)
  } finally {
    suite.setEnv(null)
    try {
      await withTimeout(closeEnv(target, env), c.timeoutMs, 'closing the endpoints')
    } catch (err) {
      // On the healthy provider a failed close is a failure; on a broken one the case's verdict stands.
      failure ??= `after the case: ${firstLine(err)}`
    }
  }
  return failure
}

async function tryBreak<E extends ConformanceEnv>(target: MutationTarget<E>, suite: Suite, cases: Map<string, Case>, brk: Break): Promise<MutationOutcome> {
  const caughtBy: { id: string; why: string }[] = []
  const missed: { id: string; why: string }[] = []
  for (const id of brk.caughtBy) {
    const c = cases.get(id)
    if (c === undefined) throw new Error(`break '${brk.name}' names no conformance case '${id}'`)
    if (c.skipped) {
      missed.push({ id, why: 'skipped by capability' })
      continue
    }
    const healthy = await runCase(target, suite, c, (p) => p)
    if (healthy !== null) {
      missed.push({ id, why: `fails without the break too: ${healthy}` })
      continue
    }
    const broken = await runCase(target, suite, c, (p) => interpose(p, brk.tamper()))
    if (broken === null) missed.push({ id, why: 'passed with the break' })
    else caughtBy.push({ id, why: broken })
  }
  return { brk: brk.name, caughtBy, missed }
}

function table(provider: string, outcomes: readonly MutationOutcome[]): string {
  const lines = [`mutation table (${provider}): break → catching case`]
  for (const o of outcomes) {
    lines.push(`  ${o.caughtBy.length > 0 ? 'CAUGHT  ' : 'SURVIVED'} ${o.brk}`)
    for (const c of o.caughtBy) lines.push(`             → ${c.id}\n                 (${c.why})`)
    for (const m of o.missed) lines.push(`             ✗ ${m.id}: ${m.why}`)
  }
  const survived = outcomes.filter((o) => o.caughtBy.length === 0).length
  lines.push(`  ${outcomes.length - survived} of ${outcomes.length} breaks caught${survived > 0 ? `, ${survived} SURVIVED` : ''}`)
  return lines.join('\n')
}

/**
 * Registers the mutation run with vitest: one test per break, which fails if no case it names
 * catches it; the table is printed after the last. Call it at the top level of a test file.
 */
export function runMutations<E extends ConformanceEnv>(target: MutationTarget<E>, breaks: readonly Break[] = BREAKS): void {
  describe(`mutations: ${target.name}`, async () => {
    const caps = await resolveCapabilities({ name: target.name, setup: () => target.setup((p) => p), teardown: target.teardown })
    const timeoutMs = target.timeoutMs ?? 10_000
    const { cases, suite } = collectCases((register) => new Suite(target.name, caps, timeoutMs, register))
    const outcomes: MutationOutcome[] = []
    afterAll(() => console.info(table(target.name, outcomes)))
    for (const brk of breaks) {
      it(`caught: ${brk.name}`, async () => {
        const outcome = await tryBreak(target, suite, cases, brk)
        outcomes.push(outcome)
        expect(outcome.caughtBy, `no named case caught '${brk.name}': ${JSON.stringify(outcome.missed)}`).not.toEqual([])
      }, timeoutMs * 4 * brk.caughtBy.length)
    }
  })
}
