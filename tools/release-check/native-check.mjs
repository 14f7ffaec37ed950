// The native packages as users get them: their tarballs carry a prebuilt binary for this platform,
// they install where no compiler is on PATH (without invoking one), and `rdma-session doctor --json`
// then shows softroce's socket helper and the verbs addon loaded from those binaries; with
// libibverbs hidden, the verbs addon still loads and says libibverbs is missing.
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { delimiter, join } from 'node:path'

/** Where each native package keeps its prebuilds, inside the package. */
export const NATIVE_PACKAGES = {
  '@rdma-session/provider-softroce': 'native/prebuilds',
  '@rdma-session/provider-verbs': 'prebuilds',
}

const COMPILERS = ['cc', 'gcc', 'c++', 'g++', 'clang', 'clang++', 'make', 'python', 'python3', 'node-gyp']

export function platformTag() {
  return `${process.platform}-${process.arch}-${process.report.getReport().header.glibcVersionRuntime ? 'glibc' : 'musl'}`
}

/** The prebuilt binary for this platform in a packed package's file list; throws when there is none. */
export function packedPrebuild(pkg) {
  const dir = NATIVE_PACKAGES[pkg.name]
  const libc = platformTag().split('-').at(-1)
  const file = pkg.files.find((f) => f.startsWith(`${dir}/${process.platform}-${process.arch}/`) && f.endsWith(`.${libc}.node`))
  if (file === undefined) throw new Error(`${pkg.name}: the tarball has no prebuilt binary for ${platformTag()} under ${dir}/ (did pnpm build skip the prebuild? its log says why)`)
  return file
}

/**
 * An environment whose PATH finds no compiler: every tool in COMPILERS is a shim that records its
 * call and fails. `calls()` lists what was called (it must stay empty).
 */
export function noCompilerEnv(work) {
  const bin = join(work, 'no-compiler-bin')
  const calls = join(work, 'compiler-calls.log')
  mkdirSync(bin, { recursive: true })
  writeFileSync(calls, '')
  for (const tool of COMPILERS) {
    writeFileSync(join(bin, tool), `#!/bin/sh\necho "${tool} $*" >> '${calls}'\necho "release:check: ${tool} is masked (no compiler here)" >&2\nexit 127\n`)
    chmodSync(join(bin, tool), 0o755)
  }
  const env = { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH}`, npm_config_python: join(bin, 'python3') }
  delete env.RDMA_SESSION_BUILD_FROM_SOURCE
  const masked = spawnSync('sh', ['-c', 'command -v gcc; command -v make; command -v python3'], { env, encoding: 'utf8' }).stdout.trim().split('\n')
  if (masked.some((p) => !p.startsWith(bin))) throw new Error(`the compiler mask does not hold: ${masked.join(', ')}`)
  return { env, bin, calls: () => readFileSync(calls, 'utf8').trim().split('\n').filter(Boolean) }
}

/** The file dlopen("libibverbs.so.1") finds here, or undefined. */
export function libibverbsFile() {
  const cache = spawnSync('ldconfig', ['-p'], { encoding: 'utf8' }).stdout ?? ''
  return /libibverbs\.so\.1 \([^)]*\) => (\S+)/.exec(cache)?.[1]
}

/** `rdma-session doctor --json`'s native section and verbs verdict, checked; returns the report. */
export function doctorNative(run, cli, cwd, env, { libibverbs }) {
  const report = JSON.parse(run(cli, ['doctor', '--json'], { cwd, env }))
  const [helper, addon] = report.native ?? []
  const verbs = report.providers.find((p) => p.provider === 'verbs')
  const problems = []
  if (helper?.status !== 'loaded' || helper.origin !== 'prebuilt') problems.push(`softroce helper: ${JSON.stringify(helper)}`)
  if (addon?.status !== 'loaded' || addon.origin !== 'prebuilt') problems.push(`verbs addon: ${JSON.stringify(addon)}`)
  if (addon?.libibverbs !== libibverbs) problems.push(`verbs addon: libibverbs ${addon?.libibverbs}, expected ${libibverbs}`)
  // Loaded addon, no device: ERR_NO_DEVICE (or usable on a host with RDMA); libibverbs hidden: ERR_ADDON_MISSING naming it.
  const verdictOk = libibverbs === 'loaded' ? verbs?.usable || verbs?.reason === 'ERR_NO_DEVICE' : verbs?.reason === 'ERR_ADDON_MISSING' && /libibverbs/.test(verbs.detail)
  if (!verdictOk) problems.push(`verbs verdict: ${JSON.stringify(verbs)}`)
  if (problems.length > 0) throw new Error(`rdma-session doctor --json (libibverbs ${libibverbs}):\n${problems.join('\n')}`)
  return { helper, addon, verbs }
}

/**
 * Runs `cli doctor --json` with libibverbs.so.1 hidden: in a private mount namespace with the file
 * bind-mounted over by /dev/null (root with unshare), else with RDMA_SESSION_LIBIBVERBS pointing
 * at a missing file. Returns the checked result and how libibverbs was hidden.
 */
export function doctorWithoutLibibverbs(run, cli, cwd, env) {
  const lib = libibverbsFile()
  const canUnshare = lib !== undefined && process.getuid?.() === 0 && spawnSync('unshare', ['--mount', 'true']).status === 0
  if (canUnshare) {
    const shim = join(cwd, 'doctor-no-libibverbs.sh')
    writeFileSync(shim, `#!/bin/sh\nmount --bind /dev/null '${lib}' && exec '${cli}' "$@"\n`)
    chmodSync(shim, 0o755)
    const wrapped = (_cmd, argv, opts) => run('unshare', ['--mount', '--propagation', 'private', shim, ...argv], opts)
    return { how: `${lib} hidden (bind-mounted /dev/null over it in a private mount namespace)`, ...doctorNative(wrapped, cli, cwd, env, { libibverbs: 'missing' }) }
  }
  const missing = join(cwd, 'no-such-dir', 'libibverbs.so.1')
  if (existsSync(missing)) throw new Error(`${missing} exists`)
  return { how: `RDMA_SESSION_LIBIBVERBS=${missing} (no unshare here)`, ...doctorNative(run, cli, cwd, { ...env, RDMA_SESSION_LIBIBVERBS: missing }, { libibverbs: 'missing' }) }
}

