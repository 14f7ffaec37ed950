/**
 * Sessions outlive what an attacker on the path or a busy server can do to
 * their control connection: an injected unsealed error frame is dropped and
 * counted (the session goes on), a reconnect refused because the server is at
 * its connection limit is retried within the grace period (the session
 * survives), and only an authentication failure ends the session at once.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { Context, PeerServer, Session, WsPeerChannel } from '@rdma-session/core'
import { PSK, TcpProxy, exposeBuffer, mockContexts, waitFor } from './helpers.js'

const auth = { psk: PSK }
const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function pair(listen: Parameters<Context['listen']>[0] = { port: 0, auth }): Promise<{ a: Context; b: Context; server: PeerServer; buf: Buffer }> {
  const { ctxs } = await mockContexts(2)
  const [a, b] = ctxs as [Context, Context]
  cleanups.push(() => a.close(), () => b.close())
  const { buf } = exposeBuffer(a)
  const server = await a.listen(listen)
  return { a, b, server, buf }
}

async function viaProxy(port: number): Promise<{ proxy: TcpProxy; url: string }> {
  const proxy = new TcpProxy(port)
  const url = await proxy.start()
  cleanups.push(() => proxy.close())
  return { proxy, url }
}

async function writeWorks(session: Session, local: Context, peerBuf: Buffer, offset: number): Promise<void> {
  const src = Buffer.from(Array.from({ length: 8192 }, (_, i) => (i * 17 + offset) & 0xff))
  const mr = local.registerMemory(src, { access: ['local-write'] })
  const region = session.remoteRegions.get('buf')!
  await session.qps[0]!.write(mr.slice(0, src.length), { addr: region.addr + offset, rkey: region.rkey, length: src.length })
  mr.deregister()
  expect(peerBuf.subarray(offset, offset + src.length).equals(src)).toBe(true)
}

describe('control channels that outlive hostile frames and busy servers', () => {
  it('an unsealed error frame injected after the handshake is dropped and counted; the session stays open on both sides', async () => {
    const { a, b, server, buf } = await pair()
    const session = await b.connect(server.url, { auth, qps: [{}] })
    const channel = session.peer as unknown as WsPeerChannel
    const peer = a.sessions.get(session.id)
    // What an attacker who can write into the TCP stream sends: a plain error frame, as a fatal error would look.
    server.channels[0]!.connection!.ws.send(JSON.stringify({ t: 'error', code: 'ERR_AUTH', message: 'injected: session over' }))
    await waitFor(() => channel.stats().droppedFrames === 1, 5000, `the frame counted as dropped (stats ${JSON.stringify(channel.stats())})`)
    expect(session.closed).toBe(false)
    expect(peer.closed).toBe(false)
    const dropped = b.metrics().find((f) => f.name === 'rdma_session_session_control_dropped_frames_total')
    const sample = dropped?.type === 'counter' ? dropped.samples.find((x) => x.labels.session === session.id) : undefined
    expect(sample?.value).toBe(1)
    await session.addQps([{}])
    expect(peer.qps).toHaveLength(2)
    await writeWorks(session, b, buf, 0)
  })

  it('a server at its connection limit during a link blip: the reconnect is refused with ERR_BUSY, retried with backoff, and the session survives', async () => {
    // The server allows one connection and holds the blipped one until its keepalive finds it dead.
    const { a, b, server, buf } = await pair({ port: 0, auth, maxConnections: 1, keepalive: { intervalMs: 100, timeoutMs: 3000 } })
    const { proxy, url } = await viaProxy(server.port!)
    const session = await b.connect(url, { auth, qps: [{}], reconnectGraceMs: 20_000 })
    const channel = session.peer as unknown as WsPeerChannel
    const peer = a.sessions.get(session.id)
    const first = channel.connection
    proxy.blip()
    await waitFor(() => channel.stats().failedRedials >= 1, 10_000, `a refused reconnect (stats ${JSON.stringify(channel.stats())})`)
    expect(channel.stats().lastRedialError).toMatch(/^ERR_BUSY: .*limit of 1 connection/)
    expect(session.closed).toBe(false)
    await waitFor(() => channel.connected && channel.connection !== first, 15_000, `the channel resumed (stats ${JSON.stringify(channel.stats())})`)
    expect(channel.stats().resumes).toBe(1)
    expect(session.closed).toBe(false)
    expect(peer.closed).toBe(false)
    await writeWorks(session, b, buf, 65536)
    await session.addQps([{}])
    expect(peer.qps).toHaveLength(2)
  })

  it('a reconnect refused for authentication ends the session at once, long before the grace period', async () => {
    const { b, server } = await pair()
    const { ctxs } = await mockContexts(1)
    const impostor = ctxs[0]!
    cleanups.push(() => impostor.close())
    const other = await impostor.listen({ port: 0, auth: { psk: Buffer.alloc(32, 0x42) } })
    const { proxy, url } = await viaProxy(server.port!)
    const session = await b.connect(url, { auth, qps: [{}], reconnectGraceMs: 30_000 })
    const reasons: string[] = []
    session.on('closed', (r: string) => reasons.push(r))
    // The link drops and comes back to a server that does not hold our key.
    proxy.targetPort = other.port!
    const t0 = Date.now()
    proxy.drop()
    await waitFor(() => session.closed, 10_000, 'the session closed')
    expect(Date.now() - t0).toBeLessThan(10_000)
    expect(reasons[0]).toMatch(/MAC does not verify|pre-shared key/)
  })
})
