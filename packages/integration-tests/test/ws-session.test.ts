/** Sessions over the ws control plane on provider-mock: negotiation, added QPs, join tokens, rekey, keepalive, reconnect, rate limit. */
import { afterEach, describe, expect, it } from 'vitest'
import { createContext, generateIdentity, type Context, type EndpointRecord, type PeerServer, type Session } from '@rdma-session/core'
import { MockFabric, mock } from '@rdma-session/provider-mock'
import { PSK, TcpProxy, expectCode, exposeBuffer, mockContexts, waitFor } from './helpers.js'

const auth = { psk: PSK }
const endpointKey = (e: EndpointRecord): string => `${e.address}:${e.port}`
const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function pair(listen: Parameters<Context['listen']>[0] = { port: 0, auth }): Promise<{ fabric: MockFabric; a: Context; b: Context; server: PeerServer }> {
  const { fabric, ctxs } = await mockContexts(2)
  const [a, b] = ctxs as [Context, Context]
  cleanups.push(async () => {
    await b.close()
    await a.close()
    expect(fabric.devices).toHaveLength(0)
  })
  const server = await a.listen(listen)
  return { fabric, a, b, server }
}

/** Writes `bytes` random bytes into the peer's 'buf' region over `qp` and checks them there. */
async function writeAndCheck(session: Session, qpIndex: number, peerBuf: Buffer, local: Context, offset: number, bytes: number): Promise<void> {
  const src = Buffer.from(Array.from({ length: bytes }, (_, i) => (i * 31 + offset + qpIndex) & 0xff))
  const mr = local.registerMemory(src, { access: ['local-write'] })
  const region = session.remoteRegions.get('buf')!
  await session.qps[qpIndex]!.write(mr.slice(0, bytes), { addr: region.addr + offset, rkey: region.rkey, length: bytes })
  expect(Buffer.compare(peerBuf.subarray(offset, offset + bytes), src)).toBe(0)
  mr.deregister()
}

