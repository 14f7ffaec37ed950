/**
 * Shared pieces of the socket tests: build the native helper when it is missing (one build at a
 * time across test files), run udp-probe.py (raw-socket capture / zero-checksum sender), read
 * the kernel's UDP counters, make throwaway network namespaces.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type AddonState, DISABLE_ENV, loadSockoptAddon, resetSockoptAddon } from '../../src/socket/sockopt-addon.js'

export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const probeScript = join(dirname(fileURLToPath(import.meta.url)), 'udp-probe.py')

export const isRoot = process.getuid?.() === 0
export const hasPython = spawnSync('python3', ['-c', 'pass']).status === 0
export const hasIpNetns = spawnSync('ip', ['netns', 'list']).status === 0
/** Why a raw capture on loopback cannot run here (null when it can): for environmentSkip(). */
export const rawCaptureUnavailable = !isRoot ? 'needs root (raw packet capture)' : !hasPython ? 'needs python3' : null
/** Why a network namespace cannot be made here (null when it can): for environmentSkip(). */
export const netnsUnavailable = !isRoot ? 'needs root (network namespaces)' : !hasIpNetns ? '`ip netns` is not available (install iproute2)' : null

/**
 * The addon, built first if it is missing (node native/build.mjs, ~2 s). A failed build throws
 * with its output: the tests that need the helper then fail, they do not skip.
 */
export function ensureAddonBuilt(): AddonState {
  resetSockoptAddon()
  const saved = process.env[DISABLE_ENV]
  delete process.env[DISABLE_ENV]
  try {
    let state = loadSockoptAddon()
    if (state.loaded) return state
    const lock = join(packageRoot, 'native', '.build-lock')
    const deadline = Date.now() + 180_000
    for (;;) {
      try {
        mkdirSync(lock)
        break
      } catch {
        // another test file is building; a lock older than 3 minutes is stale
        const age = Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now())
        if (Date.now() > deadline || age > 180_000) rmSync(lock, { recursive: true, force: true })
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200)
      }
    }
    try {
      resetSockoptAddon()
      state = loadSockoptAddon()
      if (state.loaded) return state
      const r = spawnSync(process.execPath, [join(packageRoot, 'native', 'build.mjs')], { encoding: 'utf8', timeout: 170_000 })
      if (r.status !== 0) throw new Error(`building the native socket-options helper failed:\n${(r.stdout + r.stderr).slice(-3000)}`)
    } finally {
      rmSync(lock, { recursive: true, force: true })
    }
    resetSockoptAddon()
    state = loadSockoptAddon()
    if (!state.loaded) throw new Error(`native helper built but not loadable: ${state.why}`)
    return state
  } finally {
    if (saved === undefined) delete process.env[DISABLE_ENV]
    else process.env[DISABLE_ENV] = saved
  }
}

export interface ProbeRecord {
  ready?: boolean
  id?: number
  df?: boolean
  mf?: boolean
  src?: string
  dst?: string
  sport?: number
  dport?: number
  udpChecksum?: number
  payload?: string
  sent?: string
}

/** Run udp-probe.py; `ready` resolves once a capture listens, `done` with every record. */
export function runProbe(args: string[], { netns }: { netns?: string } = {}): { ready: Promise<void>; done: Promise<ProbeRecord[]> } {
  const argv = netns === undefined ? ['python3', probeScript, ...args] : ['ip', 'netns', 'exec', netns, 'python3', probeScript, ...args]
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
  const records: ProbeRecord[] = []
  let buf = ''
  let err = ''
  let onReady: () => void = () => {}
  const ready = new Promise<void>((resolve) => (onReady = resolve))
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    buf += d
    const lines = buf.split('\n')
    buf = lines.pop()!
    for (const l of lines) {
      const rec = JSON.parse(l) as ProbeRecord
      if (rec.ready) onReady()
      else records.push(rec)
    }
  })
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d))
  const done = new Promise<ProbeRecord[]>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(records) : reject(new Error(`udp-probe.py ${args.join(' ')} exited ${String(code)}: ${err}`))))
  })
  done.catch(() => {})
  return { ready: Promise.race([ready, done.then(() => {})]), done }
}

/** A counter from /proc/net/snmp6 (e.g. Udp6InCsumErrors), optionally inside a netns. */
export function snmp6(name: string, netns?: string): number {
  const text = netns === undefined ? readFileSync('/proc/net/snmp6', 'utf8') : execFileSync('ip', ['netns', 'exec', netns, 'cat', '/proc/net/snmp6'], { encoding: 'utf8' })
  const m = new RegExp(`^${name}\\s+(\\d+)`, 'm').exec(text)
  if (!m) throw new Error(`no ${name} in /proc/net/snmp6`)
  return Number(m[1])
}

/** Make a fresh netns with loopback up; returns its name and a remover. */
export function makeNetns(tag: string): { name: string; remove: () => void } {
  const name = `rsock-${tag}-${process.pid}`
  // One left by a crashed run of an earlier process with this pid would make `ip netns add` fail.
  if (existsSync(`/run/netns/${name}`)) execFileSync('ip', ['netns', 'delete', name])
  execFileSync('ip', ['netns', 'add', name])
  execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up'])
  return { name, remove: () => { if (existsSync(`/run/netns/${name}`)) execFileSync('ip', ['netns', 'delete', name]) } }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
