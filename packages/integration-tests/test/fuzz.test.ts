/**
 * Hostile input: 10,000+ malformed frames against a live control-plane server
 * (random bytes, mutated valid messages, oversized frames, wrong types and
 * orders, before and after authentication). Every one must get an error reply
 * (an error frame, or ws close 1009 for frames ws itself refuses) and a closed
 * connection; the server keeps serving and leaks no handle.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import * as v from 'valibot'
import { ClientHandshake, ControlConnection, MAX_FRAME_BYTES, PROTOCOL_VERSION, WS_MAX_PAYLOAD, normalizeClientAuth, openSocket, peerRequestSchema, seededRandom, type Context, type PeerServer } from '@rdma-session/core'
import { PSK, exposeBuffer, mockContexts, waitFor } from './helpers.js'

const auth = { psk: PSK }
let a: Context
let b: Context
let server: PeerServer
let baselineHandles = 0

/** Seeded, so a failure can be replayed. */
const rnd = seededRandom(0x5eed)
const int = (n: number): number => Math.floor(rnd() * n)
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!
const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)))

const WRONG_VALUES: unknown[] = [null, true, -1, 1.5, 1e308, '', 'x'.repeat(5000), [], [1, 2], {}, { __proto__: { polluted: 1 } }, '__proto__', 0x1000000, Number.MAX_SAFE_INTEGER + 2]

/** A change that always makes `obj` invalid against a strict schema whose required keys are `required`. */
function mutate(obj: Record<string, unknown>, required: readonly string[]): string {
  const o: Record<string, unknown> = structuredClone(obj)
  switch (int(6)) {
    case 0:
      delete o[pick(required)]
      break
    case 1: {
      const k = pick(required)
      let val = pick(WRONG_VALUES)
      if (typeof o[k] === typeof val && !Array.isArray(val) && val !== null && typeof val !== 'object') val = [val]
      o[k] = val
      break
    }
    case 2:
      o[`extra${int(100)}`] = pick(WRONG_VALUES)
      break
    case 3:
      o.t = pick(['helo', 'res', 'err', 'welcome', 'finish', 'error', 42, null].filter((t) => t !== o.t))
      if (o.t === 'error') delete o.code
      break
    case 4:
      return JSON.stringify(o).slice(0, 1 + int(JSON.stringify(o).length - 2))
    default:
      return JSON.stringify([o])
  }
  return JSON.stringify(o)
}

/** A hello as a real client sends it: a fresh first Noise message under the PSK. */
function validHello(): Record<string, unknown> {
  const hello = new ClientHandshake(normalizeClientAuth(auth), 'peer', null).hello
  expect(hello.v).toBe(PROTOCOL_VERSION)
  return { ...hello }
}

interface Outcome {
  errorCode: string | null
  closeCode: number
}

/** Opens a raw socket, sends `frames` (waiting for the server's Noise message 2 before frames marked afterWelcome), and reports how the server ended it. */
function raw(frames: { data: Buffer | string; binary: boolean; afterWelcome?: boolean }[]): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(server.url, { maxPayload: WS_MAX_PAYLOAD * 2, perMessageDeflate: false })
    let errorCode: string | null = null
    const timer = setTimeout(() => {
      ws.terminate()
      reject(new Error(`the server neither answered nor closed: ${String(frames[0]?.data).slice(0, 200)}`))
    }, 10_000)
    const sendUntilWelcome = (from: number): void => {
      for (let i = from; i < frames.length; i++) {
        const f = frames[i]!
        if (f.afterWelcome === true && from === 0) return
        ws.send(f.data, { binary: f.binary })
      }
    }
    ws.on('open', () => sendUntilWelcome(0))
    ws.on('message', (d: Buffer, isBinary) => {
      // The server's binary answer to a hello is Noise message 2: the handshake is under way.
      if (isBinary) {
        const next = frames.findIndex((f) => f.afterWelcome === true)
        if (next >= 0) sendUntilWelcome(next)
        return
      }
      const msg = JSON.parse(d.toString()) as { t: string; code?: string }
      if (msg.t === 'error') errorCode = msg.code ?? 'none'
    })
    ws.on('error', () => undefined)
    ws.on('close', (code) => {
      clearTimeout(timer)
      resolve({ errorCode, closeCode: code })
    })
  })
}

