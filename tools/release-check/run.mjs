#!/usr/bin/env node
// `pnpm release:check`: proves the packages as users get them. Packs every publishable
// package with pnpm, lints the tarballs (publint, attw), publishes them to a Verdaccio
// started here on 127.0.0.1, installs them with npm into a fresh app outside the workspace,
// and runs an ESM consumer, a CJS consumer, a strict tsc check of ESM and CJS type imports,
// and the quickstart on each provider that works on this machine. The app installs with no
// compiler on PATH (failing shims for gcc, make, python3, ...): the native packages must use their
// prebuilt binaries, which `rdma-session doctor --json` then shows loaded (native-check.mjs). Ends with one line
// `release:check: PASS …` or `release:check: FAIL …` and exits 0 or 1.
//
// Options: --skip-build (dist/ is fresh), --keep (leave the temp dir for inspection),
// --exclude=NAME[,NAME] (leave a package out, e.g. one still being written; CI passes none).
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startLocalRegistry } from './local-registry.mjs'
import { doctorNative, doctorWithoutLibibverbs, libibverbsFile, NATIVE_PACKAGES, noCompilerEnv, packedPrebuild, platformTag } from './native-check.mjs'
import { lintTarball, packPackage, publishablePackages, publishTarball } from './packed-packages.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')
const args = new Set(process.argv.slice(2))
const excluded = process.argv.slice(2).filter((a) => a.startsWith('--exclude=')).flatMap((a) => a.slice('--exclude='.length).split(','))
const t0 = performance.now()
const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`
const log = (msg) => console.log(`[release:check ${elapsed().padStart(7)}] ${msg}`)

/** Runs a command; throws with its output when it fails. Returns stdout (with `combined`: stdout and stderr). */
function run(cmd, argv, { combined = false, ...opts } = {}) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 300_000, ...opts })
  if (r.status !== 0) {
    const why = r.error ? r.error.message : `exit ${r.status ?? r.signal}`
    throw new Error(`${[cmd, ...argv].join(' ')} failed (${why}):\n${r.stdout ?? ''}${r.stderr ?? ''}`)
  }
  return combined ? `${r.stdout}${r.stderr}` : r.stdout
}

/** `text` must match every pattern, else the step fails. */
function expectLines(step, text, patterns) {
  const missing = patterns.filter((p) => !p.test(text))
  if (missing.length > 0) throw new Error(`${step}: output lacks ${missing.map(String).join(', ')}:\n${text}`)
}

const work = mkdtempSync(join(tmpdir(), 'rdma-release-check-'))
let registry = null
const results = []
let failure = null

try {
  if (!args.has('--skip-build')) {
    log('building the workspace (pnpm build)')
    run('pnpm', ['build'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  }

  // 1. Pack and lint every publishable package.
  const pkgs = publishablePackages(root).filter((p) => !excluded.includes(p.name))
  if (excluded.length > 0) log(`left out on request: ${excluded.join(', ')}`)
  const tarballs = join(work, 'tarballs')
  mkdirSync(tarballs)
  const packed = []
  for (const pkg of pkgs) {
    const p = packPackage(pkg, tarballs)
    lintTarball(root, p.tarball, p.manifest)
    packed.push({ ...pkg, ...p })
    log(`packed ${pkg.name}@${pkg.version}: ${p.files.length} files, publint --strict and attw clean${p.manifest.exports && !JSON.stringify(p.manifest.exports).includes('"require"') ? ' (ESM-only)' : ''}, no workspace: ranges`)
  }
  results.push(`${packed.length} packages packed and linted`)
  for (const p of packed.filter((x) => x.name in NATIVE_PACKAGES)) {
    const file = packedPrebuild(p)
    log(`${p.name} ships ${file} (${(statSync(join(p.dir, file)).size / 1024).toFixed(0)} KiB, N-API, ${platformTag()})`)
  }

  // 2. A registry on loopback; publish everything to it.
  registry = await startLocalRegistry(join(work, 'registry'), { log })
  await Promise.all(packed.map((p) => publishTarball(p.tarball, registry)))
  for (const p of packed) {
    const view = JSON.parse(run('npm', ['view', `${p.name}@${p.version}`, '--json', '--registry', registry.url, '--userconfig', registry.npmrc]))
    if (view.version !== p.version) throw new Error(`${p.name}: the registry serves ${view.version}, expected ${p.version}`)
  }
  log(`published ${packed.map((p) => `${p.name}@${p.version}`).join(', ')}`)
  results.push(`${packed.length} published`)

  // 3. A fresh app outside the workspace, installed with npm from the local registry.
  const app = join(work, 'app')
  mkdirSync(app)
  for (const f of readdirSync(join(here, 'consumer'))) copyFileSync(join(here, 'consumer', f), join(app, f))
  copyFileSync(join(root, 'examples', 'quickstart', 'quickstart.mjs'), join(app, 'quickstart.mjs'))
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'rdma-session-release-check-app', version: '1.0.0', private: true }, null, 2))
  const has = (name) => packed.some((p) => p.name === name)
  const wanted = ['@rdma-session/core', '@rdma-session/provider-mock', '@rdma-session/provider-softroce', '@rdma-session/cli'].filter(has)
  const spec = (name) => `${name}@${packed.find((p) => p.name === name).version}`
  // No compiler on PATH for every install: the native packages must use their prebuilt binaries.
  const nocc = noCompilerEnv(work)
  const npm = (argv) => run('npm', [...argv, '--foreground-scripts', '--registry', registry.url, '--userconfig', registry.npmrc], { cwd: app, env: nocc.env, combined: true })
  const tInstall = performance.now()
  const installed = npm(['install', '--no-audit', '--no-fund', ...wanted.map(spec), '@types/node@20'])
  log(`installed ${wanted.join(', ')} (and their third-party dependencies through the registry's uplink) into ${app} in ${((performance.now() - tInstall) / 1000).toFixed(1)} s, with no compiler on PATH`)
  if (wanted.includes('@rdma-session/provider-softroce')) {
    expectLines('provider-softroce install script', installed, [/roce_sockopt: using the prebuilt binary .*nothing to compile/])
  }

  // 4. The consumers.
  const node = (file, env = {}) => run(process.execPath, [file], { cwd: app, env: { ...process.env, RDMA_SESSION_PROVIDER: '', ...env } })
  const esm = node('esm.mjs')
  expectLines('esm consumer', esm, [/esm: session ok, write ok, errors ok/])
  log(esm.trim())
  const cjs = node('cjs.cjs')
  expectLines('cjs consumer', cjs, [/cjs: striped read ok, errors ok/])
  log(cjs.trim())
  run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: app })
  log('ts: tsc --noEmit (strict, skipLibCheck false, NodeNext) clean on an ESM (.mts) and a CJS (.cts) consumer')
  results.push('esm, cjs and ts consumers ok')

  // 5. The quickstart on each provider that works here.
  const providers = ['mock']
  if (wanted.includes('@rdma-session/provider-softroce')) providers.push('softroce')
  for (const provider of providers) {
    const out = node('quickstart.mjs', { RDMA_SESSION_PROVIDER: provider })
    expectLines(`quickstart on ${provider}`, out, [new RegExp(`provider: ${provider}`), /the session now has 2 QPs/, /write: .*all match/, /read: "hello from bob"/, /striped write: 65536 bytes/, / 0 errors/, /closed:/])
    log(`quickstart on ${provider}: ok (${out.trim().split('\n').length} lines, every step as expected)`)
  }
  if (has('@rdma-session/provider-verbs')) {
    // verbs needs libibverbs and a device: install it apart, run where it opens a device.
    try {
      const tVerbs = performance.now()
      const out = npm(['install', '--no-audit', '--no-fund', spec('@rdma-session/provider-verbs')])
      expectLines('provider-verbs install script', out, [/provider-verbs: using the prebuilt binary .*nothing to compile/])
      log(`installed @rdma-session/provider-verbs in ${((performance.now() - tVerbs) / 1000).toFixed(1)} s with no compiler on PATH: its install script used the prebuilt binary`)
      const probe = spawnSync(process.execPath, ['probe.mjs', 'verbs'], { cwd: app, encoding: 'utf8' })
      if (probe.status === 0) {
        const out = node('quickstart.mjs', { RDMA_SESSION_PROVIDER: 'verbs' })
        expectLines('quickstart on verbs', out, [/provider: verbs/, /closed:/, / 0 errors/])
        providers.push('verbs')
        log('quickstart on verbs: ok')
      } else log(`quickstart on verbs: not run, the provider is not usable here (${probe.stdout.trim()})`)
    } catch (err) {
      throw new Error(`@rdma-session/provider-verbs does not install from the registry: ${err.message}`)
    }
  }
  results.push(`quickstart ok on ${providers.join(', ')}`)

  if (wanted.includes('@rdma-session/cli')) {
    const cli = join(app, 'node_modules', '.bin', 'rdma-session')
    const help = run(cli, ['--help'], { cwd: app })
    expectLines('rdma-session --help', help, [/usage: rdma-session <command>/, /doctor/, /bench/, /capture/])
    const doctor = run(cli, ['doctor', '--require', 'mock', ...(providers.includes('softroce') ? ['--require', 'softroce'] : [])], { cwd: app })
    expectLines('rdma-session doctor', doctor, [/✓ mock +usable/, /providers usable here/])
    log(`cli: rdma-session --help and doctor work from the installed package (${/(\d+ of \d+ providers usable here[^\n]*)/.exec(doctor)?.[1]})`)
    results.push('cli ok')
    if (has('@rdma-session/provider-verbs') && wanted.includes('@rdma-session/provider-softroce')) {
      const lib = libibverbsFile() === undefined ? 'missing' : 'loaded'
      const d = doctorNative(run, cli, app, nocc.env, { libibverbs: lib })
      log(`doctor --json: softroce helper ${d.helper.status} (${d.helper.origin}, ${d.helper.path.slice(app.length + 1)}); verbs addon ${d.addon.status} (${d.addon.origin}), libibverbs ${d.addon.libibverbs}; verbs verdict ${d.verbs.usable ? 'usable' : d.verbs.reason}`)
      const hidden = doctorWithoutLibibverbs(run, cli, app, nocc.env)
      log(`doctor --json with ${hidden.how}: verbs addon ${hidden.addon.status}, libibverbs ${hidden.addon.libibverbs}; verbs verdict ${hidden.verbs.reason}: ${hidden.verbs.detail}`)
      results.push('native helpers load from prebuilt binaries without a compiler')
    }
    const called = nocc.calls()
    if (called.length > 0) throw new Error(`a compiler was invoked although none should be needed:\n${called.join('\n')}`)
  }
} catch (err) {
  failure = err
} finally {
  if (registry !== null) await registry.stop()
  if (args.has('--keep') || failure !== null) console.log(`[release:check] work directory kept: ${work}`)
  else rmSync(work, { recursive: true, force: true })
}

if (failure !== null) {
  console.error(failure.message ?? failure)
  console.log(`release:check: FAIL after ${elapsed()} (${failure.message.split('\n')[0]})`)
  process.exit(1)
}
console.log(`release:check: PASS in ${elapsed()}: ${results.join('; ')}`)
