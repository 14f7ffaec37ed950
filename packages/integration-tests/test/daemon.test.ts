/**
 * The session daemon: two local processes share one session through the
 * daemon's Unix socket (mode 0600, token); one is killed with SIGKILL mid-transfer:
 * its QPs are removed and the peer told, the other keeps its session.
 * Data moves between processes over provider-softroce on 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { statSync, existsSync } from 'node:fs'
import { connectDaemon, type Context, type PeerServer, type Session } from '@rdma-session/core'
import { JsonProcess } from './processes.js'
import { waitFor } from './helpers.js'
import { startDaemonHost, type DaemonHost } from './daemon-host.js'

let host: DaemonHost
let psk: Buffer
let socketPath: string
let tokenFile: string
let peer: Context
let server: PeerServer
let peerBuf: Buffer
let daemon: JsonProcess
const removed: number[] = []

const pattern = (len: number, seed: number): Buffer => Buffer.from(Array.from({ length: len }, (_, i) => (i * 13 + seed) & 0xff))

beforeAll(async () => {
  host = await startDaemonHost(4 << 20)
  ;({ psk, socketPath, tokenFile, peer, server, peerBuf, daemon } = host)
  peer.sessions.on('session', (s: Session) => s.on('qp-removed', (qp: { qpn: number }) => removed.push(qp.qpn)))
})

afterAll(async () => {
  await host?.stop()
})

describe('session daemon', () => {
  it('two processes share one session through the daemon; SIGKILL of one removes its QPs and tells the peer; the other keeps running', async () => {
    expect(statSync(socketPath).mode & 0o777).toBe(0o600)
    const p1 = new JsonProcess('node', ['session-process.mjs', 'create', socketPath, tokenFile, server.url, psk.toString('hex')], {}, 'p1')
    const r1 = await p1.wait('ready')
    const sessionId = String(r1.sessionId)
    await waitFor(() => peer.sessions.list().includes(sessionId), 5000, 'the peer has the session')
    const s = peer.sessions.get(sessionId)
    expect(s.size).toBe(1)

    const remote = `${peer.endpoint.address}:${peer.endpoint.port}`
    const p2 = new JsonProcess('node', ['session-process.mjs', 'join', socketPath, tokenFile, remote], {}, 'p2')
    const r2 = await p2.wait('ready')
    expect(r2.sessionId).toBe(sessionId)
    expect((r2.endpoint as { port: number }).port).not.toBe((r1.endpoint as { port: number }).port)
    await waitFor(() => s.size === 3, 5000, 'the peer has the joiner QPs')

    // Both processes write into the peer's memory over their own QPs (encrypted, the joiner with its own key).
    await p1.ask(`write ${sessionId} 0 0 65536 1`, 'written')
    await p2.ask(`write ${sessionId} 1 1048576 200000 2`, 'written')
    expect(peerBuf.subarray(0, 65536).equals(pattern(65536, 1))).toBe(true)
    expect(peerBuf.subarray(1048576, 1048576 + 200000).equals(pattern(200000, 2))).toBe(true)

    // A rekey from one process reaches the peer and the other process (through the daemon).
    expect((await p1.ask(`rekey ${sessionId}`, 'rekeyed')).epoch).toBe(1)
    expect(s.epoch).toBe(1)
    expect(await p2.ask(`epoch ${sessionId}`, 'epoch')).toMatchObject({ epoch: 1, encrypted: [true, true] })
    await p2.ask(`write ${sessionId} 0 1572864 65536 5`, 'written')
    expect(peerBuf.subarray(1572864, 1572864 + 65536).equals(pattern(65536, 5))).toBe(true)

    const lister = await connectDaemon(null, { socketPath, token: (await import('node:fs')).readFileSync(tokenFile, 'utf8').trim() })
    const listed = await lister.list({ remote })
    expect(listed).toMatchObject([{ id: sessionId, clients: 2, qps: 3, epoch: 1 }])

    // SIGKILL p2 in the middle of a transfer.
    p2.send(`stream ${sessionId} 0 2097152`)
    await p2.wait('streaming')
    p2.child.kill('SIGKILL')
    await p2.exited
    await waitFor(() => s.size === 1, 10_000, 'the peer removed the dead process QPs')
    expect(removed).toHaveLength(2)
    const gone = await daemon.wait('client-gone')
    expect(gone).toMatchObject({ sessionId, qps: 2 })
    expect(s.closed).toBe(false)
    expect(await lister.list()).toMatchObject([{ id: sessionId, clients: 1, qps: 1 }])

    // The survivor's session keeps running.
    await p1.ask(`write ${sessionId} 0 65536 65536 9`, 'written')
    expect(peerBuf.subarray(65536, 131072).equals(pattern(65536, 9))).toBe(true)

    // The last process leaves: the session closes on the peer; nothing leaks.
    const exited = await p1.ask('exit', 'exited')
    expect(exited.handles).toMatchObject({ qps: 0, sessions: 0 })
    await waitFor(() => s.closed, 5000, 'the peer closed the session')
    expect(await lister.list()).toEqual([])
    expect(peer.handles).toMatchObject({ qps: 0, sessions: 0 })
    lister.close()

    daemon.child.kill('SIGTERM')
    expect(await daemon.exited).toBe(0)
    expect(existsSync(socketPath)).toBe(false)
  }, 60_000)
})
