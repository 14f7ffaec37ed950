// rdma_cm through core on softroce (real UDP, loopback, two contexts): ctx.listen({ cm }) and
// ctx.connect('rdma-cm://…') make sessions whose QPs are CM connections (the first opens the
// session, the others join it with the CM join token the REP gave); plain rdma_cm peers get lone
// QPs; wrong session IDs and tokens are refused with coded errors on the connecting side.
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { CmServer, createContext, decodeCmPrivateData, encodeCmPrivateData, isRdmaError, type Context, type QueuePair, type Session } from '@rdma-session/core'
import { afterEach, describe, expect, it } from 'vitest'
import { softroce, type SoftRoceDevice } from '../../src/index.js'
import { TEST_TIMERS } from '../rc/harness.js'
import { FAST_CM } from './cm-pair.js'
import { openCoreCmPair, type CoreCmPair } from './core-pair.js'

let pair: CoreCmPair | null = null
const extra: Context[] = []
afterEach(async () => {
  await pair?.close()
  pair = null
  await Promise.all(extra.splice(0).map((c) => c.close()))
})

const PLAIN = { encryption: 'none' } as const

/** Each of `from`'s QPs SENDs its own message and WRITEs its own stripe; `to`'s QPs receive them all. */
async function verifyEveryQp(from: { ctx: Context; qps: QueuePair[] }, to: { ctx: Context; qps: QueuePair[] }): Promise<void> {
  expect(to.qps.length).toBe(from.qps.length)
  const n = from.qps.length
  const rx = Buffer.alloc(64 * n)
  const rxMr = to.ctx.registerMemory(rx, { access: ['local-write'] })
  const received = to.qps.map((qp, i) => qp.recv(rxMr.slice(64 * i, 64)).then((wc) => rx.subarray(64 * i, 64 * i + wc.byteLen).toString()))
  const target = Buffer.alloc(16 * n)
  const targetMr = to.ctx.registerMemory(target, { access: ['local-write', 'remote-write'] })
  await Promise.all(from.qps.map((qp, i) => qp.send(Buffer.from(`message on QP ${i}`))))
  expect((await Promise.all(received)).sort()).toEqual(from.qps.map((_, i) => `message on QP ${i}`).sort())
  await Promise.all(from.qps.map((qp, i) => qp.write(Buffer.from(`stripe ${String(i).padStart(8, '0')}`), targetMr.region(16 * i, 16))))
  for (let i = 0; i < n; i++) expect(target.subarray(16 * i, 16 * i + 15).toString()).toBe(`stripe ${String(i).padStart(8, '0')}`)
  rxMr.deregister()
  targetMr.deregister()
}

async function listenAndConnect(p: CoreCmPair, port: number, qps: number, spec: { maxQpsPerSession?: number } = {}): Promise<{ server: CmServer; client: Session; served: Session }> {
  const server = await p.b.listen({ cm: { port, ...spec } })
  const served = once(server, 'session') as Promise<[Session]>
  const client = await p.a.connect(`rdma-cm://127.0.0.1:${port}`, { params: PLAIN, qps: Array.from({ length: qps }, () => ({})) })
  const [s] = await served
  // The server adopts each join connection when its RTU arrives, which may follow the client's return.
  await expect.poll(() => s.size, { timeout: 5_000 }).toBe(qps)
  return { server, client, served: s }
}

