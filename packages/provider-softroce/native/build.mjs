#!/usr/bin/env node
// build.mjs - build the socket-options addon (build/Release/roce_sockopt.node) with node-gyp,
// using the node headers installed next to this node binary when there are any, so nothing is
// downloaded. `pnpm --filter @rdma-session/provider-softroce build:native` runs it.
//   node native/build.mjs [--optional] [--prefer-prebuilt]
// --optional: a failed build prints what is lost and exits 0 (for install hooks).
// --prefer-prebuilt (the install hook): use the prebuilt binary for this platform from
//   native/prebuilds/ when there is one that loads; else say why, and build from source.
//   RDMA_SESSION_BUILD_FROM_SOURCE=1 always builds.
// Needs python3, make and a C compiler (g++ links the addon); node-gyp comes with npm and pnpm.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const optional = process.argv.includes('--optional')
const t0 = Date.now()

function findNodeGyp() {
  try {
    return [process.execPath, createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js')]
  } catch {}
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) {
    const p = process.env.npm_config_node_gyp
    return p.endsWith('.js') ? [process.execPath, p] : [p]
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, 'node-gyp'))) return [join(dir, 'node-gyp')]
  }
  const prefix = dirname(dirname(process.execPath))
  for (const m of ['npm', 'pnpm/dist', 'corepack']) {
    const js = join(prefix, 'lib', 'node_modules', m, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')
    if (existsSync(js)) return [process.execPath, js]
  }
  return null
}

function fail(why) {
  const msg = `roce_sockopt: native build failed: ${why}
  Without it provider-softroce still works, but IPv4 packets it sends to kernel rxe or RoCE NICs are
  dropped for a bad ICRC, and IPv6 packets from rxe are dropped by the kernel (zero UDP checksum).
  Fix: install python3, make and g++, then run pnpm --filter @rdma-session/provider-softroce build:native`
  console.error(msg)
  process.exit(optional ? 0 : 1)
}

if (process.platform !== 'linux') fail(`the socket options exist only on Linux (this is ${process.platform})`)

/** null when the prebuilt binary for this platform loads here, else why it is not used. */
function prebuiltProblem() {
  if (/^(1|true|yes)$/i.test(process.env.RDMA_SESSION_BUILD_FROM_SOURCE ?? '')) return 'RDMA_SESSION_BUILD_FROM_SOURCE asks for a build from source'
  const libc = process.report.getReport().header.glibcVersionRuntime ? 'glibc' : 'musl'
  process.env.PREBUILDS_ONLY = '1' // node-gyp-build: look in prebuilds/ only, not at an earlier build
  let file
  try {
    file = createRequire(import.meta.url)('node-gyp-build').resolve(here)
  } catch {
    return `no prebuilt binary for ${process.platform}-${process.arch}-${libc}`
  }
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)})`], { encoding: 'utf8' })
  if (r.status !== 0) return `the prebuilt binary ${file} does not load here (${r.stderr.trim().split('\n').find((l) => l.includes('Error')) ?? `exit ${r.status}`})`
  console.log(`roce_sockopt: using the prebuilt binary ${file} (${process.platform}-${process.arch}-${libc}); nothing to compile`)
  return null
}

if (process.argv.includes('--prefer-prebuilt')) {
  const why = prebuiltProblem()
  if (why === null) process.exit(0)
  console.error(`roce_sockopt: ${why}; building from source`)
}
const gyp = findNodeGyp()
if (!gyp) fail('node-gyp not found (it comes with npm and pnpm; or add it as a devDependency)')

const args = ['rebuild', '--directory', here]
// Local headers (Debian's nodejs, the official tarball, ...): <prefix>/include/node/node_api.h.
const prefixes = [dirname(dirname(process.execPath)), process.config.variables.node_prefix, '/usr/local', '/usr']
const nodedir = prefixes.find((p) => p && existsSync(join(p, 'include', 'node', 'common.gypi')) && existsSync(join(p, 'include', 'node', 'node_api.h')))
if (!process.env.npm_config_nodedir && nodedir) args.push(`--nodedir=${nodedir}`)
const [cmd, ...pre] = gyp
const r = spawnSync(cmd, [...pre, ...args], { stdio: 'inherit' })
if (r.error) fail(r.error.message)
if (r.status !== 0) fail(`node-gyp exited with ${r.status ?? r.signal}`)
const out = join(here, 'build', 'Release', 'roce_sockopt.node')
if (!existsSync(out)) fail(`node-gyp succeeded but ${out} is missing`)
console.log(`roce_sockopt: built ${out} in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
