/**
 * After the handshake only sealed frames count: injected text (error) frames and
 * frames that do not authenticate are dropped and counted; a socket closed
 * without the peer's sealed `bye` is a failed link that the channel resumes;
 * only a sealed `bye` ends a channel. Real ws sockets on loopback, no provider.
 */
import { afterEach, describe, expect, it } from 'vitest'
import * as v from 'valibot'
import { ControlChannel, ControlConnection, ControlServer, MAX_DROPPED_FRAMES } from '../../src/index.js'
import { normalizeClientAuth, normalizeServerAuth } from '../../src/control/auth.js'
import { dialControl } from '../../src/control/control-server.js'

const echoSchema = v.strictObject({ say: v.pipe(v.string(), v.maxLength(100)) })
type Echo = v.InferOutput<typeof echoSchema>
const psk = Buffer.alloc(32, 0x5a)

class EchoChannel extends ControlChannel<Echo, Echo> {
  constructor(conn: ControlConnection, redial?: (r: { channelId: string; resumeKey: Buffer }) => Promise<ControlConnection>) {
    super({ result: conn.result, requestSchema: echoSchema, replySchema: echoSchema, reconnectGraceMs: 10_000, ...(redial ? { redial } : {}) }, conn)
  }
}

const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function pair(): Promise<{ server: ControlServer<EchoChannel>; client: EchoChannel; serverSide: () => EchoChannel }> {
  const server = await ControlServer.start<EchoChannel>({ port: 0 }, normalizeServerAuth({ psk }), 'peer', (conn) => new EchoChannel(conn), (ch) => ch.setHandler(async (req: Echo) => ({ say: `echo ${req.say}` })))
  cleanups.push(() => server.close())
  const client = await dialControl(server.url, normalizeClientAuth({ psk }), 'peer', {}, (conn, redial) => new EchoChannel(conn, redial))
  cleanups.push(() => client.close())
  await waitFor(() => server.channels.length === 1, 'the server has the channel')
  return { server, client, serverSide: () => server.channels[0]! }
}

async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

describe('sealed frames only after the handshake', () => {
  it('an injected unsealed error frame and forged binary frames are dropped and counted; the channel stays up and serves', async () => {
    const { client, serverSide } = await pair()
    const ws = serverSide().connection!.ws
    const closedReasons: string[] = []
    client.onClosed((r) => closedReasons.push(r))
    ws.send(JSON.stringify({ t: 'error', code: 'ERR_AUTH', message: 'injected: go away' }))
    ws.send(Buffer.from('not sealed at all'), { binary: true })
    ws.send(Buffer.alloc(200, 7), { binary: true })
    await waitFor(() => client.stats().droppedFrames === 3, `3 dropped frames (seen ${JSON.stringify(client.stats())})`)
    expect(client.closed).toBe(false)
    expect(closedReasons).toEqual([])
    // The stream of sealed frames was not disturbed: requests still work both ways.
    expect(await client.request({ say: 'still here' })).toEqual({ say: 'echo still here' })
    expect(client.stats()).toMatchObject({ droppedFrames: 3, resumes: 0 })
  })

  it('a close frame without a sealed bye is a failed link: the client resumes the same channel', async () => {
    const { server, client, serverSide } = await pair()
    const first = client.connection
    // What an on-path attacker can forge: a ws close with an error code as its reason.
    serverSide().connection!.ws.close(1008, 'ERR_AUTH')
    await waitFor(() => client.connected && client.connection !== first, 'the client resumed on a new connection')
    expect(client.closed).toBe(false)
    expect(client.stats().resumes).toBe(1)
    expect(server.channels).toHaveLength(1)
    expect(await client.request({ say: 'resumed' })).toEqual({ say: 'echo resumed' })
  })

  it(`more than ${MAX_DROPPED_FRAMES} unauthenticated frames on one connection fail the link; the channel resumes on a new one`, async () => {
    const { client, serverSide } = await pair()
    const first = client.connection
    const ws = serverSide().connection!.ws
    for (let i = 0; i <= MAX_DROPPED_FRAMES; i++) ws.send(`{"t":"error","code":"ERR_PROTOCOL","message":"junk ${i}"}`)
    await waitFor(() => client.connected && client.connection !== first, `a resumed connection (stats ${JSON.stringify(client.stats())})`)
    expect(client.closed).toBe(false)
    expect(client.stats().droppedFrames).toBe(MAX_DROPPED_FRAMES + 1)
    expect(await client.request({ say: 'after junk' })).toEqual({ say: 'echo after junk' })
  })

  it('only a sealed bye ends the channel: close() on one side closes the other for good, without a resume', async () => {
    const { server, client, serverSide } = await pair()
    const reasons: string[] = []
    client.onClosed((r) => reasons.push(r))
    serverSide().close('done here')
    await waitFor(() => client.closed, 'the client channel closed')
    expect(reasons[0]).toMatch(/peer closed the control channel/)
    expect(client.stats().resumes).toBe(0)
    await waitFor(() => server.channels.length === 0, 'the server dropped the channel')
  })
})
