/**
 * Test lab: two softroce hosts in their own network namespaces joined through an impaired path,
 *
 *   ns A [10.99.0.1, fd99::1] ══veth══ [10.99.0.2, fd99::2] ns relayA ┐
 *                                                                       udp-impairment-relay.mjs
 *   ns B [10.99.0.2, fd99::2] ══veth══ [10.99.0.1, fd99::1] ns relayB ┘   (delay, duplicate, reorder)
 *
 * with an nftables rule in each relay namespace that drops a share of the RoCEv2 datagrams
 * arriving there (`numgen random mod 100 < N drop`: this kernel has no netem). Each relay
 * namespace holds the address of the stack on the other side, so the relay re-sends every
 * datagram with the 5-tuple its sender computed the ICRC for (see the relay's header).
 *
 * Namespaces are named rsnet-<pid>-<role>: close() deletes them, so does process exit, and a
 * new lab first deletes the ones whose process is gone (a crashed run).
 */
import { execFileSync, fork, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadSockoptAddon } from '../../src/socket/sockopt-addon.js'
import { ensureAddonBuilt } from '../socket/helpers.js'

const PREFIX = 'rsnet-'
const RELAY = join(dirname(fileURLToPath(import.meta.url)), 'udp-impairment-relay.mjs')

export const LAB_ADDRESSES = {
  4: { a: '10.99.0.1', b: '10.99.0.2', prefix: 24 },
  6: { a: 'fd99::1', b: 'fd99::2', prefix: 64 },
} as const

/** Why the lab cannot run here (not Linux, not root, no `ip netns`, no nft), or null. */
export function labUnavailable(): string | null {
  if (process.platform !== 'linux') return `network namespaces exist only on Linux (this is ${process.platform})`
  if (process.getuid?.() !== 0) return 'not root (creating network namespaces needs CAP_SYS_ADMIN)'
  if (spawnSync('ip', ['netns', 'list']).status !== 0) return '`ip netns` is not available (install iproute2)'
  if (spawnSync('nft', ['--version']).status !== 0) return 'nft is not installed (Debian package nftables)'
  const probe = `${PREFIX}${process.pid}-probe`
  const made = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' })
  if (made.status !== 0) return `cannot create a network namespace: ${made.stderr.trim()}`
  spawnSync('ip', ['netns', 'delete', probe])
  // The sockets inside the namespaces come from the native helper: built here if missing (a
  // failed build throws, so the test fails rather than skips).
  ensureAddonBuilt()
  return null
}

export interface RelayOptions {
  seed: number
  delayMs: number
  duplicate: number
  reorder: number
  /** Longest extra hold of a reordered datagram (default 4 ms). */
  reorderMaxMs?: number
}

export interface RelayStats {
  /** Index 0: A → B, 1: B → A. */
  forwarded: [number, number]
  duplicated: [number, number]
  reordered: [number, number]
  foreign: [number, number]
  sendErrors: number
  maxQueued: number
  /** CPU time the relay process used. */
  cpuSeconds: number
}

export interface ImpairedPath {
  readonly ns: { readonly a: string; readonly relayA: string; readonly relayB: string; readonly b: string }
  readonly family: 4 | 6
  readonly address: { readonly a: string; readonly b: string }
  readonly port: number
  /** The relay's counters. */
  relayStats(): Promise<RelayStats>
  /** Datagrams nftables dropped: [toward B (in relayA), toward A (in relayB)]. */
  nftDrops(): [number, number]
  /** Datagrams the kernel dropped besides nftables: UDP receive-buffer overflows and veth drops, per namespace. */
  kernelDrops(): Record<'a' | 'relayA' | 'relayB' | 'b', { udpRcvbufErrors: number; udpInErrors: number; vethRxDropped: number; vethTxDropped: number }>
  /** A UDP socket fd bound to this host's address inside its namespace (IP_PMTUDISC_DO set), for softroce's `socket` option. */
  socketFd(host: 'a' | 'b'): number
  close(): Promise<void>
}

const run = (...args: string[]): string => execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })

function deleteNamespaces(names: readonly string[]): void {
  for (const n of names) if (existsSync(`/run/netns/${n}`)) spawnSync('ip', ['netns', 'delete', n])
}

/** Deletes labs left behind by processes that no longer exist. */
function deleteStaleLabs(): void {
  if (!existsSync('/run/netns')) return
  for (const name of readdirSync('/run/netns')) {
    const m = /^rsnet-(\d+)-/.exec(name)
    if (m === null || Number(m[1]) === process.pid) continue
    let alive = true
    try {
      process.kill(Number(m[1]), 0)
    } catch {
      alive = false
    }
    if (!alive) deleteNamespaces([name])
  }
}

let labCount = 0

