/** Three hosts in network namespaces joined by a bridge (in a namespace of its own): 10.200.0.1–3/24. Nothing leaves the namespaces; every one is deleted afterwards. */
import { execFileSync } from 'node:child_process'

export interface Hosts {
  readonly names: readonly string[]
  readonly addresses: readonly string[]
  destroy(): void
}

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })

/** Why namespaces cannot be made here, or null when they can (root, iproute2, veth and bridge support). */
export function netnsUnavailable(): string | null {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`
  if (process.getuid?.() !== 0) return 'creating network namespaces needs root'
  const probe = `rsprobe${process.pid}`
  try {
    ip('netns', 'add', probe)
    ip('-n', probe, 'link', 'add', 'br0', 'type', 'bridge')
    return null
  } catch (err) {
    return `cannot create a network namespace with a bridge: ${(err as Error).message.split('\n')[0]}`
  } finally {
    try {
      ip('netns', 'del', probe)
    } catch {
      // not created
    }
  }
}

export function createHosts(count: number): Hosts {
  const tag = `rs${process.pid % 100000}`
  const sw = `${tag}sw`
  const names = Array.from({ length: count }, (_, i) => `${tag}h${i + 1}`)
  const addresses = names.map((_, i) => `10.200.0.${i + 1}`)
  const destroy = (): void => {
    for (const n of [...names, sw]) {
      try {
        ip('netns', 'del', n)
      } catch {
        // already gone
      }
    }
  }
  destroy()
  try {
    ip('netns', 'add', sw)
    ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge')
    ip('-n', sw, 'link', 'set', 'br0', 'up')
    names.forEach((n, i) => {
      ip('netns', 'add', n)
      ip('link', 'add', `${tag}a${i}`, 'type', 'veth', 'peer', 'name', `${tag}b${i}`)
      ip('link', 'set', `${tag}a${i}`, 'netns', n)
      ip('link', 'set', `${tag}b${i}`, 'netns', sw)
      ip('-n', n, 'link', 'set', `${tag}a${i}`, 'name', 'eth0')
      ip('-n', n, 'addr', 'add', `${addresses[i]}/24`, 'dev', 'eth0')
      ip('-n', n, 'link', 'set', 'eth0', 'up')
      ip('-n', n, 'link', 'set', 'lo', 'up')
      ip('-n', sw, 'link', 'set', `${tag}b${i}`, 'master', 'br0')
      ip('-n', sw, 'link', 'set', `${tag}b${i}`, 'up')
    })
  } catch (err) {
    destroy()
    throw err
  }
  return { names, addresses, destroy }
}

/** Namespaces this process made that still exist (for the leak check). */
export function leftoverNamespaces(): string[] {
  const tag = `rs${process.pid % 100000}`
  return ip('netns', 'list').split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(tag))
}
