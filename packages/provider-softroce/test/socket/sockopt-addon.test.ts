// The native helper's own API: the options it sets (as getsockopt reports them), its errors, and
// sockets made inside a network namespace.
import { execFileSync } from 'node:child_process'
import { closeSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RoceSockoptAddon } from '../../src/socket/sockopt-addon.js'
import { ensureAddonBuilt, makeNetns, netnsUnavailable, packageRoot } from './helpers.js'
import { environmentSkip } from '../../../../tools/test-env.mjs'

const netnsSkip = environmentSkip('roce_sockopt in a network namespace', netnsUnavailable)

let addon: RoceSockoptAddon
const fds: number[] = []
const track = (fd: number): number => (fds.push(fd), fd)

beforeAll(() => {
  const state = ensureAddonBuilt()
  if (!state.loaded) throw new Error(state.why)
  addon = state.addon
}, 200_000)
afterAll(() => {
  for (const fd of fds) closeSync(fd)
})

describe('roce_sockopt.createUdpSocket', () => {
  it('IPv4: a bound socket with IP_MTU_DISCOVER = IP_PMTUDISC_DO', () => {
    const fd = track(addon.createUdpSocket({ family: 4, address: '127.0.0.1', port: 0 }))
    expect(fd).toBeGreaterThan(2)
    expect(addon.querySocket(fd)).toEqual({ family: 4, pmtudisc: 'do' })
  })

  it('IPv6: a bound socket with UDP_NO_CHECK6_RX and IPV6_V6ONLY', () => {
    const fd = track(addon.createUdpSocket({ family: 6, address: '::1', port: 0 }))
    expect(addon.querySocket(fd)).toEqual({ family: 6, noCheck6Rx: true, v6only: true })
  })

  it('bind errors carry code, errno, syscall and a message in words', () => {
    const fd = track(addon.createUdpSocket({ family: 4, address: '127.0.0.1', port: 0 }))
    const port = Number(/:(\d+)\s/.exec(execFileSync('ss', ['-Hnulp'], { encoding: 'utf8' }).split('\n').find((l) => l.includes(`fd=${fd})`)) ?? '')?.[1])
    expect(port).toBeGreaterThan(0)
    let err: (Error & { code?: string; errno?: number; syscall?: string }) | undefined
    try {
      track(addon.createUdpSocket({ family: 4, address: '127.0.0.1', port }))
    } catch (e) {
      err = e as typeof err
    }
    expect(err).toBeInstanceOf(Error)
    expect(err).toMatchObject({ code: 'EADDRINUSE', errno: 98, syscall: 'bind' })
    expect(err!.message).toBe(`binding UDP 127.0.0.1:${port} failed: Address already in use (EADDRINUSE, errno 98)`)
    // reuseAddr lets a second socket share the port (SO_REUSEADDR on both)
    const a = track(addon.createUdpSocket({ family: 6, address: '::1', port: 0, reuseAddr: true }))
    const p6 = Number(/\]:(\d+)\s/.exec(execFileSync('ss', ['-Hnulp'], { encoding: 'utf8' }).split('\n').find((l) => l.includes(`fd=${a})`)) ?? '')?.[1])
    expect(track(addon.createUdpSocket({ family: 6, address: '::1', port: p6, reuseAddr: true }))).toBeGreaterThan(2)
  })

  it('argument errors are TypeErrors that name the argument', () => {
    const bad = (o: unknown) => () => addon.createUdpSocket(o as never)
    expect(bad(undefined)).toThrow(/expected an options object/)
    expect(bad({ family: 5, address: '127.0.0.1', port: 0 })).toThrow(TypeError)
    expect(bad({ family: 5, address: '127.0.0.1', port: 0 })).toThrow(/family must be 4 or 6/)
    expect(bad({ family: 4, address: '::1', port: 0 })).toThrow(/"::1" failed: not an IPv4 address/)
    expect(bad({ family: 6, address: '127.0.0.1', port: 0 })).toThrow(/not an IPv6 address/)
    expect(bad({ family: 4, address: '127.0.0.1', port: 70000 })).toThrow(/port must be an integer 0..65535/)
    expect(bad({ family: 4, address: 42, port: 0 })).toThrow(/address must be an IP address string/)
    expect(() => addon.querySocket(-1)).toThrow(/expected a file descriptor/)
  })

  it('a netns that does not exist: ENOENT naming the path', () => {
    expect(() => addon.createUdpSocket({ family: 4, address: '127.0.0.1', port: 0, netns: `no-such-ns-${process.pid}` }))
      .toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'open', message: expect.stringContaining(`/run/netns/no-such-ns-${process.pid}`) }))
  })

  it.skipIf(Boolean(netnsSkip))('netns: the socket lives in that namespace, the process stays where it was', () => {
    const ns = makeNetns('addon')
    try {
      execFileSync('ip', ['-n', ns.name, 'addr', 'add', '10.77.9.1/24', 'dev', 'lo'])
      const before = execFileSync('readlink', ['/proc/thread-self/ns/net'], { encoding: 'utf8' })
      const fd = track(addon.createUdpSocket({ family: 4, address: '10.77.9.1', port: 47911, netns: ns.name }))
      expect(addon.querySocket(fd)).toEqual({ family: 4, pmtudisc: 'do' })
      expect(execFileSync('readlink', ['/proc/thread-self/ns/net'], { encoding: 'utf8' })).toBe(before)
      expect(execFileSync('ip', ['netns', 'exec', ns.name, 'ss', '-Hnul'], { encoding: 'utf8' })).toContain('10.77.9.1:47911')
      expect(execFileSync('ss', ['-Hnul'], { encoding: 'utf8' })).not.toContain('10.77.9.1:47911')
      // 10.77.9.1 exists only in the namespace: in ours the bind fails
      expect(() => track(addon.createUdpSocket({ family: 4, address: '10.77.9.1', port: 47911 }))).toThrow(expect.objectContaining({ code: 'EADDRNOTAVAIL' }))
    } finally {
      ns.remove()
    }
  })
})

describe('the loader in built bundles', () => {
  it('ESM and CJS bundles (as tsup builds dist/) find the package root and load the addon', () => {
    const out = join(packageRoot, `.bundle-check-${process.pid}`)
    try {
      execFileSync(join(packageRoot, '..', '..', 'node_modules', '.bin', 'tsup'),
        ['src/socket/roce-socket.ts', '--no-config', '--format', 'esm,cjs', '--target', 'node20', '--out-dir', out, '--silent'],
        { cwd: packageRoot, stdio: 'pipe' })
      const probe = (code: string, ...args: string[]): string => execFileSync(process.execPath, [...args, '-e', code], { cwd: packageRoot, encoding: 'utf8' }).trim()
      const use = (m: string): string => `${m}.then((m) => m.openRoceSocket({ family: 4, address: '127.0.0.1', port: 0 })).then((s) => { console.log(s.helper); s.socket.close() })`
      expect(probe(use(`Promise.resolve(require(${JSON.stringify(join(out, 'roce-socket.cjs'))}))`))).toBe('native')
      expect(probe(use(`import(${JSON.stringify(join(out, 'roce-socket.js'))})`), '--input-type=module')).toBe('native')
    } finally {
      rmSync(out, { recursive: true, force: true })
    }
  }, 60_000)
})
