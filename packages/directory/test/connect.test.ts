/**
 * Connecting and joining by name over the real ws control plane (contexts on provider-mock, the
 * directory in-process): the handshake is pinned to the key in the host's entry, so a writable
 * directory cannot send a client to an impostor; a session ID alone grants nothing.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createContext, generateIdentity, publicKeyId, type Context } from '@rdma-session/core'
import { MockFabric, mock } from '@rdma-session/provider-mock'
import { Directory, MemoryBackend, MemoryStore, endorseHost } from '../src/index.js'
import { sealEntry } from '../src/entry.js'

const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

// Mock contexts sit on 127.0.0.1 (a port each): a peer's declared RoCE address must be the source
// address of its control connection, which on loopback is 127.0.0.1.
let nextPort = 6000
async function ctxOn(fabric: MockFabric, at?: { address: string; port: number }): Promise<Context> {
  const ctx = await createContext({ provider: mock({ fabric, ...(at ?? { address: '127.0.0.1', port: nextPort++ }) }) })
  cleanups.push(() => ctx.close())
  return ctx
}

function dirOn(store: MemoryStore, options: Partial<ConstructorParameters<typeof Directory>[0]> = {}): Directory {
  const d = new Directory({ backend: new MemoryBackend(store), ...options })
  cleanups.push(() => d.close())
  return d
}

async function errOf(p: Promise<unknown>): Promise<{ code: string; message: string; details: Record<string, unknown> }> {
  try {
    await p
  } catch (err) {
    return err as never
  }
  throw new Error('expected a rejection')
}

/** A server host: context listening with identity auth, registered in the directory. */
async function serverHost(fabric: MockFabric, store: MemoryStore, name: string, clients: readonly { publicKey: unknown }[]) {
  const ctx = await ctxOn(fabric)
  const id = generateIdentity()
  const server = await ctx.listen({ port: 0, auth: { identity: id.privateKey, trusted: clients.map((c) => c.publicKey as never) } })
  const dir = dirOn(store)
  const reg = await dir.register({ name, identity: id.privateKey, urls: { ws: [server.url] }, roce: [{ address: ctx.endpoint.address, port: ctx.endpoint.port }], capabilities: { providers: [ctx.provider.name], encryption: ['aes-256-gcm'] } })
  return { ctx, id, server, dir, reg }
}

