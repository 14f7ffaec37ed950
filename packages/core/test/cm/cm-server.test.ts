// CmServer (ctx.listen({ cm })) against a scripted connection manager: what the hook is asked and
// when, and the listener's bookkeeping no real network makes easy to reach: a join whose REQ
// arrives before the RTU of its session's opening connection, join reservations given back when
// their connections never come, and the bound on requests waiting for their RTU.
import { describe, expect, it } from 'vitest'
import {
  createContext, decodeCmPrivateData, encodeCmPrivateData,
  type CmConnectionHandle, type CmConnectRequest, type CmListenParams, type CmRequestDecision, type Context, type Provider, type ProviderConnectionManager, type QueuePair, type Session,
} from '../../src/index.js'
import { scriptedProvider } from '../fakes/scripted-provider.js'

class ScriptedCm implements ProviderConnectionManager<QueuePair> {
  params: CmListenParams<QueuePair> | null = null
  closed = false
  readonly #ready: CmConnectionHandle<QueuePair>[] = []
  readonly #waiting: ((c: CmConnectionHandle<QueuePair>) => void)[] = []
  listen(params: CmListenParams<QueuePair>) {
    this.params = params
    return {
      port: params.port,
      closed: false,
      accept: () => new Promise<CmConnectionHandle<QueuePair>>((resolve) => {
        const c = this.#ready.shift()
        if (c === undefined) this.#waiting.push(resolve)
        else resolve(c)
      }),
      close: () => {},
    }
  }
  connect(): Promise<CmConnectionHandle<QueuePair>> {
    throw new Error('not scripted')
  }
  close(): void {
    this.closed = true
  }
  /** A request as the provider would put it to the listener. */
  request(remotePort: number, privateData: Uint8Array): Promise<CmRequestDecision<QueuePair>> {
    const r: CmConnectRequest = { remote: { address: '10.0.0.2', port: remotePort }, local: { address: '10.0.0.1', port: 7471 }, privateData }
    return Promise.resolve(this.params!.onRequest!(r))
  }
  /** The connection of an accepted request is established (RTU): accept() yields it. */
  establish(ctx: Context, remotePort: number, privateData: Uint8Array): CmConnectionHandle<QueuePair> {
    const c: CmConnectionHandle<QueuePair> = {
      qp: ctx.createQp(), remote: { address: '10.0.0.2', port: remotePort }, local: { address: '10.0.0.1', port: 7471 }, privateData,
      disconnected: new Promise(() => {}), disconnect: async () => {},
    }
    const w = this.#waiting.shift()
    if (w === undefined) this.#ready.push(c)
    else w(c)
    return c
  }
}

async function open(): Promise<{ ctx: Context; cm: ScriptedCm; calls: number[] }> {
  const cm = new ScriptedCm()
  const calls: number[] = []
  const provider = Object.assign(scriptedProvider(), {
    createConnectionManager: (_ctx: unknown, options?: Readonly<Record<string, unknown>>) => {
      calls.push(Number(options?.tag ?? 0))
      return cm
    },
  }) as Provider
  const ctx = await createContext({ provider })
  return { ctx, cm, calls }
}

const OPEN = encodeCmPrivateData({ kind: 'open', trafficClass: 0, mtu: 1024 })
const tick = (): Promise<void> => new Promise((r) => setImmediate(r))

function acceptOf(d: CmRequestDecision<QueuePair>): { sessionId: string; token: Uint8Array } {
  if (d === undefined || d.reject === true || d.privateData === undefined) throw new Error('not accepted with private data')
  const m = decodeCmPrivateData(d.privateData)
  if (m.plain || !('message' in m) || m.message.kind !== 'accept') throw new Error('no accept message')
  return m.message
}

describe('CmServer with a scripted connection manager', () => {
  it('creates the manager once through the hook, closes it with the context; no hook is ERR_UNSUPPORTED', async () => {
    const { ctx, cm, calls } = await open()
    expect(ctx.connectionManager({ tag: 1 })).toBe(cm)
    expect(ctx.connectionManager({ tag: 2 })).toBe(cm)
    await ctx.listen({ cm: { port: 7471 } })
    expect(calls).toEqual([1])
    await ctx.close()
    expect(cm.closed).toBe(true)
    const bare = await createContext({ provider: scriptedProvider() })
    expect(() => bare.connectionManager()).toThrow(expect.objectContaining({ code: 'ERR_UNSUPPORTED' }))
    await expect(bare.listen({ cm: { port: 1 } })).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' })
    await expect(bare.connect('rdma-cm://10.0.0.1:1', { params: { encryption: 'none' } })).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' })
    await bare.close()
  })

  it("a join whose REQ comes before its session's opening RTU waits for it, then joins", async () => {
    const { ctx, cm } = await open()
    const server = await ctx.listen({ cm: { port: 7471 } })
    const { sessionId, token } = acceptOf(await cm.request(1000, OPEN))
    const join = encodeCmPrivateData({ kind: 'join', sessionId, token })
    let decided: CmRequestDecision<QueuePair> | 'pending' = 'pending'
    void cm.request(1001, join).then((d) => (decided = d))
    for (let i = 0; i < 5; i++) await tick()
    expect(decided).toBe('pending')
    const sessions: Session[] = []
    server.on('session', (s) => sessions.push(s))
    cm.establish(ctx, 1000, OPEN)
    await expect.poll(() => decided).not.toBe('pending')
    expect(decided).toMatchObject({ qp: { defaultTrafficClass: 0 } })
    expect(sessions.map((s) => s.id)).toEqual([sessionId])
    cm.establish(ctx, 1001, join)
    await expect.poll(() => sessions[0]!.size).toBe(2)
    await ctx.close()
  })

  it('gives back the QP budget of joins that never connect, and keeps at most 4 x backlog requests waiting', async () => {
    const { ctx, cm } = await open()
    const server = await ctx.listen({ cm: { port: 7471, backlog: 1, maxQpsPerSession: 1 } })
    server.on('connection', () => {})
    const { sessionId, token } = acceptOf(await cm.request(1000, OPEN))
    cm.establish(ctx, 1000, OPEN)
    await expect.poll(() => ctx.sessions.list().length).toBe(1)
    const join = encodeCmPrivateData({ kind: 'join', sessionId, token })
    expect(await cm.request(2000, join)).toMatchObject({ qp: {} })
    // the budget (1) is reserved by the join waiting for its RTU
    const refused = await cm.request(2001, join)
    expect(refused).toMatchObject({ reject: true })
    expect(decodeCmPrivateData((refused as { privateData: Uint8Array }).privateData)).toMatchObject({ message: { kind: 'refuse', code: 5 } })
    // plain peers' requests that never connect push the oldest waiting ones out (4 x backlog = 4)
    for (let p = 3000; p < 3004; p++) expect(await cm.request(p, Buffer.from('rping'))).toBeUndefined()
    // the join that never connected gave its QP back
    expect(await cm.request(2002, join)).toMatchObject({ qp: {} })
    cm.establish(ctx, 2002, join)
    await expect.poll(() => ctx.sessions.get(sessionId).size).toBe(2)
    // its stale twin's RTU, if it ever came, finds nothing waiting: dropped, not adopted
    cm.establish(ctx, 2000, join)
    for (let i = 0; i < 5; i++) await tick()
    expect(ctx.sessions.get(sessionId).size).toBe(2)
    expect(server.refused.TOKEN_EXHAUSTED).toBe(1)
    await ctx.close()
  })
})
