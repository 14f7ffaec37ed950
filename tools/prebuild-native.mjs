#!/usr/bin/env node
// prebuild-native.mjs - builds a package's native addon into prebuilds/<platform>-<arch>/ with
// prebuildify (N-API: one binary per platform serves every Node.js version, tagged with its libc so
// node-gyp-build never hands a glibc binary to musl), stripped. Run from the package directory by
// its `build` script; `pnpm pack` then ships the prebuilds, and the install scripts use them.
//   node ../../tools/prebuild-native.mjs [--gyp-dir DIR] [--sources A,B] [--requires FILE] [--if-needed]
// --gyp-dir   where binding.gyp is, relative to the package (default: the package); prebuilds/ goes there
// --sources   files and folders (relative to the gyp dir) whose change means a rebuild (default: binding.gyp,native)
// --requires  headers the build needs, comma-separated (e.g. /usr/include/infiniband/verbs.h): without one, say so and skip
// --if-needed skip when the prebuilt binary is newer than every source
// Skips (exit 0, with the reason) when a prerequisite is missing; a failed compile exits 1.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { delimiter, dirname, join, relative, resolve } from 'node:path'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { 'gyp-dir': { type: 'string' }, sources: { type: 'string' }, requires: { type: 'string' }, 'if-needed': { type: 'boolean' } } })
const pkgDir = process.cwd()
const gypDir = resolve(pkgDir, values['gyp-dir'] ?? '.')
const name = createRequire(join(pkgDir, 'package.json'))('./package.json').name
const log = (msg) => console.error(`prebuild ${name}: ${msg}`)

/** glibc or musl, the way node-gyp-build and prebuildify tag it. */
function libcOf() {
  return process.report?.getReport?.().header?.glibcVersionRuntime ? 'glibc' : 'musl'
}

function newestMtime(path) {
  if (!existsSync(path)) return 0
  const st = statSync(path)
  if (!st.isDirectory()) return st.mtimeMs
  return Math.max(0, ...readdirSync(path).filter((f) => f !== 'build' && f !== 'prebuilds').map((f) => newestMtime(join(path, f))))
}

/** Headers of this node (Debian's /usr/include/node, the official tarball's <prefix>/include/node): nothing is downloaded. */
function nodeHeaders() {
  const prefixes = [dirname(dirname(process.execPath)), process.config.variables.node_prefix, '/usr/local', '/usr']
  return prefixes.find((p) => p && existsSync(join(p, 'include', 'node', 'common.gypi')) && existsSync(join(p, 'include', 'node', 'node_api.h')))
}

function onPath(cmd) {
  return (process.env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, cmd)))
}

const platformDir = join(gypDir, 'prebuilds', `${process.platform}-${process.arch}`)
const binary = () => (existsSync(platformDir) ? readdirSync(platformDir).filter((f) => f.endsWith(`.${libcOf()}.node`)).map((f) => join(platformDir, f))[0] : undefined)
const sources = (values.sources?.split(',') ?? ['binding.gyp', 'native']).map((s) => resolve(gypDir, s))

if (values['if-needed']) {
  const have = binary()
  if (have !== undefined && statSync(have).mtimeMs >= Math.max(...sources.map(newestMtime))) {
    log(`${relative(pkgDir, have)} is up to date`)
    process.exit(0)
  }
}
const skip = (why) => {
  log(`skipped: ${why}; the package would ship without a prebuilt binary for ${process.platform}-${process.arch}-${libcOf()}`)
  process.exit(0)
}
if (process.platform !== 'linux') skip(`the addon is Linux-only (this is ${process.platform})`)
for (const header of values.requires?.split(',') ?? []) if (!existsSync(header)) skip(`${header} is missing`)
for (const tool of ['make', 'g++', 'python3']) if (!onPath(tool)) skip(`${tool} is not on PATH`)
const nodedir = process.env.npm_config_nodedir ?? nodeHeaders()
if (nodedir === undefined) skip('the Node.js headers (include/node/node_api.h) are not installed next to node')

const req = createRequire(join(pkgDir, 'package.json'))
const t0 = performance.now()
const r = spawnSync(process.execPath, [req.resolve('prebuildify/bin.js'), '--napi', '--strip', '--tag-libc', '--target', process.versions.node], {
  cwd: gypDir,
  stdio: ['ignore', 'inherit', 'inherit'],
  env: { ...process.env, npm_config_nodedir: nodedir, PREBUILD_NODE_GYP: req.resolve('node-gyp/bin/node-gyp.js'), JOBS: process.env.JOBS ?? '2' },
})
if (r.status !== 0) {
  log(`prebuildify failed (exit ${r.status ?? r.signal})`)
  process.exit(1)
}
const out = binary()
if (out === undefined) {
  log(`prebuildify succeeded but ${relative(pkgDir, platformDir)} has no .${libcOf()}.node file`)
  process.exit(1)
}
// The binary must load here (a missing symbol shows now, not on a user's machine).
const check = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(out)})`], { encoding: 'utf8' })
if (check.status !== 0) {
  log(`${out} does not load:\n${check.stderr}`)
  process.exit(1)
}
log(`${relative(pkgDir, out)}: ${(statSync(out).size / 1024).toFixed(0)} KiB, built in ${((performance.now() - t0) / 1000).toFixed(1)} s, loads`)
