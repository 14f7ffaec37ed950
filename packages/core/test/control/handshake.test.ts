/** The control-plane handshake over real ws sockets on loopback, without a provider: PSK, Ed25519, and every way it must fail. */
import { afterEach, describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { WebSocket, WebSocketServer } from 'ws'
import * as v from 'valibot'
import { ControlChannel, ControlConnection, ControlServer, PROTOCOL_VERSION, generateIdentity, isRdmaError, openSocket, publicKeyId, type ClientAuth, type ServerAuth } from '../../src/index.js'
import { normalizeClientAuth, normalizeServerAuth } from '../../src/control/auth.js'
import { dialControl } from '../../src/control/control-server.js'

const echoSchema = v.strictObject({ say: v.pipe(v.string(), v.maxLength(100)) })
type Echo = v.InferOutput<typeof echoSchema>
const psk = randomBytes(32)

class EchoChannel extends ControlChannel<Echo, Echo> {
  constructor(conn: ControlConnection, redial?: (r: { channelId: string; resumeKey: Buffer }) => Promise<ControlConnection>) {
    super({ result: conn.result, requestSchema: echoSchema, replySchema: echoSchema, ...(redial ? { redial } : {}) }, conn)
  }
}

const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function echoServer(auth: ServerAuth): Promise<ControlServer<EchoChannel>> {
  const server = await ControlServer.start<EchoChannel>({ port: 0 }, normalizeServerAuth(auth), 'peer', (conn) => new EchoChannel(conn), (ch) => ch.setHandler(async (req: Echo) => ({ say: `echo ${req.say}` })))
  cleanups.push(() => server.close())
  return server
}

async function dial(url: string, auth: ClientAuth): Promise<EchoChannel> {
  const ch = await dialControl(url, normalizeClientAuth(auth), 'peer', {}, (conn, redial) => new EchoChannel(conn, redial))
  cleanups.push(() => ch.close())
  return ch
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    expect(isRdmaError(err)).toBe(true)
    return (err as { code: string }).code
  }
  throw new Error('expected a failure')
}

