/**
 * Two SDK releases with different control protocol versions meet: each side
 * fails at once with ERR_PROTOCOL naming both versions, never a hang. The
 * previous release (protocol 2, the hand-written handshake) is stood in for by
 * the frames it sends, recorded here.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { WebSocket, WebSocketServer } from 'ws'
import { ControlChannel, ControlServer, PROTOCOL_VERSION, type ControlConnection } from '../../src/index.js'
import { normalizeClientAuth, normalizeServerAuth } from '../../src/control/auth.js'
import { dialControl } from '../../src/control/control-server.js'

const psk = randomBytes(32)
/** The hello a protocol 2 client sends (PSK). */
const V2_HELLO = { t: 'hello', v: 2, purpose: 'peer', auth: 'psk', pskId: 'default', eph: 'A'.repeat(43), nonce: 'B'.repeat(43) }
/** What a protocol 2 server answers a hello of another version with, then closes (1002, ERR_PROTOCOL). */
const v2Refusal = (got: number) => ({ t: 'error', code: 'ERR_PROTOCOL', message: `hello: control protocol version ${got}, but this side speaks 2; run the same rdma-session version on both ends` })

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function rawServer(onHello: (ws: WebSocket, hello: { v: number }) => void): Promise<string> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await new Promise((r) => wss.once('listening', r))
  wss.on('connection', (ws) => ws.once('message', (d: Buffer) => onHello(ws, JSON.parse(d.toString()) as { v: number })))
  cleanups.push(() => new Promise((r) => { for (const c of wss.clients) c.terminate(); wss.close(r) }))
  return `ws://127.0.0.1:${(wss.address() as { port: number }).port}`
}

const dial = (url: string): Promise<unknown> => dialControl(url, normalizeClientAuth({ psk }), 'peer', { handshakeTimeoutMs: 30_000 }, (conn: ControlConnection) => conn as unknown as ControlChannel<unknown, unknown>).then((ch) => { ch.close(); throw new Error('dial succeeded') }, (e: unknown) => e)

describe('control protocol versions', () => {
  it(`a protocol 2 client at this (protocol ${PROTOCOL_VERSION}) server gets ERR_PROTOCOL naming both versions and a close`, async () => {
    const server = await ControlServer.start({ port: 0 }, normalizeServerAuth({ psk }), 'peer', (conn) => conn as never, () => undefined)
    cleanups.push(() => server.close())
    const ws = new WebSocket(server.url)
    const frames: string[] = []
    ws.on('message', (d: Buffer) => frames.push(d.toString()))
    ws.once('open', () => ws.send(JSON.stringify(V2_HELLO)))
    const [code, reason] = await new Promise<[number, string]>((r) => ws.once('close', (c, why) => r([c, why.toString()])))
    expect(code).toBe(1002)
    expect(reason).toBe('ERR_PROTOCOL')
    expect(JSON.parse(frames[0]!)).toMatchObject({ t: 'error', code: 'ERR_PROTOCOL', message: expect.stringContaining(`control protocol version 2, but this side speaks ${PROTOCOL_VERSION}`) })
  })

  it('this client at a protocol 2 server: ERR_PROTOCOL naming both versions, not a hang', async () => {
    const url = await rawServer((ws, hello) => {
      ws.send(JSON.stringify(v2Refusal(hello.v)))
      ws.close(1002, 'ERR_PROTOCOL')
    })
    const err = await dial(url)
    expect(err).toMatchObject({ code: 'ERR_PROTOCOL', message: expect.stringContaining(`control protocol version ${PROTOCOL_VERSION}, but this side speaks 2`) })
  })

  it('this client at a server that answers with a protocol 2 welcome: ERR_PROTOCOL naming both versions', async () => {
    const url = await rawServer((ws) => ws.send(JSON.stringify({ t: 'welcome', v: 2, channel: 'ab'.repeat(16), resumed: false })))
    const err = await dial(url)
    expect(err).toMatchObject({ code: 'ERR_PROTOCOL', message: expect.stringContaining(`control protocol version 2, but this side speaks ${PROTOCOL_VERSION}`) })
  })
})
