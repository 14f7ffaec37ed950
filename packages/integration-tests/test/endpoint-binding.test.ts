/**
 * A peer's declared RoCE endpoint is bound to its control connection: the
 * reflection probe of issue 23 (declare a third party's address as `from`, so
 * the server's READ responses go there) is refused with ERR_PEER before any QP
 * exists, and nothing reaches the third address while the prober reads over
 * its own, legitimate session. On softroce over 127.0.0.1 (the third party is a
 * UDP socket on 127.0.0.3), and on mock for Unix sockets and custom policies.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createSocket, type Socket } from 'node:dgram'
import { randomBytes } from 'node:crypto'
import { createContext, type Context, type PeerRequest } from '@rdma-session/core'
import { softroce } from '@rdma-session/provider-softroce'
import { mock, MockFabric } from '@rdma-session/provider-mock'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PSK, expectCode, mockContexts } from './helpers.js'

const auth = { psk: PSK }
const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const params = { encryption: { suite: 'none' as const, required: false }, encapsulation: { mtu: 1024 as const, udpSourcePort: 0, dscp: 0, ecn: 0, hopLimit: 64 } }

async function victimSocket(): Promise<{ socket: Socket; received: () => number; endpoint: { address: string; port: number } }> {
  const socket = createSocket('udp4')
  let bytes = 0
  socket.on('message', (m) => (bytes += m.length))
  await new Promise<void>((r) => socket.bind(0, '127.0.0.3', () => r()))
  cleanups.push(() => new Promise<void>((r) => socket.close(() => r())))
  return { socket, received: () => bytes, endpoint: { address: '127.0.0.3', port: socket.address().port } }
}

async function softroceContext(): Promise<Context> {
  const ctx = await createContext({ provider: softroce({ address: '127.0.0.1', port: 0, timers: { ackTimeoutMinMs: 5, ackTimeoutMaxMs: 100, rnrDelayMaxMs: 20 } }) })
  cleanups.push(() => ctx.close())
  return ctx
}

describe('declared RoCE endpoints are bound to the control connection', () => {
  it('the reflection probe: a peer declaring a third address gets ERR_PEER and no QP; nothing reaches the third address while it reads over its own session', async () => {
    const server = await softroceContext()
    const prober = await softroceContext()
    const victim = await victimSocket()
    const region = Buffer.alloc(1 << 20, 0xab)
    const mr = server.registerMemory(region, { access: ['local-write', 'remote-read'] })
    server.sessions.expose('buf', mr.region(0, region.length))
    const listener = await server.listen({ port: 0, auth })

    const channel = await prober.dial(listener.url, { auth })
    const offer = { spec: {}, qpn: 0x1234, psn: 7 }
    const openAsVictim: PeerRequest = { type: 'open-session', sessionId: randomBytes(16).toString('hex'), from: victim.endpoint, params, maxMtu: 1024, qps: [offer, offer], regions: {} }
    const refused = await expectCode(channel.request(openAsVictim), 'ERR_PEER')
    expect(refused.message).toMatch(/declared RoCE endpoint 127\.0\.0\.3:\d+, but its control connection comes from 127\.0\.0\.1/)
    expect(refused.details).toMatchObject({ reason: 'endpoint-unbound', source: '127.0.0.1' })
    expect(server.handles).toMatchObject({ qps: 0, sessions: 0 })

    // Its own session works; QPs added under the victim's address are refused the same way.
    const session = await prober.sessions.create({ peer: channel, params: { encryption: 'none' }, qps: [{}] })
    const peerSide = server.sessions.get(session.id)
    await expectCode(channel.request({ type: 'add-qps', sessionId: session.id, from: victim.endpoint, qps: [offer] }), 'ERR_PEER')
    expect(peerSide.qps).toHaveLength(1)
    expect(peerSide.remote).toEqual(prober.endpoint)

    // The amplification the probe was after: 4 MiB of READ responses. They all come back to the prober.
    const sinkBuf = Buffer.alloc(64 * 1024)
    const sink = prober.registerMemory(sinkBuf, { access: ['local-write'] })
    const remote = session.remoteRegions.get('buf')!
    for (let i = 0; i < 64; i++) await session.qps[0]!.read(sink.slice(0, 65536), { addr: remote.addr + (i % 16) * 65536, rkey: remote.rkey, length: 65536 })
    expect(sinkBuf.every((b) => b === 0xab)).toBe(true)
    expect(victim.received()).toBe(0)
    await session.close()
  }, 30_000)

  it('on a Unix socket the peer is a process of this host: it may declare only an address of this host', async () => {
    const { ctxs } = await mockContexts(2)
    const [a, b] = ctxs as [Context, Context]
    cleanups.push(() => a.close(), () => b.close())
    const dir = mkdtempSync(join(tmpdir(), 'rdma-bind-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const listener = await a.listen({ socketPath: join(dir, 'peer.sock'), auth })
    const channel = await b.dial(listener.url, { auth })
    const offer = { spec: {}, qpn: 0x99, psn: 1 }
    const far = { address: '203.0.113.5', port: 4791 }
    const err = await expectCode(channel.request({ type: 'open-session', sessionId: randomBytes(16).toString('hex'), from: far, params, maxMtu: 1024, qps: [offer], regions: {} }), 'ERR_PEER')
    expect(err.details).toMatchObject({ reason: 'endpoint-unbound', declared: '203.0.113.5:4791' })
    expect(a.handles.qps).toBe(0)
    const session = await b.sessions.create({ peer: channel, qps: [{}] })
    expect(a.sessions.get(session.id).remote).toEqual(b.endpoint)
  })

  it('split networks: RoCE on another address than the control connection is refused by default and accepted by an explicit allowEndpoint policy', async () => {
    const fabric = new MockFabric()
    const a = await createContext({ provider: mock({ fabric, address: '127.0.0.1', port: 5000 }) })
    // The peer's RoCE interface (127.0.0.61) is not where its control connection comes from (127.0.0.1).
    const b = await createContext({ provider: mock({ fabric, address: '127.0.0.61', port: 5000 }) })
    cleanups.push(() => a.close(), () => b.close())
    const strict = await a.listen({ port: 0, auth })
    const refused = await expectCode(b.connect(strict.url, { auth, qps: [{}] }), 'ERR_PEER')
    expect(refused.message).toMatch(/localAddress|allowEndpoint/)
    expect(a.handles.qps).toBe(0)
    // The operator's map: the host whose control address is 127.0.0.1 has its RoCE NIC on 127.0.0.61.
    const roceOf: Record<string, string> = { '127.0.0.1': '127.0.0.61' }
    const mapped = await a.listen({ port: 0, auth, allowEndpoint: (declared, peer) => peer.address !== null && roceOf[peer.address] === declared.address })
    // Our side binds the server's endpoint the same way: it is on 127.0.0.1, as its control address.
    const session = await b.connect(mapped.url, { auth, qps: [{}] })
    expect(a.sessions.get(session.id).remote).toEqual(b.endpoint)
    // Or dial from the RoCE interface, and the default rule holds.
    const direct = await b.connect(strict.url, { auth, qps: [{}], localAddress: '127.0.0.61' })
    expect(a.sessions.get(direct.id).remote).toEqual(b.endpoint)
  })
})
