/** Checks of the machine (no provider involved): Node, libibverbs, RDMA devices and GIDs, rxe, UDP 4791. */
import { execFileSync } from 'node:child_process'
import { createSocket, type Socket } from 'node:dgram'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

/** One line of the doctor's report. `status` 'warn' does not stop anything from working. */
export interface Check {
  readonly name: string
  readonly status: 'ok' | 'warn' | 'fail'
  readonly detail: string
  /** What to do about it, when status is not 'ok'. */
  readonly remedy?: string
}

/** Where the system facts come from; tests point these at fixtures. */
export interface SystemPaths {
  /** /sys/class/infiniband */
  readonly infiniband: string
  /** /sys/module */
  readonly modules: string
  /** Directories searched for libibverbs.so.1 when ldconfig says nothing. */
  readonly libDirs: readonly string[]
}

export const SYSTEM_PATHS: SystemPaths = {
  infiniband: '/sys/class/infiniband',
  modules: '/sys/module',
  libDirs: ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu', '/lib64', '/lib'],
}

export function checkNode(version = process.version): Check {
  const major = Number(/^v(\d+)/.exec(version)?.[1] ?? 0)
  return major >= 20
    ? { name: 'node', status: 'ok', detail: `${version} (>= 20 required)` }
    : { name: 'node', status: 'fail', detail: `${version}; rdma-session needs Node 20 or later`, remedy: 'install Node 20 or later (e.g. from nodejs.org or your distribution)' }
}

export function checkLibibverbs(paths: SystemPaths = SYSTEM_PATHS): Check {
  let found: string | undefined
  try {
    const cache = execFileSync('ldconfig', ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    found = /libibverbs\.so\.1 .*=> (\S+)/.exec(cache)?.[1]
  } catch {}
  found ??= paths.libDirs.map((d) => join(d, 'libibverbs.so.1')).find((f) => existsSync(f))
  return found !== undefined
    ? { name: 'libibverbs', status: 'ok', detail: found }
    : { name: 'libibverbs', status: 'warn', detail: 'not found (only the verbs provider needs it)', remedy: 'apt-get install libibverbs1 ibverbs-providers (Debian/Ubuntu) or dnf install libibverbs (Fedora/RHEL)' }
}

export interface RdmaPort {
  readonly port: number
  readonly state: string
  readonly gids: ReadonlyArray<{ readonly index: number; readonly gid: string; readonly type: string }>
}

export interface RdmaDevice {
  readonly name: string
  readonly ports: readonly RdmaPort[]
}

const read = (f: string): string => {
  try {
    return readFileSync(f, 'utf8').trim()
  } catch {
    return ''
  }
}
const list = (d: string): string[] => {
  try {
    return readdirSync(d)
  } catch {
    return []
  }
}

/** RDMA devices from sysfs, with port states and the GIDs in use (zero GIDs left out). */
export function listRdmaDevices(paths: SystemPaths = SYSTEM_PATHS): RdmaDevice[] {
  return list(paths.infiniband).sort().map((name) => {
    const portsDir = join(paths.infiniband, name, 'ports')
    const ports = list(portsDir).map(Number).filter(Number.isInteger).sort((a, b) => a - b).map((port) => {
      const p = join(portsDir, String(port))
      const gids = list(join(p, 'gids'))
        .map(Number)
        .sort((a, b) => a - b)
        .map((index) => ({ index, gid: read(join(p, 'gids', String(index))), type: read(join(p, 'gid_attrs', 'types', String(index))) }))
        .filter((g) => g.gid !== '' && !/^[0:]+$/.test(g.gid))
      return { port, state: read(join(p, 'state')).replace(/^\d+:\s*/, '') || 'unknown', gids }
    })
    return { name, ports }
  })
}

export function checkDevices(devices: readonly RdmaDevice[]): Check {
  if (devices.length === 0) {
    return { name: 'rdma devices', status: 'warn', detail: 'none (only the verbs provider needs one)', remedy: 'create a soft-RoCE device: modprobe rdma_rxe && rdma link add rxe0 type rxe netdev <interface>; or use a RoCE NIC with its driver loaded' }
  }
  const text = devices
    .map((d) => `${d.name} [${d.ports.map((p) => `port ${p.port} ${p.state}: ${p.gids.length === 0 ? 'no GIDs' : p.gids.map((g) => `${g.index}=${g.gid}${g.type === '' ? '' : ` (${g.type})`}`).join(', ')}`).join('; ')}]`)
    .join('; ')
  const roceV2 = devices.some((d) => d.ports.some((p) => p.state.includes('ACTIVE') && p.gids.some((g) => /v2/i.test(g.type))))
  return roceV2
    ? { name: 'rdma devices', status: 'ok', detail: text }
    : { name: 'rdma devices', status: 'warn', detail: `${text}; no active port with a RoCE v2 GID`, remedy: 'bring the network interface up and give it an IP address (GIDs follow the addresses); check `rdma link show`' }
}

export function checkRxe(devices: readonly RdmaDevice[], paths: SystemPaths = SYSTEM_PATHS): Check {
  const loaded = existsSync(join(paths.modules, 'rdma_rxe'))
  const rxe = devices.filter((d) => d.name.startsWith('rxe')).map((d) => d.name)
  if (rxe.length > 0) return { name: 'rxe (kernel soft-RoCE)', status: 'ok', detail: `module loaded, devices: ${rxe.join(', ')} (they hold UDP 4791)` }
  return loaded
    ? { name: 'rxe (kernel soft-RoCE)', status: 'warn', detail: 'module loaded, no rxe device', remedy: 'rdma link add rxe0 type rxe netdev <interface>' }
    : { name: 'rxe (kernel soft-RoCE)', status: 'warn', detail: 'module not loaded (optional: softroce needs no kernel support)', remedy: 'modprobe rdma_rxe (needs a kernel built with CONFIG_RDMA_RXE)' }
}

function bind(socket: Socket, port: number, address: string): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => {
    socket.once('error', resolve)
    socket.bind({ port, address, exclusive: true }, () => resolve(null))
  })
}

/** Can we bind UDP 4791 on loopback, and do datagrams sent there arrive? */
export async function checkUdp4791(port = 4791, address = '127.0.0.1'): Promise<Check> {
  const name = `udp ${port}`
  const rx = createSocket('udp4')
  try {
    const err = await bind(rx, port, address)
    if (err !== null) {
      return err.code === 'EADDRINUSE'
        ? { name, status: 'warn', detail: `${address}:${port} is in use (kernel rxe, or another RoCE stack)`, remedy: 'softroce: pass port: 0 (ephemeral) to run beside it; to talk to that stack, use its address and port as the remote' }
        : { name, status: 'fail', detail: `cannot bind ${address}:${port}: ${err.code ?? err.message}`, remedy: 'check the address exists on this host and that no policy forbids binding UDP ports' }
    }
    const got = new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 1000)
      rx.once('message', (m) => {
        clearTimeout(t)
        resolve(m.toString() === 'rdma-session doctor')
      })
    })
    const tx = createSocket('udp4')
    tx.send('rdma-session doctor', port, address, () => tx.close())
    return (await got)
      ? { name, status: 'ok', detail: `bound ${address}:${port} and received a datagram sent to it` }
      : { name, status: 'fail', detail: `bound ${address}:${port} but a datagram sent to it did not arrive within 1 s`, remedy: 'a firewall drops loopback UDP: allow udp dport 4791 (nft/iptables)' }
  } finally {
    try {
      rx.close()
    } catch {}
  }
}