/** An authenticated connection that then sends `payload` sealed; resolves with the error the server closed it with. */
async function sealed(payload: Buffer): Promise<Outcome> {
  const conn = await ControlConnection.client(openSocket(server.url), normalizeClientAuth(auth), 'peer', null)
  conn.setEnvelopeHandler(() => undefined)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no error reply to sealed ${payload.toString().slice(0, 200)}`)), 10_000)
    conn.onClose((info) => {
      clearTimeout(timer)
      resolve({ errorCode: info.error?.code ?? null, closeCode: 0 })
    })
    conn.sendSealedRaw(payload)
  })
}

function validRequests(sessionId: string, from: { address: string; port: number }): Record<string, unknown>[] {
  const offer = { spec: { qos: { class: 'bulk' } }, qpn: 5, psn: 7 }
  const params = { encryption: { suite: 'none', required: false }, encapsulation: { mtu: 1024, udpSourcePort: 0, dscp: 0, ecn: 0, hopLimit: 64 } }
  return [
    { type: 'open-session', sessionId, from, params, maxMtu: 4096, qps: [offer], regions: {} },
    { type: 'add-qps', sessionId, from, qps: [offer] },
    { type: 'remove-qp', sessionId, from, qpn: 5 },
    { type: 'close-session', sessionId, from, reason: 'x' },
    { type: 'rekey', sessionId, from, epoch: 1 },
    { type: 'join-session', sessionId, from, token: 'v4.local.a.b' },
  ]
}

/** Malformed in a way the schema must catch (checked here, so a mutation that happens to be valid is not counted). */
function malformedRequest(valid: Record<string, unknown>): unknown {
  for (;;) {
    const o = structuredClone(valid)
    switch (int(7)) {
      case 0:
        delete o[pick(Object.keys(o).filter((k) => k !== 'type'))]
        break
      case 1:
        o[pick(Object.keys(o))] = pick(WRONG_VALUES)
        break
      case 2:
        o[`x${int(9)}`] = 1
        break
      case 3:
        if (Array.isArray(o.qps)) o.qps = int(2) === 0 ? [] : Array.from({ length: 4097 }, () => ({ spec: {}, qpn: 1, psn: 1 }))
        else o.type = 'delete-everything'
        break
      case 4:
        o.from = { address: int(2) === 0 ? 'a b' : '1.2.3.4', port: int(2) === 0 ? 70000 : -1 }
        break
      case 5:
        o.sessionId = pick(['', 'ZZ', '0'.repeat(31), `${'a'.repeat(32)}!`, 42])
        break
      default:
        if (Array.isArray(o.qps)) (o.qps as Record<string, unknown>[])[0] = { spec: { qos: { weight: 0 }, caps: { maxSendWr: -5 } }, qpn: 2 ** 24, psn: 'x' }
        else o.sessionId = null
    }
    if (!v.safeParse(peerRequestSchema, o).success) return o
  }
}

beforeAll(async () => {
  const { ctxs } = await mockContexts(2)
  ;[a, b] = ctxs as [Context, Context]
  exposeBuffer(a, 4096)
  // 200 raw sockets from one address at once, each of which must get its protocol error (not ERR_BUSY): the
  // pending-handshake budget is raised above that and early drop is off (admission has tests of its own).
  server = await a.listen({ port: 0, auth, handshakeTimeoutMs: 5000, maxConnections: 512, admission: { maxPending: 512, maxPendingPerAddress: 512, earlyDropAt: 512 } })
  await new Promise((r) => setTimeout(r, 50))
  baselineHandles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length
})

afterAll(async () => {
  await b?.close()
  await a?.close()
})

async function inBatches<T>(items: T[], width: number, run: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += width) await Promise.all(items.slice(i, i + width).map(run))
}

describe('fuzzing the control plane', () => {
  let total = 0
  const codes = new Map<string, number>()
  const tally = (o: Outcome): void => {
    total++
    const key = o.errorCode ?? `close ${o.closeCode}`
    codes.set(key, (codes.get(key) ?? 0) + 1)
  }

  it('6,000 malformed frames before authentication: each gets an error frame (or ws close 1009) and a closed socket', async () => {
    const cases: { data: Buffer | string; binary: boolean; afterWelcome?: boolean }[][] = []
    for (let i = 0; i < 1000; i++) cases.push([{ data: bytes(1 + int(300)), binary: true }])
    for (let i = 0; i < 1000; i++) cases.push([{ data: bytes(1 + int(300)).toString('latin1'), binary: false }])
    for (let i = 0; i < 2000; i++) cases.push([{ data: mutate(validHello(), ['t', 'v', 'purpose', 'auth', 'noise']), binary: false }])
    const finish = { t: 'finish', resumeProof: bytes(32).toString('base64url') }
    for (let i = 0; i < 1400; i++) {
      // A valid hello, then a wrong or malformed finish: forged sealed bytes (binary), or text where the sealed finish belongs (its JSON, a mutation, a second hello).
      const forged = int(3) === 0
      const second = pick([JSON.stringify(finish), mutate(finish, ['t', 'resumeProof']), JSON.stringify(validHello()), 'null', '{"t":"req","id":1,"body":{}}'])
      cases.push([{ data: JSON.stringify(validHello()), binary: false }, { data: forged ? bytes(16 + int(200)) : second, binary: forged, afterWelcome: true }])
    }
    for (let i = 0; i < 550; i++) {
      // Out of order: messages that only make sense later or from the other side.
      cases.push([{ data: pick([JSON.stringify(finish), '{"t":"salt"}', '{"t":"res","id":1,"ok":true,"body":{}}', '{"t":"error","code":"ERR_X","message":"m"}', '[]', '1']), binary: false }])
    }
    for (let i = 0; i < 40; i++) cases.push([{ data: Buffer.alloc(MAX_FRAME_BYTES + 1 + int(1000), 0x7b), binary: int(2) === 0 }])
    for (let i = 0; i < 10; i++) cases.push([{ data: Buffer.alloc(WS_MAX_PAYLOAD + 1, 0x20), binary: true }])
    expect(cases.length).toBe(6000)
    await inBatches(cases, 200, async (frames) => {
      const out = await raw(frames)
      tally(out)
      if (out.errorCode === null) expect(out.closeCode, `no error frame for ${String(frames.at(-1)?.data).slice(0, 80)}`).toBe(1009)
      else expect(['ERR_PROTOCOL', 'ERR_AUTH']).toContain(out.errorCode)
    })
  }, 240_000)

  it('4,000 malformed sealed messages after authentication: each gets an error reply and the connection closes', async () => {
    const sessionId = 'ab'.repeat(16)
    const valids = validRequests(sessionId, b.endpoint)
    const payloads: Buffer[] = []
    for (let i = 0; i < 800; i++) payloads.push(bytes(1 + int(200)))
    for (let i = 0; i < 800; i++) payloads.push(Buffer.from(mutate({ t: 'req', id: 1 + int(1000), body: pick(valids) }, ['t', 'id', 'body'])))
    for (let i = 0; i < 1600; i++) payloads.push(Buffer.from(JSON.stringify({ t: 'req', id: 1 + int(1000), body: malformedRequest(pick(valids)) })))
    for (let i = 0; i < 800; i++) payloads.push(Buffer.from(JSON.stringify(pick([{ t: 'res', id: 10_000 + int(100), ok: true, body: { type: 'ack' } }, { t: 'err', id: 99_999, error: { code: 'ERR_X', message: 'm' } }, { t: 'req', id: -1, body: {} }]))))
    await inBatches(payloads, 100, async (p) => {
      const out = await sealed(p)
      tally(out)
      expect(out.errorCode, p.toString().slice(0, 120)).toBe('ERR_PROTOCOL')
    })
  }, 240_000)

  it('afterwards: at least 10,000 frames were refused; nothing leaked; the server still serves a real session', async () => {
    expect(total).toBeGreaterThanOrEqual(10_000)
    console.log(`fuzz: ${total} malformed frames, outcomes ${JSON.stringify(Object.fromEntries(codes))}`)
    await waitFor(() => server.connections === 0 && server.channels.length === 0, 5000, () => `the server to drop every connection (connections ${server.connections}, channels ${server.channels.length})`)
    expect(a.handles).toMatchObject({ qps: 0, sessions: 0 })
    // Sockets closed by either side go from the handle list as their close completes: wait for that (a fixed
    // 200 ms could end first on a loaded host) and name what is left if it does not.
    const activeHandles = (): unknown[] => (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles()
    await waitFor(() => activeHandles().length <= baselineHandles + 2, 5000, () =>
      `active handles back to the baseline ${baselineHandles} (+2): ${activeHandles().length}: ${activeHandles().map((h) => (h as object).constructor?.name).join(', ')}`)
    const session = await b.connect(server.url, { auth, qps: [{}, {}] })
    const src = b.registerMemory(Buffer.from('still serving after the fuzz'), { access: ['local-write'] })
    const region = session.remoteRegions.get('buf')!
    await session.qps[1]!.write(src.slice(0, 28), region)
    await session.close()
    expect(a.handles).toMatchObject({ qps: 0, sessions: 0 })
  })
})