describe('ws control plane on mock', () => {
  it('one round trip after the handshake creates an encrypted session and its QPs; data moves byte-exact; the secret never travels', async () => {
    const { a, b, server } = await pair()
    const { buf } = exposeBuffer(a)
    const opened: Session[] = []
    server.on('session', (s: Session) => opened.push(s))
    const session = await b.connect(server.url, { auth, params: { encryption: 'aes-256-gcm', encapsulation: { mtu: 4096 } }, qps: [{ qos: { class: 'latency' } }, { qos: { class: 'bulk' } }] })
    expect(session.qps).toHaveLength(2)
    expect(opened).toHaveLength(1)
    const peer = opened[0]!
    expect(peer.id).toBe(session.id)
    expect(peer.qps.map((q) => q.remoteQpn).sort()).toEqual(session.qps.map((q) => q.qpn).sort())
    expect(session.params.encryption.suite).toBe('aes-256-gcm')
    expect(b.sessions.query({ remote: session.remote })).toBe(session.id)
    // Both ends derived the same secret from the handshake (no secret field exists in the ws schema).
    const bCh = session.peer as unknown as { sessionSecret(id: string): Uint8Array }
    const aCh = peer.peer as unknown as { sessionSecret(id: string): Uint8Array }
    expect(Buffer.from(bCh.sessionSecret(session.id)).equals(Buffer.from(aCh.sessionSecret(session.id)))).toBe(true)
    await writeAndCheck(session, 0, buf, b, 0, 65536)
    await writeAndCheck(session, 1, buf, b, 65536, 100_000)
    // Two-sided too: SEND from A lands in B's receive.
    const rbuf = b.registerMemory(Buffer.alloc(64), { access: ['local-write'] })
    const recv = session.qps[0]!.recv(rbuf.slice(0, 64))
    const aQp = peer.qps.find((q) => q.remoteQpn === session.qps[0]!.qpn)!
    await aQp.send(Buffer.from('ping over ws'))
    expect((await recv).byteLen).toBe(12)
  })

  it('Ed25519 identities work end to end; an unknown identity gets ERR_AUTH and no session', async () => {
    const server = generateIdentity()
    const client = generateIdentity()
    const { a, b, server: srv } = await pair({ port: 0, auth: { identity: server.privateKey, trusted: [client.publicKey] } })
    const s = await b.connect(srv.url, { auth: { identity: client.privateKey, trusted: [server.publicKey] }, qps: [{}] })
    expect(s.qps).toHaveLength(1)
    await expectCode(b.connect(srv.url, { auth: { identity: generateIdentity().privateKey, trusted: [server.publicKey] } }), 'ERR_AUTH')
    await expectCode(b.connect(srv.url, { auth: { psk: PSK } }), 'ERR_AUTH')
    expect(a.sessions.list()).toEqual([s.id])
  })

  it('adds several QPs through the session channel (by ID, remote checked); the new QPs inherit the parameters', async () => {
    const { a, b, server } = await pair()
    const { buf } = exposeBuffer(a)
    const session = await b.connect(server.url, { auth, params: { encryption: 'aes-256-gcm' }, qps: [{}] })
    const peer = a.sessions.get(session.id)
    const added = await b.sessions.addQps(session.id, [{ qos: { class: 'bulk', weight: 4 } }, { qos: { class: 'bulk' } }, { qos: { class: 'latency', serviceLevel: 3 } }], { remote: session.remote })
    expect(added).toHaveLength(3)
    expect(session.qps).toHaveLength(4)
    expect(peer.qps).toHaveLength(4)
    expect(added[2]!.qos.serviceLevel).toBe(3)
    for (const q of added) expect(q.query().encrypted).toBe(true)
    await writeAndCheck(session, 3, buf, b, 4096, 8192)
    await expectCode(b.sessions.addQps(session.id, [{}], { remote: '203.0.113.9:4791' }), 'ERR_REMOTE_MISMATCH')
    await session.removeQp(added[0]!)
    await waitFor(() => peer.qps.length === 3, 2000, 'peer removed the QP')
    await session.close()
    await waitFor(() => a.sessions.list().length === 0, 2000, 'peer closed the session')
    expect(a.handles.qps).toBe(0)
  })

  it('join tokens: a second connection from the same host joins with a valid token; expired, wrong-scope or reused tokens fail with ERR_JOIN_TOKEN; without one or with a forged one the session is as unknown', async () => {
    const { fabric, a, b, server } = await pair()
    const { buf } = exposeBuffer(a)
    // A second process on B's host: same address, another port.
    const b2 = await createContext({ provider: mock({ fabric, address: b.endpoint.address, port: 4792 }) })
    // Another host: its own address, and its control connections come from it.
    const far = await createContext({ provider: mock({ fabric, address: '127.0.0.77' }) })
    const farAuth = { auth, localAddress: '127.0.0.77' }
    cleanups.push(() => far.close(), () => b2.close())
    const session = await b.connect(server.url, { auth, params: { encryption: 'aes-256-gcm' }, qps: [{}] })
    const peer = a.sessions.get(session.id)

    const joined = await b2.join(server.url, { auth, token: session.createJoinToken({ maxQps: 2 }) })
    expect(joined.id).toBe(session.id)
    const [q] = await joined.addQps([{ qos: { class: 'bulk' } }])
    expect(peer.qps).toHaveLength(2)
    expect(joined.remoteRegions.get('buf')).toEqual(session.remoteRegions.get('buf'))
    await writeAndCheck(joined, 0, buf, b2, 0, 32768)
    expect(q!.query().encrypted).toBe(true)
    await expectCode(joined.addQps([{}, {}]), 'ERR_JOIN_TOKEN') // budget of 2 QPs
    expect(() => joined.createJoinToken()).toThrow(/cannot issue/)

    // Without a token: the session ID alone is refused, with the very answer an unknown ID gets
    // (no existence oracle), for every request that names a session.
    const ch = await b2.dial(server.url, { auth })
    const unknownId = 'f'.repeat(32)
    const requests = (id: string) => [
      { type: 'add-qps', sessionId: id, from: b2.endpoint, qps: [{ spec: {}, qpn: 1, psn: 1 }] },
      { type: 'remove-qp', sessionId: id, from: b2.endpoint, qpn: session.qps[0]!.remoteQpn },
      { type: 'rekey', sessionId: id, from: b2.endpoint, epoch: 1 },
      { type: 'close-session', sessionId: id, from: b2.endpoint, reason: 'probe' },
      { type: 'join-session', sessionId: id, from: b2.endpoint, token: 'v4.local.e30.AAAA' },
    ] as const
    const answer = async (r: unknown, id: string) => {
      const err = await expectCode(ch.request(r as never), 'ERR_SESSION_NOT_FOUND')
      return JSON.stringify({ code: err.code, message: err.message, details: err.details }).replaceAll(id, '<id>')
    }
    const known = requests(session.id)
    const unknown = requests(unknownId)
    for (let i = 0; i < known.length; i++) expect(await answer(known[i], session.id), known[i]!.type).toBe(await answer(unknown[i], unknownId))
    expect(peer.closed, 'the probes changed nothing').toBe(false)
    expect(peer.qps).toHaveLength(2)
    // Expired.
    const old = session.createJoinToken({ ttlMs: 1 })
    await new Promise((r) => setTimeout(r, 10))
    const expired = await expectCode(far.join(server.url, { ...farAuth, token: old }), 'ERR_JOIN_TOKEN')
    expect(expired.details.reason).toBe('expired')
    // Wrong scope: may remove QPs but not add them.
    const b3 = await createContext({ provider: mock({ fabric, address: b.endpoint.address, port: 4793 }) })
    cleanups.push(() => b3.close())
    const narrow = await b3.join(server.url, { auth, token: session.createJoinToken({ scope: ['remove-qp'] }) })
    const scope = await expectCode(narrow.addQps([{}]), 'ERR_JOIN_TOKEN')
    expect(scope.details.reason).toBe('scope')
    // Reused, forged, and from another host.
    const once = session.createJoinToken()
    const b4 = await createContext({ provider: mock({ fabric, address: b.endpoint.address, port: 4794 }) })
    cleanups.push(() => b4.close())
    await b4.join(server.url, { auth, token: once })
    expect((await expectCode(far.join(server.url, { ...farAuth, token: once }), 'ERR_JOIN_TOKEN')).details.reason).toBe('exhausted')
    const [p0, payload, , key] = session.createJoinToken().split('.')
    const forged = `${p0}.${payload}.${Buffer.alloc(32, 1).toString('base64url')}.${key}`
    expect((await expectCode(far.join(server.url, { ...farAuth, token: forged }), 'ERR_SESSION_NOT_FOUND')).details).toMatchObject({ sessionId: session.id })
    await expectCode(far.join(server.url, { ...farAuth, token: session.createJoinToken() }), 'ERR_REMOTE_MISMATCH')
    // A host that declares an address its control connection does not come from is refused before anything else.
    const unbound = await expectCode(far.join(server.url, { auth, token: session.createJoinToken() }), 'ERR_PEER')
    expect(unbound.details).toMatchObject({ reason: 'endpoint-unbound', declared: endpointKey(far.endpoint), source: '127.0.0.1' })

    // The joiner leaves: its QPs go, the session stays.
    await joined.close()
    await waitFor(() => peer.qps.length === 1, 2000, 'joiner QPs removed')
    expect(peer.closed).toBe(false)
    await writeAndCheck(session, 0, buf, b, 0, 1024)
  })

  it('rekey over ws moves every QP (joiners too) to the next epoch while writes are in flight; all complete, bytes exact', async () => {
    const { fabric, a, b, server } = await pair()
    const { buf } = exposeBuffer(a, 4 << 20)
    const b2 = await createContext({ provider: mock({ fabric, address: b.endpoint.address, port: 4792 }) })
    cleanups.push(() => b2.close())
    const session = await b.connect(server.url, { auth, params: { encryption: 'aes-256-gcm' }, qps: [{}, {}] })
    const joined = await b2.join(server.url, { auth, token: session.createJoinToken({ scope: ['add-qps', 'rekey'] }) })
    await joined.addQps([{}])
    const src = Buffer.alloc(4 << 20)
    for (let i = 0; i < src.length; i++) src[i] = (i * 7 + 3) & 0xff
    const mrB = b.registerMemory(src, { access: ['local-write'] })
    const mrB2 = b2.registerMemory(src, { access: ['local-write'] })
    const region = session.remoteRegions.get('buf')!
    const chunk = 16384
    const ops: Promise<unknown>[] = []
    for (let off = 0; off < src.length; off += chunk) {
      const useJoiner = (off / chunk) % 3 === 2
      const qp = useJoiner ? joined.qps[0]! : session.qps[(off / chunk) % 2]!
      ops.push(qp.write((useJoiner ? mrB2 : mrB).slice(off, chunk), { addr: region.addr + off, rkey: region.rkey, length: chunk }))
      if (off === 64 * chunk) ops.push(session.rekey())
    }
    await Promise.all(ops)
    expect(Buffer.compare(buf, src)).toBe(0)
    const peer = a.sessions.get(session.id)
    expect([session.epoch, joined.epoch, peer.epoch]).toEqual([1, 1, 1])
    for (const q of [...session.qps, ...joined.qps, ...peer.qps]) expect(q.query().encrypted).toBe(true)
    // The joiner (scope has rekey) can rotate too; everyone follows.
    await joined.rekey()
    expect([session.epoch, joined.epoch, peer.epoch]).toEqual([2, 2, 2])
    await writeAndCheck(joined, 0, buf, b2, 0, 4096)
    await writeAndCheck(session, 1, buf, b, 8192, 4096)
  })

  it('a dropped control connection reconnects and resumes the channel: QPs stay up, requests keep working', async () => {
    const { a, b, server } = await pair()
    const { buf } = exposeBuffer(a)
    const proxy = new TcpProxy(server.port!)
    const url = await proxy.start()
    cleanups.push(() => proxy.close())
    const session = await b.connect(url, { auth, qps: [{}, {}], keepalive: { intervalMs: 50, timeoutMs: 400 }, reconnectGraceMs: 5000 } as never)
    const qpns = session.qps.map((q) => q.qpn)
    const channel = session.peer as unknown as { connected: boolean; connection: unknown }
    const first = channel.connection
    proxy.drop()
    await waitFor(() => channel.connected && channel.connection !== first, 5000, 'reconnect')
    expect(session.closed).toBe(false)
    expect(session.qps.map((q) => q.qpn)).toEqual(qpns)
    expect(server.channels).toHaveLength(1)
    await writeAndCheck(session, 1, buf, b, 0, 16384)
    // A request sent while the link is down is delivered once it is back.
    proxy.drop()
    const [added] = await session.addQps([{}])
    expect(a.sessions.get(session.id).qps).toHaveLength(3)
    expect(added!.remoteQpn).not.toBeNull()
  })

  it('keepalives detect a dead peer: both sides close the session and leak nothing', async () => {
    const { a, b, server } = await pair({ port: 0, auth, keepalive: { intervalMs: 50, timeoutMs: 300 }, reconnectGraceMs: 600 })
    const proxy = new TcpProxy(server.port!)
    const url = await proxy.start()
    cleanups.push(() => proxy.close())
    const session = await b.connect(url, { auth, qps: [{}, {}], keepalive: { intervalMs: 50, timeoutMs: 300 }, reconnectGraceMs: 600, handshakeTimeoutMs: 200 })
    const peer = a.sessions.get(session.id)
    const reasons: string[] = []
    session.on('closed', (r: string) => reasons.push(r))
    const t0 = Date.now()
    proxy.freeze()
    await waitFor(() => session.closed && peer.closed, 5000, 'both sides closed')
    expect(Date.now() - t0).toBeLessThan(4000)
    expect(reasons[0]).toMatch(/control channel lost/)
    expect(b.handles).toMatchObject({ qps: 0, sessions: 0 })
    expect(a.handles).toMatchObject({ qps: 0, sessions: 0 })
    await waitFor(() => server.channels.length === 0, 2000, 'server dropped the channel')
  })

  it('rate-limits QP creation per peer with ERR_RATE_LIMIT; the session keeps working', async () => {
    // 0.01 QPs/s after the burst: the refusal below cannot be refilled away by a slow host (at 1/s, 2 s between the
    // first QPs and the second addQps gave back the 2 tokens asked for).
    const { a, b, server } = await pair({ port: 0, auth, rateLimit: { qpsPerSecond: 0.01, burst: 4 } })
    const session = await b.connect(server.url, { auth, qps: [{}, {}, {}] })
    await session.addQps([{}])
    const err = await expectCode(session.addQps([{}, {}]), 'ERR_RATE_LIMIT')
    expect(err.message).toMatch(/retry later/)
    expect(session.qps).toHaveLength(4)
    expect(a.sessions.get(session.id).qps).toHaveLength(4)
    expect(b.handles.qps).toBe(4)
  })

  it('closing a context closes its server, channels and sessions; the peer is told', async () => {
    const { a, b, server } = await pair()
    const session = await b.connect(server.url, { auth, qps: [{}] })
    const peer = a.sessions.get(session.id)
    await b.close()
    await waitFor(() => peer.closed, 2000, 'peer told')
    await a.close()
    expect(server.connections).toBe(0)
    expect(a.handles).toMatchObject({ qps: 0, sessions: 0, cqs: 0 })
  })
})
