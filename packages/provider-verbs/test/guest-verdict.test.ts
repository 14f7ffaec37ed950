import { describe, expect, it } from 'vitest'
import { judgeGuestRun, type Deviation, type GuestTest } from './guest-verdict.js'

const DEVIATIONS: Record<string, Deviation> = {
  'bad lkey gives LOC_PROT_ERR': { why: 'rxe says LOC_QP_OP_ERR', message: /LOC_QP_OP_ERR/ },
}
const base: GuestTest[] = [
  { name: 'conformance: verbs > error statuses > bad lkey gives LOC_PROT_ERR', status: 'failed', message: "expected 'LOC_QP_OP_ERR' to be 'LOC_PROT_ERR'" },
  { name: 'conformance: verbs > operations > SEND lands', status: 'passed' },
  { name: 'conformance: verbs > operations > atomics', status: 'skipped' },
]
const run = (tests: GuestTest[]) => ({
  passed: tests.filter((t) => t.status === 'passed').length,
  failed: tests.filter((t) => t.status === 'failed').length,
  skipped: tests.filter((t) => t.status === 'skipped').length,
  tests,
})

describe('the verdict on the guest conformance run', () => {
  it('accepts exactly the listed deviations failing as described, every other test passing or skipped as expected', () => {
    expect(judgeGuestRun(run(base), DEVIATIONS, 1)).toEqual([])
  })
  it('a listed deviation that passes now must leave the list', () => {
    const tests = base.map((t, i) => (i === 0 ? { ...t, status: 'passed' as const } : t))
    expect(judgeGuestRun(run(tests), DEVIATIONS, 1).join('\n')).toMatch(/deviation "bad lkey gives LOC_PROT_ERR" passed .*remove it from the list/)
  })
  it('a listed deviation that fails differently from its description is a failure', () => {
    const tests = base.map((t, i) => (i === 0 ? { ...t, message: 'timed out' } : t))
    expect(judgeGuestRun(run(tests), DEVIATIONS, 1).join('\n')).toMatch(/failed, but not as described/)
  })
  it('any other failure fails, and so does a count off by one (a test skipped that should have run)', () => {
    const failing = [...base, { name: 'conformance: verbs > ordering > in order', status: 'failed' as const, message: 'boom' }]
    expect(judgeGuestRun(run(failing), DEVIATIONS, 1).join('\n')).toMatch(/FAILED, not a listed deviation: .*in order/)
    const extraSkip = [...base, { name: 'conformance: verbs > ordering > in order', status: 'skipped' as const }]
    expect(judgeGuestRun(run(extraSkip), DEVIATIONS, 1).join('\n')).toMatch(/2 tests skipped, expected exactly 1/)
    expect(judgeGuestRun({ ...run(base), passed: 5 }, DEVIATIONS, 1).join('\n')).toMatch(/do not match the tests listed/)
  })
  it('a deviation title that matches no test (renamed) is reported', () => {
    expect(judgeGuestRun(run(base.slice(1)), DEVIATIONS, 1).join('\n')).toMatch(/0 tests carry this title/)
  })
})
