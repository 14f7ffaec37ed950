/** Control-plane limits on provider-mock: Unix-socket listeners, handshake timeout, connection limit, a closed server. */
import { afterEach, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as netConnect } from 'node:net'
import { WebSocket } from 'ws'
import type { Context } from '@rdma-session/core'
import { PSK, expectCode, mockContexts, waitFor } from './helpers.js'

const auth = { psk: PSK }
const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function two(): Promise<[Context, Context]> {
  const { ctxs } = await mockContexts(2)
  cleanups.push(() => ctxs[1]!.close(), () => ctxs[0]!.close())
  return ctxs as [Context, Context]
}

/** Opens a raw socket, sends `first` (if any), and resolves with the error frame's code and the close code. */
function rawSocket(url: string, first?: string): Promise<{ code: string | null; close: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url)
    let code: string | null = null
    ws.on('open', () => first !== undefined && ws.send(first))
    ws.on('message', (d: Buffer) => {
      const m = JSON.parse(d.toString()) as { t: string; code?: string }
      if (m.t === 'error') code = m.code ?? null
    })
    ws.on('error', () => undefined)
    ws.on('close', (c) => resolve({ code, close: c }))
  })
}

describe('control-plane limits', () => {
  it('serves peers on a Unix socket created with mode 0600, and removes it on close', async () => {
    const [a, b] = await two()
    const dir = mkdtempSync(join(tmpdir(), 'rdma-ctl-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const socketPath = join(dir, 'peer.sock')
    const server = await a.listen({ socketPath, auth })
    expect(server.url).toBe(`ws+unix:${socketPath}`)
    expect(statSync(socketPath).mode & 0o777).toBe(0o600)
    const session = await b.connect(server.url, { auth, qps: [{}] })
    expect(a.sessions.get(session.id).qps).toHaveLength(1)
    await session.close()
    await server.close()
    expect(() => statSync(socketPath)).toThrow()
  })

  it('a client that never finishes the handshake is dropped with ERR_TIMEOUT', async () => {
    const [a] = await two()
    const server = await a.listen({ port: 0, auth, handshakeTimeoutMs: 150 })
    const t0 = Date.now()
    const out = await rawSocket(server.url)
    expect(out.code).toBe('ERR_TIMEOUT')
    expect(Date.now() - t0).toBeLessThan(3000)
    await waitFor(() => server.connections === 0, 2000, 'the server dropped the socket')
  })

  it('authenticated connections beyond maxConnections get ERR_BUSY (close 1013); idle unauthenticated sockets do not count', async () => {
    const [a, b] = await two()
    const server = await a.listen({ port: 0, auth, maxConnections: 2, handshakeTimeoutMs: 60_000 })
    // More idle sockets than maxConnections: they wait in the pending pool, not in the authenticated budget.
    const idle = Array.from({ length: 4 }, () => new WebSocket(server.url))
    cleanups.push(() => idle.forEach((w) => w.terminate()))
    await Promise.all(idle.map((w) => new Promise((r) => w.once('open', r))))
    await waitFor(() => server.admission.pending === 4, 5000, () => `the idle sockets to be pending (${JSON.stringify(server.admission)})`)
    const first = await b.dial(server.url, { auth })
    const second = await b.dial(server.url, { auth })
    cleanups.push(() => first.close(), () => second.close())
    // The client is done before the server has read its finish: wait for the server to count both.
    await waitFor(() => server.admission.authenticatedConnections === 2 && server.admission.pending === 4, 5000, () => `two authenticated, four pending (${JSON.stringify(server.admission)})`)
    // Refused for now, not for good: a reconnecting client retries.
    const err = await expectCode(b.dial(server.url, { auth, busyRetryMs: 0 }), 'ERR_BUSY')
    expect(err.message).toMatch(/limit of 2 connections \(maxConnections/)
    expect(server.admission.refusedAtLimit).toBe(1)
    // A dial that may retry ERR_BUSY gets in once a slot frees.
    const retrying = b.connect(server.url, { auth, qps: [{}], busyRetryMs: 60_000 })
    await waitFor(() => server.admission.refusedAtLimit >= 2, 10_000, () => `the retrying dial to be refused once (${JSON.stringify(server.admission)})`)
    first.close()
    const session = await retrying
    expect(session.qps).toHaveLength(1)
  })

  it('a socket that never sends its upgrade request is closed at the handshake deadline, counted from accept (HTTP 408)', async () => {
    const [a] = await two()
    const server = await a.listen({ port: 0, auth, handshakeTimeoutMs: 200 })
    const socket = netConnect({ host: '127.0.0.1', port: server.port! })
    cleanups.push(() => socket.destroy())
    let reply = ''
    socket.on('data', (d: Buffer) => (reply += d.toString('latin1')))
    socket.on('error', () => undefined)
    await new Promise((r) => socket.once('close', r))
    expect(reply).toMatch(/^HTTP\/1\.1 408 [^]*x-rdma-session-error: ERR_TIMEOUT/)
    expect(server.admission).toMatchObject({ timedOut: 1, pending: 0 })
  })

  it('a dial early-dropped by admission fails with ERR_BUSY; an address at its limit recycles its own oldest pending socket', async () => {
    const [a, b] = await two()
    // One pending handshake per address, and certain early drop for an address that already has one.
    const server = await a.listen({ port: 0, auth, handshakeTimeoutMs: 60_000, admission: { maxPending: 4, maxPendingPerAddress: 1, earlyDropAt: 0, earlyDropRate: 1 } })
    const idle = new WebSocket(server.url)
    cleanups.push(() => idle.terminate())
    await new Promise((r) => idle.once('open', r))
    const err = await expectCode(b.dial(server.url, { auth, busyRetryMs: 0 }), 'ERR_BUSY')
    expect(err.message).toMatch(/HTTP 503/)
    expect(server.admission).toMatchObject({ earlyDropped: 1, pending: 1 })

    // Without early drop, a newcomer from the same address closes that address's oldest pending socket.
    const recycling = await a.listen({ port: 0, auth, handshakeTimeoutMs: 60_000, admission: { maxPending: 4, maxPendingPerAddress: 1, earlyDropAt: 4 } })
    const staleWs = new WebSocket(recycling.url)
    cleanups.push(() => staleWs.terminate())
    const stale = new Promise<{ code: string | null; close: number }>((resolve) => {
      let code: string | null = null
      staleWs.on('message', (d: Buffer) => (code = (JSON.parse(d.toString()) as { code?: string }).code ?? null))
      staleWs.on('close', (c) => resolve({ code, close: c }))
    })
    // Upgraded, so its eviction is an error frame (before the upgrade it would be an HTTP 503).
    await new Promise((r) => staleWs.once('open', r))
    const channel = await b.dial(recycling.url, { auth })
    cleanups.push(() => channel.close())
    expect(await stale).toEqual({ code: 'ERR_BUSY', close: 1013 })
    expect(recycling.admission).toMatchObject({ evicted: 1 })
  })

  it('admission limits are checked when listening', async () => {
    const [a] = await two()
    const err = await expectCode(a.listen({ port: 0, auth, admission: { maxPending: 8, maxPendingPerAddress: 9 } }), 'ERR_INVALID_ARGUMENT')
    expect(err.details.attribute).toBe('admission.maxPendingPerAddress')
    await expectCode(a.listen({ port: 0, auth, maxConnections: 0 }), 'ERR_INVALID_ARGUMENT')
  })

  it('connecting to a server that is gone fails with a clear code, and creates nothing', async () => {
    const [a, b] = await two()
    const server = await a.listen({ port: 0, auth })
    const url = server.url
    await server.close()
    const err = await expectCode(b.connect(url, { auth, handshakeTimeoutMs: 1000 }), 'ERR_CONNECTION_REFUSED')
    expect(err.message).toMatch(/nothing listens at ws:\/\/127\.0\.0\.1:\d+\/? \(ECONNREFUSED\)/)
    expect(b.handles).toMatchObject({ qps: 0, sessions: 0 })
  })
})
