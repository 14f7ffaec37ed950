#!/usr/bin/env node
// Adds up the test reports of every package, example and tool (vitest's test-results.json,
// node:test's test-results.tap) and prints the one line CI reads: `tests: N passed, M failed[, K
// skipped]`. With --details it first names every failing test (file › title, and the first line
// of its error), every test file that failed to load, every workspace whose tests did not run, and
// every skipped test (--reported-only: workspaces without a report were not selected). Exits 1 on any failure, or when a workspace that has tests wrote no report.
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join, relative } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const details = process.argv.includes('--details')
// --reported-only: a workspace without a report was not selected (pnpm test --filter=...).
const reportedOnly = process.argv.includes('--reported-only')
const dirs = ['packages', 'examples', 'tools'].flatMap((d) => (existsSync(join(root, d)) ? readdirSync(join(root, d)).map((n) => join(root, d, n)) : []))
const failures = [] // "file › title: message"
const skippedNames = []
const missing = []
let passed = 0
let skipped = 0

const firstLine = (s) => String(s ?? '').split('\n').find((l) => l.trim() !== '')?.trim().slice(0, 1200) ?? ''

/** node:test TAP: `# pass N` totals; failing and skipped tests from `not ok` / `# SKIP` lines. */
function readTap(dir, text) {
  const count = (k) => Number(new RegExp(`^# ${k} (\\d+)$`, 'm').exec(text)?.[1] ?? 0)
  passed += count('pass')
  skipped += count('skipped') + count('todo')
  const where = relative(root, dir)
  const lines = text.split('\n')
  let failed = count('fail') + count('cancelled')
  const named = []
  lines.forEach((line, i) => {
    const bad = /^\s*not ok \d+ - (.*?)(?: # .*)?$/.exec(line)
    if (bad) {
      // The YAML block after it holds `error: '...'` or `error: |-` with the text on the next line.
      const at = lines.slice(i + 1, i + 12).findIndex((l) => /^\s+error: /.test(l))
      let err = at < 0 ? '' : lines[i + 1 + at].replace(/^\s+error: /, '').replace(/^['|>-]+\s*/, '')
      if (at >= 0 && err === '') err = (lines[i + 2 + at] ?? '').trim()
      named.push(`${where} › ${bad[1]}${err ? `: ${err.slice(0, 300)}` : ''}`)
    }
    const skip = /^\s*ok \d+ - (.*?) # SKIP ?(.*)$/.exec(line)
    if (skip) skippedNames.push(`${where} › ${skip[1]}${skip[2] ? ` (${skip[2]})` : ''}`)
  })
  // Suites that fail because a child failed are `not ok` too: list them all, count the totals.
  if (failed > 0 && named.length === 0) named.push(`${where}: ${failed} failing test(s) (see its output above)`)
  failures.push(...named)
  return failed
}

/** vitest JSON: per file, per test; a file that failed to load has no tests and a message. */
function readJson(dir, r) {
  passed += r.numPassedTests
  skipped += r.numPendingTests + r.numTodoTests
  let failed = r.numFailedTests
  for (const file of r.testResults) {
    const name = relative(root, file.name)
    if (file.status === 'failed' && file.assertionResults.length === 0) {
      failed++
      failures.push(`${name} (failed to load or run): ${firstLine(file.message)}`)
    }
    for (const t of file.assertionResults) {
      const title = [...t.ancestorTitles, t.title].join(' › ')
      if (t.status === 'failed') failures.push(`${name} › ${title}: ${firstLine(t.failureMessages?.[0])}`)
      else if (t.status === 'skipped' || t.status === 'pending' || t.status === 'todo') skippedNames.push(`${name} › ${title}`)
    }
  }
  return failed
}

let failed = 0
for (const dir of dirs) {
  const hasTests = existsSync(join(dir, 'test')) || existsSync(join(dir, 'vitest.config.ts'))
  const tap = join(dir, 'test-results.tap')
  const json = join(dir, 'test-results.json')
  if (existsSync(tap)) failed += readTap(dir, readFileSync(tap, 'utf8'))
  else if (existsSync(json)) failed += readJson(dir, JSON.parse(readFileSync(json, 'utf8')))
  else if (hasTests && !reportedOnly) missing.push(relative(root, dir))
}
for (const dir of missing) failures.push(`${dir}: no test report (test-results.json / .tap): its tests did not run or did not finish`)
failed += missing.length

if (details) {
  if (skippedNames.length > 0) {
    console.log(`\nskipped (${skippedNames.length}; under CI only by a provider's declared capability):`)
    for (const s of skippedNames) console.log(`  - ${s}`)
  }
  if (failures.length > 0) {
    console.log(`\nfailed (${failures.length}):`)
    for (const f of failures) console.log(`  ✗ ${f}`)
  }
  console.log('')
}
console.log(`tests: ${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`)
process.exit(failed > 0 ? 1 : 0)