describe('control handshake', () => {
  it('PSK: both sides derive the same channel secret and sealed requests flow both ways', async () => {
    const server = await echoServer({ psk })
    const ch = await dial(server.url, { psk })
    expect(await ch.request({ say: 'hi' })).toEqual({ say: 'echo hi' })
    const serverSide = server.channels[0]!
    expect(serverSide.channelSecret.equals(ch.channelSecret)).toBe(true)
    expect(serverSide.peerId).toBe('psk:default')
    ch.setHandler(async (req: Echo) => ({ say: `client ${req.say}` }))
    expect(await serverSide.request({ say: 'x' })).toEqual({ say: 'client x' })
  })

  it('Ed25519: mutual identities, each side names the other by public key', async () => {
    const s = generateIdentity()
    const c = generateIdentity()
    const server = await echoServer({ identity: s.privateKey, trusted: [c.publicKey] })
    const ch = await dial(server.url, { identity: c.privateKey, trusted: [publicKeyId(s.publicKey)] })
    expect(await ch.request({ say: 'id' })).toEqual({ say: 'echo id' })
    expect(server.channels[0]!.peerId).toBe(`ed25519:${publicKeyId(c.publicKey)}`)
    expect(ch.peerId).toBe(`ed25519:${publicKeyId(s.publicKey)}`)
  })

  it('a wrong PSK fails with ERR_AUTH on the client and the server keeps no channel', async () => {
    const server = await echoServer({ psk })
    const rejected: unknown[] = []
    server.on('rejected', (e) => rejected.push(e))
    const err = await dial(server.url, { psk: randomBytes(32) }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_AUTH', message: expect.stringContaining('wrong pre-shared key') })
    // The server learns of the failure on its own socket, maybe after the client did: wait for it (a fixed 50 ms could end first).
    for (const deadline = Date.now() + 5000; rejected.length === 0 && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 5))
    expect(server.channels).toHaveLength(0)
    expect(rejected.length, 'rejected events (none within 5 s?)').toBe(1)
  })

  it('an unknown client identity fails with ERR_AUTH naming it; an untrusted server identity too', async () => {
    const s = generateIdentity()
    const c = generateIdentity()
    const stranger = generateIdentity()
    const server = await echoServer({ identity: s.privateKey, trusted: [c.publicKey] })
    const err = await dial(server.url, { identity: stranger.privateKey, trusted: [s.publicKey] }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_AUTH', message: expect.stringContaining('unknown identity') })
    expect((err as Error).message).toContain(publicKeyId(stranger.publicKey))
    const err2 = await dial(server.url, { identity: c.privateKey, trusted: [stranger.publicKey] }).catch((e: unknown) => e)
    expect(err2).toMatchObject({ code: 'ERR_AUTH', message: expect.stringContaining('unknown server identity') })
  })

  it('PSK client against an identity-only server, and a wrong PSK id, fail with ERR_AUTH', async () => {
    const s = generateIdentity()
    const server = await echoServer({ identity: s.privateKey, trusted: [generateIdentity().publicKey] })
    expect(await codeOf(dial(server.url, { psk }))).toBe('ERR_AUTH')
    const server2 = await echoServer({ psk, pskId: 'lab' })
    expect(await codeOf(dial(server2.url, { psk, pskId: 'other' }))).toBe('ERR_AUTH')
  })

  it('a man in the middle changing hello.pskId: the server refuses the unknown id (ERR_AUTH)', async () => {
    const server = await echoServer({ psk, pskId: 'lab' })
    const proxy = await tamperingProxy(server.url, rewriteHello((f) => (f.pskId = 'other')))
    const err = await dial(proxy, { psk, pskId: 'lab' }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_AUTH', message: expect.stringContaining('unknown pre-shared key id') })
  })

  for (const [what, change] of [
    ['a byte of its Noise message', (f: Record<string, unknown>) => { const m = Buffer.from(String(f.noise), 'base64url'); m[m.length - 1]! ^= 1; f.noise = m.toString('base64url') }],
    ['the channel it resumes (bound in the prologue)', (f: Record<string, unknown>) => (f.resume = 'ab'.repeat(16))],
  ] as const) {
    it(`a man in the middle changing ${what} in the hello fails the handshake (ERR_AUTH)`, async () => {
      const server = await echoServer({ psk })
      const proxy = await tamperingProxy(server.url, rewriteHello(change))
      const err = await dial(proxy, { psk }).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'ERR_AUTH', message: expect.stringContaining('tampered') })
      expect(server.channels).toHaveLength(0)
    })
  }

  it('downgrade: a man in the middle turning an Ed25519 hello into a PSK one, at a server that takes both, is refused (ERR_AUTH)', async () => {
    const s = generateIdentity()
    const c = generateIdentity()
    const server = await echoServer({ psk, identity: s.privateKey, trusted: [c.publicKey] })
    const proxy = await tamperingProxy(server.url, rewriteHello((f) => Object.assign(f, { auth: 'psk', pskId: 'default' })))
    const err = await dial(proxy, { identity: c.privateKey, trusted: [s.publicKey] }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_AUTH' })
    expect(server.channels).toHaveLength(0)
    // And a client offering a method the server does not take is told which it takes.
    const idOnly = await echoServer({ identity: s.privateKey, trusted: [c.publicKey] })
    expect(await dial(idOnly.url, { psk }).catch((e: unknown) => e)).toMatchObject({ code: 'ERR_AUTH', message: expect.stringContaining('authenticate with an Ed25519 identity') })
  })

  it('a man in the middle changing a byte of message 2 (Ed25519) fails the handshake on the client (ERR_AUTH)', async () => {
    const s = generateIdentity()
    const c = generateIdentity()
    const server = await echoServer({ identity: s.privateKey, trusted: [c.publicKey] })
    let binaries = 0
    const proxy = await tamperingProxy(server.url, (frame) => frame, (bin) => {
      if (binaries++ > 0) return bin
      const copy = Buffer.from(bin)
      copy[40]! ^= 1
      return copy
    })
    const err = await dial(proxy, { identity: c.privateKey, trusted: [s.publicKey] }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_AUTH', message: expect.stringContaining('does not authenticate') })
  })

  it('a peer of another protocol version is refused with ERR_PROTOCOL naming both versions', async () => {
    const server = await echoServer({ psk })
    const proxy = await tamperingProxy(server.url, rewriteHello((f) => (f.v = 1)))
    const err = await dial(proxy, { psk }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_PROTOCOL', message: expect.stringContaining(`control protocol version 1, but this side speaks ${PROTOCOL_VERSION}`) })
  })

  it('a flipped bit in a sealed frame: the frame is not acted on; the next one shows the gap, the link counts as failed and the channel resumes; both requests are answered once', async () => {
    const server = await echoServer({ psk })
    let flips = 0
    const proxy = await tamperingProxy(server.url, (frame) => frame, (bin) => {
      if (flips === 0) return bin
      flips--
      const copy = Buffer.from(bin)
      copy[0]! ^= 1
      return copy
    })
    const ch = await dial(proxy, { psk })
    expect(await ch.request({ say: 'ok' })).toEqual({ say: 'echo ok' })
    flips = 1
    const tampered = ch.request({ say: 'tampered' })
    const next = ch.request({ say: 'next' })
    expect(await Promise.all([tampered, next])).toEqual([{ say: 'echo tampered' }, { say: 'echo next' }])
    expect(ch.closed).toBe(false)
    expect(ch.stats().resumes).toBe(1)
  })

  it('resuming a channel needs its resume key: a wrong proof is ERR_AUTH and the real channel is untouched', async () => {
    const server = await echoServer({ psk })
    const ch = await dial(server.url, { psk })
    const forged = ControlConnection.client(openSocket(server.url), normalizeClientAuth({ psk }), 'peer', { channelId: ch.id, resumeKey: Buffer.alloc(32, 3) })
    // The server checks the proof in the client's finish, before its ready: the dial itself fails.
    await expect(forged).rejects.toMatchObject({ code: 'ERR_AUTH', message: expect.stringContaining('resume proof') })
    expect(await ch.request({ say: 'still here' })).toEqual({ say: 'echo still here' })
    expect(server.channels).toHaveLength(1)
    // The real key resumes it: the server attaches the new connection to the same channel.
    const again = await ControlConnection.client(openSocket(server.url), normalizeClientAuth({ psk }), 'peer', { channelId: ch.id, resumeKey: ch.resumeKey })
    expect(again.result.resumed).toBe(true)
    expect(again.result.channelId).toBe(ch.id)
    again.close()
  })

  it('PSKs under 32 bytes of key material, short passphrases and mixed credentials are refused before dialing or listening', () => {
    for (const short of ['short', 'correct horse battery staple 4', Buffer.alloc(31, 1)]) {
      expect(() => normalizeClientAuth({ psk: short })).toThrow(/at least 32 bytes of key material.*passphrase/)
      expect(() => normalizeServerAuth({ psk: short })).toThrow(/at least 32 bytes/)
    }
    expect(() => normalizeClientAuth({ passphrase: 'seven77' })).toThrow(/at least 8 characters/)
    expect(() => normalizeClientAuth({ psk, identity: generateIdentity().privateKey } as never)).toThrow(/one of psk, passphrase or identity/)
    expect(() => normalizeClientAuth({ psk, passphrase: 'correct horse' } as never)).toThrow(/one of psk, passphrase or identity/)
    expect(() => normalizeServerAuth({ psk, passphrase: 'correct horse' })).toThrow(/either psk or passphrase/)
    expect(() => normalizeServerAuth({})).toThrow(/psk/)
  })

  it('a passphrase is stretched with scrypt under a per-listener salt: it works end to end, a wrong one is ERR_AUTH, and a raw PSK is not accepted in its place', async () => {
    const passphrase = 'correct horse battery staple'
    const server = await echoServer({ passphrase })
    const other = await echoServer({ passphrase })
    const salts: string[] = []
    for (const url of [server.url, other.url]) {
      const proxy = await tamperingProxy(url, (frame) => {
        const f = JSON.parse(frame) as { t: string; salt?: string }
        if (f.t === 'salt') salts.push(String(f.salt))
        return frame
      })
      const ch = await dial(proxy, { passphrase })
      expect(await ch.request({ say: 'stretched' })).toEqual({ say: 'echo stretched' })
    }
    expect(salts).toHaveLength(2)
    expect(salts[0]).toMatch(/^[A-Za-z0-9_-]{22}$/)
    expect(salts[0]).not.toBe(salts[1])
    const wrong = await dial(server.url, { passphrase: 'correct horse battery stapler' }).catch((e: unknown) => e)
    expect(wrong).toMatchObject({ code: 'ERR_AUTH', message: expect.stringContaining('wrong passphrase') })
    expect(await codeOf(dial(server.url, { psk }))).toBe('ERR_AUTH')
    const pskServer = await echoServer({ psk })
    expect(await codeOf(dial(pskServer.url, { passphrase }))).toBe('ERR_AUTH')
  })
})

/** A text rewriter for tamperingProxy that changes the hello. */
function rewriteHello(change: (f: Record<string, unknown>) => unknown): (frame: string) => string {
  return (frame) => {
    const f = JSON.parse(frame) as Record<string, unknown>
    if (f.t !== 'hello') return frame
    change(f)
    return JSON.stringify(f)
  }
}

/** A ws proxy that passes frames through `text`/`binary` rewriters (loopback only). */
async function tamperingProxy(target: string, text: (frame: string) => string, binary: (frame: Buffer) => Buffer = (b) => b): Promise<string> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await new Promise((r) => wss.once('listening', r))
  wss.on('connection', (client) => {
    const upstream = new WebSocket(target)
    const queue: [Buffer, boolean][] = []
    upstream.on('open', () => {
      for (const [d, b] of queue.splice(0)) upstream.send(b ? binary(d) : text(d.toString()), { binary: b })
    })
    client.on('message', (d: Buffer, isBinary) => {
      if (upstream.readyState === WebSocket.OPEN) upstream.send(isBinary ? binary(d) : text(d.toString()), { binary: isBinary })
      else queue.push([d, isBinary])
    })
    upstream.on('message', (d: Buffer, isBinary) => client.readyState === WebSocket.OPEN && client.send(isBinary ? d : text(d.toString()), { binary: isBinary }))
    upstream.on('close', () => client.terminate())
    client.on('close', () => upstream.terminate())
    upstream.on('error', () => client.terminate())
    client.on('error', () => upstream.terminate())
  })
  cleanups.push(() => new Promise((r) => { for (const c of wss.clients) c.terminate(); wss.close(r) }))
  const port = (wss.address() as { port: number }).port
  return `ws://127.0.0.1:${port}`
}
