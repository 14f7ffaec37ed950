/**
 * The verdict on the conformance run in the rxe guest: the listed kernel deviations fail, each as
 * described; every other test passes or is skipped by capability; the counts are exact. Pure, so
 * test/guest-verdict.test.ts checks it without booting a guest.
 */

/** A test the kernel's rxe fails, not the provider: what it does instead, and what the failure message shows. */
export interface Deviation {
  readonly why: string
  readonly message: RegExp
}

export interface GuestTest {
  readonly name: string
  readonly status: 'passed' | 'failed' | 'skipped'
  readonly message?: string
}

export interface GuestConformance {
  readonly passed: number
  readonly failed: number
  readonly skipped: number
  readonly tests: readonly GuestTest[]
}

/** Everything wrong with `run`, one line each; empty when it is exactly as expected. */
export function judgeGuestRun(run: GuestConformance, deviations: Readonly<Record<string, Deviation>>, expectedSkipped: number): string[] {
  const problems: string[] = []
  const listed = Object.entries(deviations)
  const deviationOf = (t: GuestTest): Deviation | undefined => listed.find(([title]) => t.name.endsWith(title))?.[1]
  for (const [title, d] of listed) {
    const matches = run.tests.filter((t) => t.name.endsWith(title))
    if (matches.length !== 1) {
      problems.push(`deviation "${title}": ${matches.length} tests carry this title (expected exactly 1)`)
      continue
    }
    const t = matches[0]!
    if (t.status !== 'failed') problems.push(`deviation "${title}" ${t.status} (${d.why}): the kernel no longer deviates, remove it from the list`)
    else if (!d.message.test(t.message ?? '')) problems.push(`deviation "${title}" failed, but not as described (${d.why}; expected ${String(d.message)}): ${t.message ?? ''}`)
  }
  for (const t of run.tests) {
    if (t.status === 'failed' && deviationOf(t) === undefined) problems.push(`FAILED, not a listed deviation: ${t.name}\n${t.message ?? ''}`)
  }
  const count = (s: GuestTest['status']): number => run.tests.filter((t) => t.status === s).length
  const counts = { passed: count('passed'), failed: count('failed'), skipped: count('skipped') }
  if (run.passed !== counts.passed || run.failed !== counts.failed || run.skipped !== counts.skipped) {
    problems.push(`the counts ${JSON.stringify({ passed: run.passed, failed: run.failed, skipped: run.skipped })} do not match the tests listed ${JSON.stringify(counts)}`)
  }
  if (counts.failed !== listed.length) problems.push(`${counts.failed} tests failed, expected exactly the ${listed.length} listed deviations`)
  if (counts.skipped !== expectedSkipped) problems.push(`${counts.skipped} tests skipped, expected exactly ${expectedSkipped} (by the provider's declared capabilities)`)
  if (counts.passed !== run.tests.length - listed.length - expectedSkipped) problems.push(`${counts.passed} of ${run.tests.length} tests passed, expected ${run.tests.length - listed.length - expectedSkipped}`)
  return problems
}
