// index.mjs - the rxe-vm guest for tests: build it once (ensureBuilt), boot it with a command and
// its own network namespace (startGuest), talk to programs in it (guest.connect, RcPeerClient).
// See README.md. Linux, root, /dev/net/tun and the Debian apt repositories are needed.
import { spawn, spawnSync } from 'node:child_process'
import { accessSync, constants, existsSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { Duplex } from 'node:stream'
import { fileURLToPath } from 'node:url'

export { RcPeerClient, RcPeerError, parseFields } from './rc-peer-client.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))

/** Addresses and GID indexes of the --tap link (they exist only inside the guest's netns). */
export const TAP = Object.freeze({
  hostIpv4: '10.77.0.1',
  hostIpv6: 'fd77::1',
  guestIpv4: '10.77.0.2',
  guestIpv6: 'fd77::2',
  device: 'rxe2',
  hostInterface: 'rxetap0',
  /** rxe2's GID table, all RoCE v2. */
  gidIndex: Object.freeze({ linkLocal: 0, ipv4: 1, ipv6: 2 }),
})

/** The cache directory: $RXE_VM_DIR or ~/.cache/rdma-session/rxe-vm. */
export function vmDir() {
  return process.env.RXE_VM_DIR || join(homedir(), '.cache', 'rdma-session', 'rxe-vm')
}

/** Paths of the scripts and of the build output. */
export const paths = Object.freeze({
  build: join(HERE, 'build.sh'),
  run: join(HERE, 'run.sh'),
  bridge: join(HERE, 'netns-tcp-bridge.mjs'),
  get dir() { return vmDir() },
  get rcPeer() { return join(vmDir(), 'bin', 'rc_peer') },
})

/**
 * Can this host boot the guest at all? `{ ok, reasons }`; the reasons say what is missing.
 * (Missing apt packages are not a reason: ensureBuilt() installs them.)
 */
export function hostSupport() {
  const reasons = []
  if (process.platform !== 'linux' || process.arch !== 'x64') reasons.push(`needs Linux x86-64 (this is ${process.platform}/${process.arch})`)
  if (process.getuid?.() !== 0) reasons.push('needs root (network namespaces, tap devices, apt)')
  try { accessSync('/dev/net/tun', constants.R_OK | constants.W_OK) } catch { reasons.push('no usable /dev/net/tun') }
  if (!existsSync('/usr/bin/apt-get') && !existsSync('/usr/bin/qemu-system-x86_64')) reasons.push('neither qemu-system-x86_64 nor apt-get is installed')
  if (spawnSync('ip', ['-V']).status !== 0) reasons.push('no iproute2 `ip` command')
  return { ok: reasons.length === 0, reasons }
}

/**
 * Can a test use an already built guest here? null when it can; otherwise why not, for the test's
 * skip message: what hostSupport() says is missing, or that the build (vmlinux, initramfs.cpio,
 * rc_peer) is not in the cache dir. Builds nothing (tests that may build call ensureBuilt()).
 */
export function guestSupport() {
  const host = hostSupport()
  if (!host.ok) return host.reasons.join('; ')
  const dir = vmDir()
  const built = existsSync(join(dir, 'vmlinux')) && existsSync(join(dir, 'initramfs.cpio')) && existsSync(paths.rcPeer)
  return built ? null : `rxe-vm is not built (${dir}); run tools/rxe-vm/build.sh`
}

/**
 * Run build.sh (installs missing apt packages, fetches the kernel once, rebuilds the initramfs
 * and rc_peer only when an input changed; ~0.2 s when up to date). Resolves with
 * `{ dir, ms, log }`; rejects with the build log when it fails.
 */
export function ensureBuilt({ force = false, onLog } = {}) {
  const t0 = Date.now()
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [paths.build, ...(force ? ['--force'] : [])], { stdio: ['ignore', 'pipe', 'pipe'] })
    let log = ''
    const take = (d) => { log += d; onLog?.(String(d)) }
    child.stdout.on('data', take)
    child.stderr.on('data', take)
    child.on('error', reject)
    child.on('close', (code) => {
      if (code === 0) resolve({ dir: vmDir(), ms: Date.now() - t0, log })
      else reject(Object.assign(new Error(`rxe-vm build.sh failed (exit ${code}):\n${log.slice(-4000)}`), { code: 'RXE_VM_BUILD_FAILED', log }))
    })
  })
}

let seq = 0
const running = new Set()
process.once('exit', () => { for (const c of running) try { c.kill('SIGTERM') } catch {} })

/**
 * Boot the guest and run `command` (a bash command line) in it.
 *
 * Options: command (required); tap (default true: a fresh netns with rxetap0 <-> guest eth2/rxe2);
 * netns (its name, default rxevm-<pid>-<n>; must not exist); share (host dir at /mnt/host, the
 * command's cwd); shareWritable; node (the host's node in the guest); kernelArgs (more guest kernel
 * command line, run.sh -k, e.g. 'clocksource=tsc tsc=reliable'); timeoutMs (default 120000,
 * rounded up to seconds; then `exited` gives code 124); onOutput(text) (console + run.sh stderr as
 * they arrive; RXE_VM_DEBUG=1 copies them to process.stderr).
 *
 * Resolves once the netns exists (so host programs can join it), with:
 *   netns     the netns name (null without tap)
 *   qemuPid   qemu's pid, once the console printed its first line (for cleanup checks)
 *   ready     resolves when the guest starts the command (rxe0/rxe2 up, GIDs present)
 *   exited    resolves with { code, signal, output, stderr } when run.sh ends; code is the command's
 *             exit code, 124 timeout, 125 no code (panic), 143 killed
 *   kill()    SIGTERM to run.sh (it stops qemu and deletes the netns); returns `exited`
 *   spawn(cmd, args, opts)   child_process.spawn inside the netns
 *   run(cmd, args, { timeoutMs, ...spawn opts })   runs a program inside the netns to its end:
 *             { code, signal, stdout, stderr }; SIGKILLed after timeoutMs (default: no limit)
 *   connect(port, { host = '10.77.0.2', timeoutMs })  a Duplex stream to a TCP port in the guest,
 *             retried until it connects (through a small bridge process in the netns)
 */
