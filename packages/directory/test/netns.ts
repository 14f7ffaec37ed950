/**
 * Hosts in network namespaces joined by a bridge (in a namespace of its own), plus a veth from the
 * test's own namespace into the bridge so an etcd started by the test is reachable from every
 * host. The subnet is 10.231.<pid % 200>.0/24: hosts .1…, the test's end .254. Everything is deleted afterwards.
 */
import { execFileSync } from 'node:child_process'

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })

export interface Hosts {
  readonly names: readonly string[]
  readonly addresses: readonly string[]
  /** The test's own address on the bridge. */
  readonly gateway: string
  destroy(): void
}

/** Why namespaces cannot be made here ('' when they can). */
export function netnsUnavailable(): string {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`
  if (process.getuid?.() !== 0) return 'creating network namespaces needs root'
  const probe = `rdprobe${process.pid}`
  try {
    ip('netns', 'add', probe)
    ip('-n', probe, 'link', 'add', 'br0', 'type', 'bridge')
    return ''
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
  const tag = `rd${process.pid % 100000}`
  const net = `10.231.${process.pid % 200}`
  const sw = `${tag}sw`
  const names = Array.from({ length: count }, (_, i) => `${tag}h${i + 1}`)
  const addresses = names.map((_, i) => `${net}.${i + 1}`)
  const gateway = `${net}.254`
  const destroy = (): void => {
    for (const n of [...names, sw]) {
      try {
        ip('netns', 'del', n)
      } catch {
        // already gone
      }
    }
    try {
      ip('link', 'del', `${tag}g0`)
    } catch {
      // went with the switch namespace
    }
  }
  destroy()
  try {
    ip('netns', 'add', sw)
    ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge')
    ip('-n', sw, 'link', 'set', 'br0', 'up')
    const attach = (inside: string, outside: string): void => {
      ip('link', 'set', outside, 'netns', sw)
      ip('-n', sw, 'link', 'set', outside, 'master', 'br0')
      ip('-n', sw, 'link', 'set', outside, 'up')
      void inside
    }
    names.forEach((n, i) => {
      ip('netns', 'add', n)
      ip('link', 'add', `${tag}a${i}`, 'type', 'veth', 'peer', 'name', `${tag}b${i}`)
      ip('link', 'set', `${tag}a${i}`, 'netns', n)
      ip('-n', n, 'link', 'set', `${tag}a${i}`, 'name', 'eth0')
      ip('-n', n, 'addr', 'add', `${addresses[i]}/24`, 'dev', 'eth0')
      ip('-n', n, 'link', 'set', 'eth0', 'up')
      ip('-n', n, 'link', 'set', 'lo', 'up')
      attach('eth0', `${tag}b${i}`)
    })
    ip('link', 'add', `${tag}g0`, 'type', 'veth', 'peer', 'name', `${tag}g1`)
    ip('addr', 'add', `${gateway}/24`, 'dev', `${tag}g0`)
    ip('link', 'set', `${tag}g0`, 'up')
    attach(`${tag}g0`, `${tag}g1`)
  } catch (err) {
    destroy()
    throw err
  }
  return { names, addresses, gateway, destroy }
}

/** Namespaces this process made that still exist (for the leak check). */
export function leftoverNamespaces(): string[] {
  const tag = `rd${process.pid % 100000}`
  return ip('netns', 'list').split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(tag))
}
