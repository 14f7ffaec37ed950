#!/usr/bin/env node
// `pnpm test`: prepare the machine, run every workspace's tests (all of them, even after one
// fails), then print what failed and what was skipped by name, ending with the line CI reads:
// `tests: N passed, M failed[, K skipped]`.
//
// Preparation (tools/setup-host.sh: apt packages, the rxe guest, native helpers) runs when this
// process may install packages (root, apt-get present). Otherwise it says what is missing: the
// suites that need it skip with the reason on a developer's machine, and fail under CI=1.
// RDMA_TEST_SETUP=0 skips the preparation. Extra arguments go to turbo (e.g. --filter=core).
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const log = (msg) => console.error(`[pnpm test] ${msg}`)
const run = (cmd, args, env = {}) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } }).status ?? 1

function prepare() {
  if (/^(0|off|false|no)$/i.test(process.env.RDMA_TEST_SETUP ?? '')) return log('RDMA_TEST_SETUP=0: machine preparation skipped')
  const canInstall = process.platform === 'linux' && process.getuid?.() === 0 && existsSync('/usr/bin/apt-get')
  if (!canInstall) {
    log('not preparing this machine (tools/setup-host.sh needs root and apt-get); suites that need')
    log('tshark, nftables, network namespaces, QEMU or libibverbs-dev will skip and say why.')
    log('To run them all: sudo tools/setup-host.sh, then pnpm test as root.')
    return
  }
  const t0 = Date.now()
  log('preparing the machine: tools/setup-host.sh (first run on a fresh machine: a few minutes)')
  if (run('bash', [join(root, 'tools', 'setup-host.sh')]) !== 0) {
    log('tools/setup-host.sh failed (see above); the tests run anyway, and what needs it will fail')
  } else log(`machine ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
}

function clearOldReports() {
  for (const group of ['packages', 'examples', 'tools']) {
    const dir = join(root, group)
    if (!existsSync(dir)) continue
    for (const d of readdirSync(dir, { withFileTypes: true })) {
      if (!d.isDirectory()) continue
      for (const f of ['test-results.json', 'test-results.tap']) rmSync(join(dir, d.name, f), { force: true })
    }
  }
}

prepare()
clearOldReports()
const turbo = run('pnpm', ['exec', 'turbo', 'run', 'test', '--continue', '--concurrency=1', ...process.argv.slice(2)], { RDMA_TEST_REPORT: '1' })
// With a --filter, only the selected workspaces ran: the others' missing reports are no failure.
const filtered = process.argv.slice(2).some((a) => a.startsWith('--filter'))
const summary = run(process.execPath, [join(root, 'tools', 'test-summary.mjs'), '--details', ...(filtered ? ['--reported-only'] : [])])
if (turbo !== 0 && summary === 0) log(`turbo exited ${turbo} although every report passed (a task without a report failed: see above)`)
process.exit(turbo !== 0 || summary !== 0 ? 1 : 0)
