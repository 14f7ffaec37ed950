/**
 * Datagrams the kernel dropped at this host's UDP sockets bound to a port (the `drops` column of
 * /proc/net/udp and udp6, this network namespace): a receive buffer that overflowed. softroce
 * never sees those, so its own counters cannot tell them from losses on the wire.
 */
import { readFileSync } from 'node:fs'

/** Sum of `drops` over the sockets bound to local `port`; null where /proc/net/udp is not there. */
export function udpSocketDrops(port: number, read: (path: string) => string = (p) => readFileSync(p, 'utf8')): number | null {
  let total = 0
  let found = false
  for (const path of ['/proc/net/udp', '/proc/net/udp6']) {
    let text: string
    try {
      text = read(path)
    } catch {
      continue
    }
    found = true
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
      if (f.length < 13) continue
      const local = f[1]!
      if (Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port) total += Number(f[12]) || 0
    }
  }
  return found ? total : null
}
