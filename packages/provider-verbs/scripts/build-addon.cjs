#!/usr/bin/env node
// Builds the native addon (build/Release/rdma_verbs.node) with node-gyp. Used as the package's
// install script and by `pnpm build`: a failed build never fails the install (the provider then
// reports ERR_ADDON_MISSING with what to do at first use) unless --strict is given.
//   --if-needed   skip when the addon is newer than every source file
//   --strict      exit 1 when the addon cannot be built
//   --prefer-prebuilt  (the install script) use the prebuilt binary for this platform (prebuilds/)
//                 when there is one that loads; else say why, and build from source.
//                 RDMA_SESSION_BUILD_FROM_SOURCE=1 always builds.
'use strict'
const { spawnSync } = require('node:child_process')
const { existsSync, statSync, readdirSync } = require('node:fs')
const { dirname, join } = require('node:path')

const root = join(__dirname, '..')
const args = new Set(process.argv.slice(2))
const strict = args.has('--strict')
const addon = join(root, 'build', 'Release', 'rdma_verbs.node')
const log = (msg) => process.stderr.write(`provider-verbs: ${msg}\n`)

function newestSource() {
  const files = [join(root, 'binding.gyp'), ...readdirSync(join(root, 'native')).map((f) => join(root, 'native', f))]
  return Math.max(...files.map((f) => statSync(f).mtimeMs))
}

function giveUp(reason) {
  log(`the native addon was not built: ${reason}`)
  log('the package still installs; using the verbs provider will throw ERR_ADDON_MISSING until it is built.')
  log('to build it: apt-get install -y libibverbs-dev librdmacm-dev rdma-core python3 make g++  (then: pnpm --filter @rdma-session/provider-verbs build:addon)')
  process.exit(strict ? 1 : 0)
}

if (process.platform !== 'linux') giveUp(`libibverbs is Linux-only (this is ${process.platform})`)

// null when the prebuilt binary for this platform loads here (libibverbs is opened later, at run
// time, so this works without rdma-core), else why it is not used.
function prebuiltProblem() {
  if (/^(1|true|yes)$/i.test(process.env.RDMA_SESSION_BUILD_FROM_SOURCE || '')) return 'RDMA_SESSION_BUILD_FROM_SOURCE asks for a build from source'
  const platform = `${process.platform}-${process.arch}-${process.report.getReport().header.glibcVersionRuntime ? 'glibc' : 'musl'}`
  process.env.PREBUILDS_ONLY = '1' // node-gyp-build: look in prebuilds/ only, not at an earlier build
  let file
  try {
    file = require('node-gyp-build').resolve(root)
  } catch {
    return `no prebuilt binary for ${platform}`
  }
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)})`], { encoding: 'utf8' })
  if (r.status !== 0) return `the prebuilt binary ${file} does not load here: ${(r.stderr || '').trim().split('\n').find((l) => l.includes('Error')) || `exit ${r.status}`}`
  log(`using the prebuilt binary ${file} (${platform}); nothing to compile`)
  return null
}

if (args.has('--prefer-prebuilt')) {
  const why = prebuiltProblem()
  if (why === null) process.exit(0)
  log(`${why}; building from source`)
}
if (args.has('--if-needed') && existsSync(addon) && statSync(addon).mtimeMs >= newestSource()) process.exit(0)
if (!existsSync('/usr/include/infiniband/verbs.h')) giveUp('libibverbs headers are missing (/usr/include/infiniband/verbs.h)')
if (!existsSync('/usr/include/rdma/rdma_cma.h')) giveUp('librdmacm headers are missing (/usr/include/rdma/rdma_cma.h)')

function findNodeGyp() {
  try {
    return require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] })
  } catch {}
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp
  const bundled = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')
  return existsSync(bundled) ? bundled : null
}

const nodeGyp = findNodeGyp()
if (nodeGyp === null) giveUp('node-gyp is not installed')
const gypArgs = [nodeGyp, 'rebuild', '--jobs', '2']
// Use the headers installed next to node (Debian/NodeSource packages ship them): no download needed.
const localHeaders = join(dirname(process.execPath), '..', 'include', 'node')
if (existsSync(join(localHeaders, 'common.gypi')) && !process.env.npm_config_nodedir) gypArgs.push(`--nodedir=${join(localHeaders, '..', '..')}`)
const t0 = Date.now()
const r = spawnSync(process.execPath, gypArgs, { cwd: root, encoding: 'utf8', env: { ...process.env, JOBS: '2' } })
if (r.status !== 0 || !existsSync(addon)) {
  process.stderr.write(`${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').slice(-30).join('\n') + '\n')
  giveUp(`node-gyp rebuild failed (exit ${r.status ?? r.signal})`)
}
log(`built ${addon} in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
