#!/usr/bin/env node
// Adds up the vitest JSON reports (test-results.json) of every package and example and
// prints the one line CI reads: `tests: N passed, M failed[, K skipped]`. Exits 1 on any
// failure, or when a workspace that has tests wrote no report.
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const dirs = ['packages', 'examples', 'tools'].flatMap((d) => (existsSync(join(root, d)) ? readdirSync(join(root, d)).map((n) => join(root, d, n)) : []))
let passed = 0
let failed = 0
let skipped = 0
const missing = []
for (const dir of dirs) {
  const hasTests = existsSync(join(dir, 'test')) || existsSync(join(dir, 'vitest.config.ts'))
  const tap = join(dir, 'test-results.tap')
  if (existsSync(tap)) {
    // node:test's TAP reporter ends with `# pass N`, `# fail N`, `# skipped N`, `# todo N`.
    const text = readFileSync(tap, 'utf8')
    const count = (k) => Number(new RegExp(`^# ${k} (\\d+)$`, 'm').exec(text)?.[1] ?? 0)
    passed += count('pass')
    failed += count('fail') + count('cancelled')
    skipped += count('skipped') + count('todo')
    continue
  }
  const report = join(dir, 'test-results.json')
  if (!existsSync(report)) {
    if (hasTests) missing.push(dir)
    continue
  }
  const r = JSON.parse(readFileSync(report, 'utf8'))
  passed += r.numPassedTests
  failed += r.numFailedTests
  skipped += r.numPendingTests + r.numTodoTests
  // A file that failed to load (syntax error, failing import) counts as a failure too.
  failed += r.testResults.filter((f) => f.status === 'failed' && f.assertionResults.length === 0).length
}
for (const dir of missing) console.error(`test-summary: no test-results.json in ${dir}: its tests did not run`)
failed += missing.length
console.log(`tests: ${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`)
process.exit(failed > 0 ? 1 : 0)
