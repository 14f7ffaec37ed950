// build.sh's package step on a simulated machine (PATH shims for dpkg-query and apt-get): packages
// that were never installed are detected and installed, and a failing install names the step, the
// command, its exit code and the last lines of its output. Needs only bash; no root, no network.
// Run: node --test tools/rxe-vm/test/build-packages.test.mjs
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { paths } from '../index.mjs'

const ALL = ['qemu-system-x86', 'busybox-static', 'cpio', 'xz-utils', 'kmod', 'iproute2', 'rdma-core', 'ibverbs-utils',
  'ibverbs-providers', 'perftest', 'rdmacm-utils', 'libibverbs-dev', 'librdmacm-dev', 'gcc', 'libc6-dev']
const dirs = []
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }) })

// dpkg-query as Debian's behaves: known packages listed, each unknown one reported on stderr,
// exit 1 when any was unknown. apt-get "installs" by adding to the installed list (or fails as told).
const DPKG_QUERY = `#!/bin/bash
code=0
for a in "$@"; do
  case $a in -*|'\${'*) continue;; esac
  if grep -qx "$a" "$SHIM_DIR/installed"; then echo "$a installed"
  else echo "dpkg-query: no packages found matching $a" >&2; code=1; fi
done
exit $code
`
const APT_GET = `#!/bin/bash
echo "apt-get $*" >> "$SHIM_DIR/apt.log"
if [ -n "\${SHIM_APT_FAIL:-}" ] && [ "$1" = install ]; then
  echo "Reading package lists..."; echo "E: Unable to locate package qemu-system-x86" >&2; exit 100
fi
[ "$1" = install ] || exit 0
for a in "$@"; do case $a in -*|install|Dpkg*) ;; *) echo "$a" >> "$SHIM_DIR/installed";; esac; done
`

function machine(installed) {
  const dir = mkdtempSync(join(tmpdir(), 'rxe-vm-shim-'))
  dirs.push(dir)
  writeFileSync(join(dir, 'installed'), installed.map((p) => `${p}\n`).join(''))
  writeFileSync(join(dir, 'dpkg-query'), DPKG_QUERY)
  writeFileSync(join(dir, 'apt-get'), APT_GET)
  chmodSync(join(dir, 'dpkg-query'), 0o755)
  chmodSync(join(dir, 'apt-get'), 0o755)
  return dir
}

function build(dir, env = {}) {
  const r = spawnSync('bash', [paths.build], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, SHIM_DIR: dir, RXE_VM_DIR: join(dir, 'out'), RXE_VM_STOP_AFTER: 'packages', ...env },
  })
  const aptLog = existsSync(join(dir, 'apt.log')) ? readFileSync(join(dir, 'apt.log'), 'utf8') : ''
  return { ...r, aptLog }
}

test('packages never installed are detected (dpkg-query exits 1) and installed', () => {
  const absent = ['qemu-system-x86', 'perftest', 'libibverbs-dev']
  const dir = machine(ALL.filter((p) => !absent.includes(p)))
  const r = build(dir)
  assert.equal(r.status, 0, `build.sh exited ${r.status}\n${r.stderr}`)
  const installs = r.aptLog.split('\n').filter((l) => l.startsWith('apt-get install'))
  assert.equal(installs.length, 1, r.aptLog)
  for (const p of absent) assert.match(installs[0], new RegExp(` ${p}( |$)`), `installs ${p}: ${installs[0]}`)
  assert.doesNotMatch(installs[0], / cpio( |$)/, 'installed packages are not installed again')
})

test('nothing is installed when every package is present', () => {
  const dir = machine(ALL)
  const r = build(dir)
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.aptLog, '')
})

test('an install that fails names the step, the command, its exit code and its last output lines', () => {
  const dir = machine([])
  const r = build(dir, { SHIM_APT_FAIL: '1' })
  assert.equal(r.status, 100, r.stderr)
  assert.match(r.stderr, /FAILED at step 'host packages': `apt-get install .*` exited with code 100/)
  assert.match(r.stderr, /\| E: Unable to locate package qemu-system-x86/)
  assert.match(r.aptLog, /apt-get update/, 'retried after updating the lists')
})
