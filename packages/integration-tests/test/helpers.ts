/** Shared helpers: contexts on a fresh mock fabric, a loopback TCP proxy that can drop or freeze links, error-code assertions. */
import { createServer, connect, type Server, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { expect } from 'vitest'
import { createContext, isRdmaError, type Context, type MemoryRegion } from '@rdma-session/core'
import { MockFabric, mock } from '@rdma-session/provider-mock'

export const PSK = randomBytes(32)

/**
 * Contexts on one mock fabric, all on 127.0.0.1 (ports 5000, 5001, …): the
 * address their control connections come from, which peers bind declared
 * RoCE endpoints to.
 */
export async function mockContexts(n: number, fabric = new MockFabric()): Promise<{ fabric: MockFabric; ctxs: Context[] }> {
  const ctxs: Context[] = []
  for (let i = 0; i < n; i++) ctxs.push(await createContext({ provider: mock({ fabric, address: '127.0.0.1', port: 5000 + i }) }))
  return { fabric, ctxs }
}

/** A region every session of `ctx` exposes as 'buf'. */
export function exposeBuffer(ctx: Context, bytes = 1 << 20): { mr: MemoryRegion; buf: Buffer } {
  const buf = Buffer.alloc(bytes)
  const mr = ctx.registerMemory(buf, { access: ['local-write', 'remote-read', 'remote-write', 'remote-atomic'] })
  ctx.sessions.expose('buf', mr.region(0, bytes))
  return { mr, buf }
}

export async function expectCode(p: Promise<unknown> | (() => Promise<unknown>), code: string): Promise<Error & { code: string; details: Record<string, unknown> }> {
  let err: unknown
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (e) {
    err = e
  }
  expect(err, `expected ${code}`).toBeDefined()
  expect(isRdmaError(err), String(err)).toBe(true)
  expect((err as { code: string }).code, (err as Error).message).toBe(code)
  return err as Error & { code: string; details: Record<string, unknown> }
}

/** Waits until `cond()` holds; after `ms` fails naming `what` (a function is called then, to say what was seen). */
export async function waitFor(cond: () => boolean, ms = 5000, what: string | (() => string) = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'function' ? what() : what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** A TCP proxy on 127.0.0.1 in front of `targetPort`: `drop()` resets every link (a network failure), `blip()` resets only the client side (the server does not notice), `freeze()` stops forwarding (a dead peer). */
export class TcpProxy {
  readonly #server: Server
  readonly #links = new Set<[Socket, Socket]>()
  /** Server-side sockets of links cut by blip(): open and silent. */
  readonly #stale = new Set<Socket>()
  frozen = false
  port = 0
  #closing = false

  /** Where new links go (tests may point it elsewhere between links). */
  constructor(public targetPort: number) {
    this.#server = createServer((client) => {
      if (this.#closing) {
        client.destroy()
        return
      }
      if (this.frozen) {
        // A dead host: accept nothing useful, answer nothing.
        client.on('error', () => undefined)
        this.#links.add([client, client])
        return
      }
      const upstream = connect(this.targetPort, '127.0.0.1')
      const link: [Socket, Socket] = [client, upstream]
      this.#links.add(link)
      for (const s of link) {
        s.on('error', () => undefined)
        s.on('close', () => {
          this.#links.delete(link)
          client.destroy()
          if (!this.#stale.has(upstream)) upstream.destroy()
        })
      }
      client.on('data', (d) => !this.frozen && upstream.write(d))
      upstream.on('data', (d) => !this.frozen && client.write(d))
    })
  }

  async start(): Promise<string> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', () => r()))
    this.port = (this.#server.address() as { port: number }).port
    return `ws://127.0.0.1:${this.port}`
  }

  drop(): void {
    for (const [a, b] of this.#links) {
      a.resetAndDestroy?.() ?? a.destroy()
      b.resetAndDestroy?.() ?? b.destroy()
    }
    this.#links.clear()
  }

  /** Resets the client side of every link and keeps the server side open and silent, as a link that failed where only the client notices. */
  blip(): void {
    for (const [client, upstream] of this.#links) {
      this.#stale.add(upstream)
      client.resetAndDestroy?.() ?? client.destroy()
    }
    this.#links.clear()
  }

  freeze(): void {
    this.frozen = true
  }

  async close(): Promise<void> {
    this.#closing = true
    const closed = new Promise<void>((r) => this.#server.close(() => r()))
    this.drop()
    for (const s of this.#stale) s.destroy()
    this.#stale.clear()
    await closed
  }
}
