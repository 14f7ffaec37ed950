/**
 * Three hosts (network namespaces), separate processes, provider-softroce on
 * UDP 4791 of each host's own address. Host 1 serves sessions; on host 2 a
 * daemon shares a session between two processes (one creates it, one adds QPs
 * through the daemon); host 3 has a session of its own. Two processes are
 * killed with SIGKILL mid-transfer: the peer detects both (daemon notice,
 * keepalive), cleans up, leaks nothing, and the remaining session keeps running.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { JsonProcess, stopAll, type Event } from './processes.js'
import { createHosts, leftoverNamespaces, netnsUnavailable, type Hosts } from './netns.js'
import { environmentSkip } from '../../../tools/test-env.mjs'

const unavailable = environmentSkip('multi-host (network namespaces)', netnsUnavailable())

const psk = randomBytes(32).toString('hex')
let hosts: Hosts
let dir: string

function inHost(host: number, args: string[], env: Record<string, string>, name: string): JsonProcess {
  return new JsonProcess('ip', ['netns', 'exec', hosts.names[host - 1]!, 'node', ...args], env, name)
}

describe.skipIf(Boolean(unavailable))('three hosts in network namespaces on softroce', () => {
  beforeAll(() => {
    hosts = createHosts(3)
    dir = mkdtempSync(join(tmpdir(), 'rdma-multihost-'))
  })
  afterAll(async () => {
    await stopAll()
    hosts?.destroy()
    rmSync(dir, { recursive: true, force: true })
    expect(leftoverNamespaces()).toEqual([])
  })

  it('sessions between hosts, QPs added through the daemon by a second process, SIGKILL mid-transfer detected and cleaned up', async () => {
    const [a1, a2, a3] = hosts.addresses as [string, string, string]
    const envOf = (address: string): Record<string, string> => ({ RS_ADDRESS: address, RS_ROCE_PORT: '4791', RS_CONTROL_HOST: a1, RS_CONTROL_PORT: '7471' })
    const h1 = inHost(1, ['session-process.mjs', 'listen', psk], envOf(a1), 'h1')
    const ready1 = await h1.wait('ready')
    expect(ready1.url).toBe(`ws://${a1}:7471`)
    const url = String(ready1.url)

    const socketPath = join(dir, 'h2.sock')
    const tokenFile = join(dir, 'h2.token')
    writeFileSync(tokenFile, randomBytes(32).toString('hex'), { mode: 0o600 })
    const daemon = inHost(2, ['daemon.mjs', socketPath, tokenFile], {}, 'h2-daemon')
    await daemon.wait('listening')
    const p1 = inHost(2, ['session-process.mjs', 'create', socketPath, tokenFile, url, psk], envOf(a2), 'h2-p1')
    const s1 = String((await p1.wait('ready')).sessionId)
    // A second process on host 2: same address, its own UDP port (4791 is p1's).
    const p2 = inHost(2, ['session-process.mjs', 'join', socketPath, tokenFile, `${a1}:4791`], { ...envOf(a2), RS_ROCE_PORT: '0' }, 'h2-p2')
    expect((await p2.wait('ready')).sessionId).toBe(s1)
    await h1.wait('qp-added', (e) => e.sessionId === s1 && e.qps === 3)

    const p3 = inHost(3, ['session-process.mjs', 'direct', url, psk], envOf(a3), 'h3-p3')
    const s3 = String((await p3.wait('ready')).sessionId)
    // h1 reports the session on its own stdout: p3's 'ready' can be read before that line is.
    await h1.wait('session', (e) => e.sessionId === s3)
    const opened = h1.events.filter((e) => e.event === 'session') as Event[]
    expect(opened.map((e) => (e.remote as { address: string }).address).sort()).toEqual([a2, a3])

    // Every process moves data to host 1, byte-exact.
    await p1.ask(`write ${s1} 0 0 65536 1`, 'written')
    await p2.ask(`write ${s1} 1 1048576 131072 2`, 'written')
    await p3.ask(`write ${s3} 1 2097152 131072 3`, 'written')
    expect((await h1.ask('check 0 65536 1', 'checked')).ok).toBe(true)
    expect((await h1.ask('check 1048576 131072 2', 'checked')).ok).toBe(true)
    expect((await h1.ask('check 2097152 131072 3', 'checked')).ok).toBe(true)

    // Kill the joiner on host 2 and the process on host 3 in the middle of transfers.
    p2.send(`stream ${s1} 0 1048576`)
    p3.send(`stream ${s3} 0 2097152`)
    await Promise.all([p2.wait('streaming'), p3.wait('streaming')])
    p2.child.kill('SIGKILL')
    p3.child.kill('SIGKILL')
    await Promise.all([p2.exited, p3.exited])

    // Host 1: the daemon told it about p2's QPs; keepalives found host 3's process dead.
    await h1.wait('qp-removed', (e) => e.sessionId === s1 && e.qps === 1, 15_000)
    const closed = await h1.wait('session-closed', (e) => e.sessionId === s3, 15_000)
    expect(String(closed.reason)).toMatch(/control channel lost/)
    expect(await daemon.wait('client-gone')).toMatchObject({ sessionId: s1, qps: 2 })
    const state = await h1.ask('sessions', 'sessions')
    expect(state.ids).toEqual([s1])
    expect(state.qps).toEqual([1])
    expect(state.handles).toMatchObject({ qps: 1, sessions: 1 })

    // The surviving session keeps running.
    await p1.ask(`write ${s1} 0 3145728 65536 4`, 'written')
    expect((await h1.ask('check 3145728 65536 4', 'checked')).ok).toBe(true)

    // Clean exit: the peer is told, nothing is left anywhere.
    expect((await p1.ask('exit', 'exited')).handles).toMatchObject({ qps: 0, sessions: 0 })
    await h1.wait('session-closed', (e) => e.sessionId === s1)
    expect((await h1.ask('sessions', 'sessions')).handles).toMatchObject({ qps: 0, sessions: 0, cqs: 0 })
    daemon.child.kill('SIGTERM')
    expect(await daemon.exited).toBe(0)
    expect((await h1.ask('exit', 'exited')).handles).toMatchObject({ qps: 0, sessions: 0 })
  }, 90_000)
})