describe('rdma_cm through core (softroce over UDP loopback)', () => {
  it('opens a session of several QPs, one CM connection each, moves data on every QP, adds, removes and closes', async () => {
    pair = await openCoreCmPair()
    const p = pair
    const { client, served } = await listenAndConnect(p, 7480, 3)
    expect(client.id).toBe(served.id)
    expect(client.size).toBe(3)
    expect(client.initiator).toBe(true)
    expect(served.initiator).toBe(false)
    expect(served.remote.address).toBe('127.0.0.1')
    expect(client.params.encryption.suite).toBe('none')
    expect(p.b.sessions.list()).toEqual([served.id])
    await verifyEveryQp({ ctx: p.a, qps: client.qps }, { ctx: p.b, qps: served.qps })
    await verifyEveryQp({ ctx: p.b, qps: served.qps }, { ctx: p.a, qps: client.qps })

    const [added] = await client.addQps([{}])
    await expect.poll(() => served.size, { timeout: 5_000 }).toBe(4)
    await verifyEveryQp({ ctx: p.a, qps: client.qps }, { ctx: p.b, qps: served.qps })

    // A QP removed on one side goes on the other (its DREQ).
    await client.removeQp(added!)
    await expect.poll(() => served.size, { timeout: 5_000 }).toBe(3)
    await verifyEveryQp({ ctx: p.a, qps: client.qps }, { ctx: p.b, qps: served.qps })

    // The listening side cannot add QPs (it cannot connect back); the connecting side can.
    await expect(served.addQps([{}])).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' })
    await expect(client.rekey()).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })

    const closed = once(served, 'closed')
    await client.close()
    await closed
    expect(p.b.sessions.list()).toEqual([])
    await expect.poll(() => p.a.handles.qps + p.b.handles.qps).toBe(0)
  })

  it('the listening side inherits the session parameters (MTU, DSCP/ECN) on every QP; over IPv6 too', async () => {
    pair = await openCoreCmPair('::1')
    const p = pair
    const server = await p.b.listen({ cm: { port: 7489 } })
    const served = once(server, 'session') as Promise<[Session]>
    const params = { encryption: 'none', encapsulation: { mtu: 2048, dscp: 26, ecn: 1 } } as const
    const client = await p.a.connect('rdma-cm://[::1]:7489', { params, qps: [{}, {}] })
    const [s] = await served
    await expect.poll(() => s.size, { timeout: 5_000 }).toBe(2)
    expect(s.remote.address).toBe('::1')
    for (const x of [client, s]) {
      expect(x.params.encapsulation).toMatchObject({ mtu: 2048, dscp: 26, ecn: 1 })
      for (const qp of x.qps) expect(qp.qos.trafficClass).toBe((26 << 2) | 1)
    }
    await verifyEveryQp({ ctx: p.a, qps: client.qps }, { ctx: p.b, qps: s.qps })
    await client.close()
  })

  it('the listening side closing the session ends it on the connecting side', async () => {
    pair = await openCoreCmPair()
    const { client, served } = await listenAndConnect(pair, 7481, 2)
    const closed = once(client, 'closed')
    await served.close()
    const [reason] = await closed
    expect(String(reason)).toMatch(/rdma_cm peer/)
    await expect.poll(() => pair!.a.handles.qps + pair!.b.handles.qps).toBe(0)
  })

  it('a token with a spent QP budget fails the QP that exceeds it with ERR_JOIN_TOKEN; connect() then closes the half-made session on both sides', async () => {
    pair = await openCoreCmPair()
    const p = pair
    const server = await p.b.listen({ cm: { port: 7482, maxQpsPerSession: 1 } })
    const served = once(server, 'session') as Promise<[Session]>
    const err = await p.a.connect('rdma-cm://127.0.0.1:7482', { params: PLAIN, qps: [{}, {}, {}] }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_JOIN_TOKEN', details: { reason: 'exhausted', cmRefusal: 'token-exhausted' } })
    // connect() failed as a whole: its session is closed on both sides.
    const [s] = await served
    await expect.poll(() => s.closed, { timeout: 5_000 }).toBe(true)
    expect(server.refused.TOKEN_EXHAUSTED).toBe(1)
    await expect.poll(() => p.a.handles.qps + p.b.handles.qps, { timeout: 5_000 }).toBe(0)
  })

  it('refuses a wrong session ID or token with ERR_SESSION_NOT_FOUND, another address with ERR_REMOTE_MISMATCH; the right token joins', async () => {
    pair = await openCoreCmPair()
    const p = pair
    const server = await p.b.listen({ cm: { port: 7483 } })
    const served = once(server, 'session') as Promise<[Session]>
    // A session opened by hand: the REP names it and gives its CM join token.
    const opener = await p.a.connectQp('rdma-cm://127.0.0.1:7483', { privateData: encodeCmPrivateData({ kind: 'open', trafficClass: 0, mtu: 1024 }) })
    const [session] = await served
    const rep = decodeCmPrivateData(opener.privateData)
    if (rep.plain || !('message' in rep) || rep.message.kind !== 'accept') throw new Error('no accept in the REP')
    expect(rep.message.sessionId).toBe(session.id)
    const { token } = rep.message
    const url = 'rdma-cm://127.0.0.1:7483'
    const tries = [
      { sessionId: randomBytes(16).toString('hex'), token },
      { sessionId: session.id, token: Uint8Array.from(token, (b, i) => (i === 29 ? b ^ 1 : b)) },
      { sessionId: session.id, token: randomBytes(30) },
    ]
    for (const t of tries) {
      const e = await p.a.connectQp(url, { privateData: encodeCmPrivateData({ kind: 'join', ...t }) }).catch((x: unknown) => x)
      expect(e).toMatchObject({ code: 'ERR_SESSION_NOT_FOUND', details: { cmRefusal: 'session-not-found' } })
    }
    expect(server.refused.SESSION_NOT_FOUND).toBe(3)

    // Another host (127.0.0.2, same RoCE port as a so b's CM answers it) with the right token.
    const c = await createContext({ provider: softroce({ address: '127.0.0.2', port: (p.a.device as SoftRoceDevice).info.port, timers: TEST_TIMERS }) })
    extra.push(c)
    c.connectionManager({ timing: FAST_CM, peerRocePort: (p.b.device as SoftRoceDevice).info.port })
    const far = await c.connectQp(url, { privateData: encodeCmPrivateData({ kind: 'join', sessionId: session.id, token }) }).catch((x: unknown) => x)
    expect(far).toMatchObject({ code: 'ERR_REMOTE_MISMATCH', details: { cmRefusal: 'remote-mismatch' } })

    // The right session and token from the session's remote: one more QP in the session.
    const joined = await p.a.connectQp(url, { privateData: encodeCmPrivateData({ kind: 'join', sessionId: session.id, token }) })
    await expect.poll(() => session.size, { timeout: 5_000 }).toBe(2)
    await verifyEveryQp({ ctx: p.a, qps: [opener.qp!, joined.qp!] }, { ctx: p.b, qps: session.qps })
    // The opener's DREQ ends the session on the listening side.
    const closed = once(session, 'closed')
    await opener.disconnect()
    await closed
    await joined.disconnect()
    await Promise.all([opener.qp!.close(), joined.qp!.close()])
  })

  it('a plain rdma_cm peer (no session data) gets a lone QP; a session connect to a plain listener is ERR_PROTOCOL; sessions: false refuses sessions', async () => {
    pair = await openCoreCmPair()
    const p = pair
    const server = await p.b.listen({ cm: { port: 7484, onRequest: (r) => ({ privateData: Buffer.from(`hi ${Buffer.from(r.privateData.subarray(0, 5)).toString()}`) }) } })
    const accepted = once(server, 'connection') as Promise<[Awaited<ReturnType<Context['connectQp']>>]>
    const conn = await p.a.connectQp('rdma-cm://127.0.0.1:7484', { privateData: Buffer.from('alice') })
    const [lone] = await accepted
    expect(Buffer.from(conn.privateData.subarray(0, 8)).toString()).toBe('hi alice')
    expect(Buffer.from(lone.privateData.subarray(0, 5)).toString()).toBe('alice')
    expect(p.b.sessions.list()).toEqual([])
    expect(lone.qp!.state).toBe('RTS')
    await verifyEveryQp({ ctx: p.a, qps: [conn.qp!] }, { ctx: p.b, qps: [lone.qp!] })
    await conn.disconnect()
    expect(await lone.disconnected).toMatchObject({ by: 'remote' })
    await Promise.all([conn.qp!.close(), lone.qp!.close()])

    // A listener that knows nothing of sessions (the provider's CM directly, as rping would be).
    const bare = p.b.connectionManager().listen({ port: 7485 })
    const e = await p.a.connect('rdma-cm://127.0.0.1:7485', { params: PLAIN }).catch((x: unknown) => x)
    expect(e).toMatchObject({ code: 'ERR_PROTOCOL' })
    const leftover = await bare.accept()
    await leftover.disconnected
    await leftover.qp!.close()

    const noSessions = await p.b.listen({ cm: { port: 7486, sessions: false } })
    await expect(p.a.connect('rdma-cm://127.0.0.1:7486', { params: PLAIN })).rejects.toMatchObject({ code: 'ERR_CONNECTION_REFUSED', details: { cmRefusal: 'not-accepted' } })
    expect(noSessions.refused.NOT_ACCEPTED).toBe(1)
    // A listener nobody takes lone QPs from refuses plain peers instead of leaking their QPs.
    await p.b.listen({ cm: { port: 7488 } })
    await expect(p.a.connectQp('rdma-cm://127.0.0.1:7488')).rejects.toMatchObject({ code: 'ERR_CONNECTION_REFUSED', details: { cmRefusal: 'not-accepted' } })
    // Encryption cannot ride rdma_cm: the default (required aes-256-gcm) is refused before any MAD.
    await expect(p.a.connect('rdma-cm://127.0.0.1:7484')).rejects.toMatchObject({ code: 'ERR_ENCRYPTION_UNSUPPORTED' })
    await expect(p.a.connect('rdma-cm://localhost:7484', { params: PLAIN })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await expect.poll(() => p.a.handles.qps + p.b.handles.qps, { timeout: 5_000 }).toBe(0)
  })

  it('refuses malformed rdma-session private data with coded REJs, never a crash, and keeps serving', async () => {
    pair = await openCoreCmPair()
    const p = pair
    const server = await p.b.listen({ cm: { port: 7487 } })
    const rand = seeded(0x5eed)
    const valid = [
      encodeCmPrivateData({ kind: 'join', sessionId: randomBytes(16).toString('hex'), token: randomBytes(30) }),
      encodeCmPrivateData({ kind: 'refuse', code: 3 }),
      encodeCmPrivateData({ kind: 'accept', sessionId: randomBytes(16).toString('hex'), token: randomBytes(30) }),
    ]
    const outcomes = new Map<string, number>()
    const N = 240
    for (let batch = 0; batch < N; batch += 12) {
      await Promise.all(Array.from({ length: 12 }, async () => {
        const base = valid[Math.floor(rand() * valid.length)]!
        const data = new Uint8Array(Math.min(56, Math.max(4, Math.floor(rand() * 57))))
        data.set(base.subarray(0, data.length))
        // keep the magic (else it is a plain peer's data); mutate 1..4 other bytes
        for (let k = 1 + Math.floor(rand() * 4); k > 0; k--) data[4 + Math.floor(rand() * (data.length - 4))] = Math.floor(rand() * 256)
        const r = await p.a.connectQp('rdma-cm://127.0.0.1:7487', { privateData: data }).then(async (c) => {
          await c.disconnect()
          await c.qp!.close()
          return 'accepted'
        }, (e: unknown) => (isRdmaError(e) ? `${e.code}/${String(e.details.cmRefusal)}` : `uncoded ${String(e)}`))
        outcomes.set(r, (outcomes.get(r) ?? 0) + 1)
      }))
    }
    const kinds = [...outcomes.keys()]
    expect(kinds.filter((k) => k.startsWith('uncoded'))).toEqual([])
    expect(kinds.every((k) => ['accepted', 'ERR_CONNECTION_REFUSED/malformed-private-data', 'ERR_CONNECTION_REFUSED/unsupported-version', 'ERR_SESSION_NOT_FOUND/session-not-found'].includes(k))).toBe(true)
    expect(outcomes.get('ERR_CONNECTION_REFUSED/malformed-private-data') ?? 0).toBeGreaterThan(N / 4)
    expect(server.refused.MALFORMED).toBe(outcomes.get('ERR_CONNECTION_REFUSED/malformed-private-data'))
    // still serving a real session
    const served = once(server, 'session') as Promise<[Session]>
    const client = await p.a.connect('rdma-cm://127.0.0.1:7487', { params: PLAIN, qps: [{}, {}] })
    const [s] = await served
    await expect.poll(() => s.size, { timeout: 5_000 }).toBe(2)
    await verifyEveryQp({ ctx: p.a, qps: client.qps }, { ctx: p.b, qps: s.qps })
    await client.close()
  })
})

function seeded(seed: number): () => number {
  let x = seed >>> 0
  return () => {
    x = (x * 1664525 + 1013904223) >>> 0
    return x / 0x100000000
  }
}