export async function startGuest({
  command, tap = true, netns, share, shareWritable = false, node = false, kernelArgs,
  timeoutMs = 120_000, onOutput, verbose = false,
} = {}) {
  if (typeof command !== 'string' || !command) throw new TypeError('startGuest: command (a bash command line) is required')
  if (!existsSync(join(vmDir(), 'initramfs.cpio'))) {
    throw Object.assign(new Error(`rxe-vm: no build in ${vmDir()}; call ensureBuilt() or run tools/rxe-vm/build.sh`), { code: 'RXE_VM_NOT_BUILT' })
  }
  const ns = tap ? netns ?? `rxevm-${process.pid}-${++seq}` : null
  const args = [paths.run, '-t', String(Math.max(1, Math.ceil(timeoutMs / 1000)))]
  if (ns) args.push('--netns', ns)
  if (share) args.push('-s', share)
  if (shareWritable) args.push('-w')
  if (node) args.push('-n')
  if (kernelArgs) args.push('-k', kernelArgs)
  if (verbose) args.push('-v')
  args.push('--', command)

  const guest = { qemuPid: undefined }
  const child = spawn('bash', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child)
  const debug = process.env.RXE_VM_DEBUG === '1'
  let output = ''
  let stderr = ''
  let stderrLine = ''
  let onNetns, onReady, failNetns, failReady
  const netnsUp = new Promise((res, rej) => { onNetns = res; failNetns = rej })
  const ready = new Promise((res, rej) => { onReady = res; failReady = rej })
  ready.catch(() => {})
  if (!ns) onNetns()
  const emit = (text) => { onOutput?.(text); if (debug) process.stderr.write(text) }
  child.stdout.setEncoding('utf8').on('data', (d) => { output += d; emit(d) })
  child.stderr.setEncoding('utf8').on('data', (d) => {
    stderr += d
    emit(d)
    stderrLine += d
    const lines = stderrLine.split('\n')
    stderrLine = lines.pop()
    for (const l of lines) {
      if (l.startsWith(`run.sh: tap netns ${ns}:`)) onNetns()
      else if (l.startsWith('run.sh: qemu pid ')) guest.qemuPid = Number(l.slice(17))
      else if (l.startsWith('run.sh: guest ready')) onReady()
    }
  })
  const bridges = new Set() // connect() helpers: their TCP peer is gone when the guest is
  const exited = new Promise((resolve) => {
    child.on('close', (code, signal) => {
      running.delete(child)
      for (const b of bridges) b.kill('SIGTERM')
      const why = new Error(`rxe-vm guest ended (exit ${code ?? signal}) before it was ready:\n${(stderr + output).slice(-3000)}`)
      failNetns(why)
      failReady(why)
      resolve({ code, signal, output, stderr })
    })
  })
  await netnsUp

  const inNetns = (cmd, argv = [], opts = {}) => {
    if (!ns) throw new Error('rxe-vm: this guest has no netns (tap: false)')
    return spawn('ip', ['netns', 'exec', ns, cmd, ...argv], opts)
  }
  Object.assign(guest, {
    netns: ns,
    ready,
    exited,
    output: () => output,
    kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    },
    spawn: inNetns,
    run(cmd, argv = [], { timeoutMs: runMs, ...opts } = {}) {
      const p = inNetns(cmd, argv, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      p.stdout.setEncoding('utf8').on('data', (d) => { stdout += d })
      p.stderr.setEncoding('utf8').on('data', (d) => { stderr += d })
      const timer = runMs === undefined ? null : setTimeout(() => p.kill('SIGKILL'), runMs)
      return new Promise((resolve, reject) => {
        p.on('error', (err) => { if (timer) clearTimeout(timer); reject(err) })
        p.on('close', (code, signal) => {
          if (timer) clearTimeout(timer)
          resolve({ code, signal, stdout, stderr })
        })
      })
    },
    connect(port, { host = TAP.guestIpv4, timeoutMs: connectMs = 60_000 } = {}) {
      const bridge = inNetns(process.execPath, [paths.bridge, host, String(port), String(connectMs)], { stdio: ['pipe', 'pipe', 'pipe'] })
      bridges.add(bridge)
      bridge.on('close', () => bridges.delete(bridge))
      bridge.stdin.on('error', () => {})
      return new Promise((resolve, reject) => {
        let err = ''
        bridge.stderr.setEncoding('utf8').on('data', (d) => {
          err += d
          if (err.includes('connected\n')) resolve(Duplex.from({ readable: bridge.stdout, writable: bridge.stdin }))
        })
        bridge.on('error', reject)
        bridge.on('close', (code) => reject(new Error(`rxe-vm: tcp ${host}:${port} in netns ${ns}: ${err.trim() || `bridge exit ${code}`}`)))
      })
    },
  })
  return guest
}

/** Is a netns of this name present? (For tests that check cleanup.) */
export function netnsExists(name) {
  return existsSync(join('/run/netns', name))
}