describe('connect and join by name', () => {
  it('connects by dir:// name with the key from the entry; sessions are listed and joined by ID with a token; the ID alone is refused', async () => {
    const fabric = new MockFabric()
    const store = new MemoryStore()
    const client = generateIdentity()
    const joiner = generateIdentity()
    const a = await serverHost(fabric, store, 'node-a', [client, joiner])
    const b = await ctxOn(fabric)
    const dirB = dirOn(store, { trust: { keys: [a.id.publicKey] } })
    const session = await dirB.connect(b, 'dir://node-a', { auth: { identity: client.privateKey, trusted: [a.id.publicKey] }, qps: [{ qos: { class: 'latency' } }] })
    expect(session.qps).toHaveLength(1)
    const aSide = a.ctx.sessions.get(session.id)
    // node-a lists the session for the joiner's key.
    await a.reg.publishSession(aSide, { joiners: [joiner.publicKey] })
    // The joiner: another process on node B's host (same RoCE address, its own port), as join tokens require.
    const c = await ctxOn(fabric, { address: b.endpoint.address, port: b.endpoint.port + 1 })
    const dirC = dirOn(store, { reader: joiner.publicKey, trust: { keys: [a.id.publicKey] } })
    // C, next to B, asks for the session going to A, as B would ask ctx.sessions.query({ remote }).
    expect(b.sessions.query({ remote: session.remote })).toBe(session.id)
    expect(await dirC.querySession({ remote: session.remote })).toBe(session.id)
    expect(await dirC.querySession({ remote: aSide.remote })).toBe(session.id)
    // The ID alone: no token, no QPs.
    const noToken = await errOf(dirC.join(c, session.id, { auth: { identity: joiner.privateKey, trusted: [a.id.publicKey] }, token: 'rsj1.x.y.z' }))
    expect(noToken.code).toBe('ERR_JOIN_TOKEN')
    // With a token from the session holder on its host (B), the joiner adds QPs to the same session.
    const token = session.createJoinToken({ maxQps: 2 })
    const joined = await dirC.join(c, session.id, { auth: { identity: joiner.privateKey, trusted: [a.id.publicKey] }, token })
    expect(joined.id).toBe(session.id)
    const added = await joined.addQps([{ qos: { class: 'bulk' } }])
    expect(added).toHaveLength(1)
    // Closing the session removes its directory entry.
    await aSide.close()
    await expect.poll(() => dirC.findSessions({ id: session.id }), { timeout: 5000 }).toEqual([])
  })

  it('a forged entry (a wrong key for a real host name) makes connect fail with ERR_AUTH', async () => {
    const fabric = new MockFabric()
    const store = new MemoryStore()
    const client = generateIdentity()
    const a = await serverHost(fabric, store, 'node-a', [client])
    const b = await ctxOn(fabric)
    const dirB = dirOn(store)
    // Mallory, with write access to the directory, replaces node-a's entry with her key and her server.
    const mallory = await ctxOn(fabric)
    const mId = generateIdentity()
    const mServer = await mallory.listen({ port: 0, auth: { identity: mId.privateKey, trusted: [client.publicKey] } })
    const real = (await dirB.lookup('node-a'))
    const forged = sealEntry({ v: 1, kind: 'host', name: 'node-a', urls: { ws: [mServer.url] }, roce: real.roce, identity: publicKeyId(mId.publicKey), capabilities: real.capabilities, labels: {}, issuedAt: Date.now() }, mId.privateKey)
    store.put('rdma-session/hosts/node-a', forged, null)
    const err = await errOf(dirB.connect(b, 'node-a', { auth: { identity: client.privateKey, trusted: [a.id.publicKey] } }))
    expect(err.code).toBe('ERR_AUTH')
    expect(err.details).toMatchObject({ host: 'node-a', directoryCode: 'ERR_DIRECTORY_UNTRUSTED' })
    // She keeps the real key in the entry but points the URL at her server: the signature breaks.
    const tampered = JSON.parse(store.get('rdma-session/hosts/node-a')!) as { body: string; sig: string }
    const realValue = sealEntry({ ...real, urls: { ws: [a.server.url] } } as never, a.id.privateKey)
    const rv = JSON.parse(realValue) as { body: string; sig: string }
    store.put('rdma-session/hosts/node-a', JSON.stringify({ body: rv.body.replace(a.server.url, mServer.url), sig: rv.sig }), null)
    const err2 = await errOf(dirB.connect(b, 'node-a', { auth: { identity: client.privateKey, trusted: [a.id.publicKey] } }))
    expect(err2).toMatchObject({ code: 'ERR_AUTH', details: { directoryCode: 'ERR_DIRECTORY_SIGNATURE' } })
    expect(tampered.sig).not.toBe(rv.sig)
    // A genuine, signed entry whose URL now leads to Mallory (she took over the address): the pinned handshake refuses her.
    const replay = sealEntry({ ...real, urls: { ws: [mServer.url] } } as never, a.id.privateKey)
    store.put('rdma-session/hosts/node-a', replay, null)
    const err3 = await errOf(dirB.connect(b, 'node-a', { auth: { identity: client.privateKey, trusted: [a.id.publicKey, mId.publicKey] } }))
    expect(err3.code).toBe('ERR_AUTH')
    expect(mallory.sessions.list()).toEqual([])
  })

  it('an unknown name is ERR_DIRECTORY_NOT_FOUND; an unreachable URL is skipped for the next one', async () => {
    const fabric = new MockFabric()
    const store = new MemoryStore()
    const client = generateIdentity()
    const a = await serverHost(fabric, store, 'node-a', [client])
    await a.reg.update({ urls: { ws: ['ws://127.0.0.1:1', a.server.url] } })
    const b = await ctxOn(fabric)
    const dirB = dirOn(store)
    expect((await errOf(dirB.connect(b, 'node-zz', { auth: { identity: client.privateKey, trusted: [a.id.publicKey] } }))).code).toBe('ERR_DIRECTORY_NOT_FOUND')
    const s = await dirB.connect(b, 'node-a', { auth: { identity: client.privateKey, trusted: [a.id.publicKey] } })
    expect(s.qps.length).toBeGreaterThan(0)
  })

  it('a client trusting an authority connects to an endorsed host without its key; an unendorsed one is refused', async () => {
    const fabric = new MockFabric()
    const store = new MemoryStore()
    const authority = generateIdentity()
    const client = generateIdentity()
    const a = await serverHost(fabric, store, 'node-a', [client])
    await a.reg.update({ endorsement: endorseHost(authority.privateKey, { name: 'node-a', identity: a.id.publicKey }) })
    const other = await serverHost(fabric, store, 'node-b', [client])
    const b = await ctxOn(fabric)
    const dirB = dirOn(store, { trust: { authorities: [authority.publicKey] } })
    const s = await dirB.connect(b, 'dir://node-a', { auth: { identity: client.privateKey, trusted: [] } })
    expect(s.qps.length).toBeGreaterThan(0)
    const err = await errOf(dirB.connect(b, 'dir://node-b', { auth: { identity: client.privateKey, trusted: [] } }))
    expect(err).toMatchObject({ code: 'ERR_AUTH', details: { directoryCode: 'ERR_DIRECTORY_UNTRUSTED' } })
    expect(other.ctx.sessions.list()).toEqual([])
  })
})