/** Builds the namespaces, veths, addresses and nftables loss, and starts the relay. */
export async function createImpairedPath(o: { family?: 4 | 6; lossPercent: number; relay: RelayOptions; port?: number }): Promise<ImpairedPath> {
  deleteStaleLabs()
  const family = o.family ?? 4
  const port = o.port ?? 4791
  const id = `${process.pid}-${labCount++}`
  const ns = { a: `${PREFIX}${id}-a`, relayA: `${PREFIX}${id}-ra`, relayB: `${PREFIX}${id}-rb`, b: `${PREFIX}${id}-b` }
  const all = [ns.a, ns.relayA, ns.relayB, ns.b]
  const onExit = (): void => deleteNamespaces(all)
  process.once('exit', onExit)
  const { a, b, prefix } = LAB_ADDRESSES[family]
  let relay: ChildProcess | null = null
  try {
    for (const n of all) {
      run('ip', 'netns', 'add', n)
      run('ip', '-n', n, 'link', 'set', 'lo', 'up')
    }
    // Each leg is one veth pair; 9000-byte MTU so 4096-byte RoCE payloads travel unfragmented.
    const legs: [string, string, string, string][] = [[ns.a, a, ns.relayA, b], [ns.b, b, ns.relayB, a]]
    for (const [k, [hostNs, hostAddr, relayNs, relayAddr]] of legs.entries()) {
      const hv = `rsh${k}`
      const rv = `rsr${k}`
      run('ip', '-n', hostNs, 'link', 'add', hv, 'mtu', '9000', 'type', 'veth', 'peer', 'name', rv, 'netns', relayNs, 'mtu', '9000')
      for (const [n, dev, addr] of [[hostNs, hv, hostAddr], [relayNs, rv, relayAddr]] as const) {
        run('ip', '-n', n, 'addr', 'add', `${addr}/${prefix}`, 'dev', dev, ...(family === 6 ? ['nodad'] : []))
        run('ip', '-n', n, 'link', 'set', dev, 'up')
      }
    }
    // Kernel-level loss of RoCEv2 datagrams on their way into the relay, each direction.
    for (const n of [ns.relayA, ns.relayB]) {
      const rules = `table inet rsnet_loss {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    udp dport ${port} numgen random mod 100 < ${o.lossPercent} counter drop\n  }\n}\n`
      execFileSync('ip', ['netns', 'exec', n, 'nft', '-f', '-'], { input: rules, stdio: ['pipe', 'pipe', 'pipe'] })
    }
    const addon = loadSockoptAddon()
    if (!addon.loaded) throw new Error(addon.why)
    const config = {
      addonPath: addon.path,
      reorderMaxMs: 4,
      ...o.relay,
      legs: [
        { netns: ns.relayA, family, bind: { address: b, port }, peer: { address: a, port } },
        { netns: ns.relayB, family, bind: { address: a, port }, peer: { address: b, port } },
      ],
    }
    const child = fork(RELAY, [JSON.stringify(config)], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    relay = child
    await new Promise<void>((resolve, reject) => {
      child.once('message', (m: { type?: string }) => (m.type === 'ready' ? resolve() : reject(new Error(`relay said ${JSON.stringify(m)}`))))
      child.once('exit', (code) => reject(new Error(`the relay exited with ${String(code)} before it was ready`)))
    })
  } catch (err) {
    relay?.kill()
    deleteNamespaces(all)
    process.off('exit', onExit)
    throw err
  }
  const child = relay
  return {
    ns,
    family,
    address: { a, b },
    port,
    relayStats: () =>
      new Promise((resolve, reject) => {
        const onMessage = (m: { type?: string; stats?: RelayStats }): void => {
          if (m.type !== 'stats') return
          child.off('message', onMessage)
          resolve(m.stats!)
        }
        child.on('message', onMessage)
        if (!child.send({ type: 'stats' })) reject(new Error('the relay is gone'))
      }),
    nftDrops: () => {
      const count = (n: string): number => {
        const text = run('ip', 'netns', 'exec', n, 'nft', 'list', 'table', 'inet', 'rsnet_loss')
        return Number(/counter packets (\d+)/.exec(text)?.[1] ?? NaN)
      }
      return [count(ns.relayA), count(ns.relayB)]
    },
    kernelDrops: () => {
      const one = (n: string): { udpRcvbufErrors: number; udpInErrors: number; vethRxDropped: number; vethTxDropped: number } => {
        const snmp = run('ip', 'netns', 'exec', n, 'cat', family === 4 ? '/proc/net/snmp' : '/proc/net/snmp6')
        const udp = (name: string): number => {
          if (family === 6) return Number(new RegExp(`^Udp6${name}\\s+(\\d+)`, 'm').exec(snmp)?.[1] ?? NaN)
          const lines = snmp.split('\n').filter((l) => l.startsWith('Udp:'))
          const keys = lines[0]!.split(/\s+/)
          const values = lines[1]!.split(/\s+/)
          return Number(values[keys.indexOf(name)])
        }
        const links = JSON.parse(run('ip', '-n', n, '-s', '-j', 'link', 'show', 'type', 'veth')) as { stats64?: { rx: { dropped: number }; tx: { dropped: number } } }[]
        return {
          udpRcvbufErrors: udp('RcvbufErrors'),
          udpInErrors: udp('InErrors'),
          vethRxDropped: links.reduce((s, l) => s + (l.stats64?.rx.dropped ?? 0), 0),
          vethTxDropped: links.reduce((s, l) => s + (l.stats64?.tx.dropped ?? 0), 0),
        }
      }
      return { a: one(ns.a), relayA: one(ns.relayA), relayB: one(ns.relayB), b: one(ns.b) }
    },
    socketFd: (host) => {
      const addon = loadSockoptAddon()
      if (!addon.loaded) throw new Error(addon.why)
      return addon.addon.createUdpSocket({ family, address: host === 'a' ? a : b, port, netns: host === 'a' ? ns.a : ns.b })
    },
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
        child.send({ type: 'close' })
        const timeout = setTimeout(() => child.kill(), 2000)
        await exited
        clearTimeout(timeout)
      }
      deleteNamespaces(all)
      process.off('exit', onExit)
    },
  }
}
