/**
 * rping's protocol (rdma-core librdmacm/examples/rping.c) on softroce, for the interop tests:
 *   client sends its start buffer (addr/rkey/len, 16 bytes big-endian), server RDMA READs it,
 *   server sends "go ahead", client sends its sink buffer, server RDMA WRITEs the data there,
 *   server sends "go ahead"; the client compares start and sink (rping -V), and after `count`
 *   pings disconnects.
 */
import type { Context, CreateQpOptions, MemoryRegion, QueuePair } from '@rdma-session/core'

/** What rping needs of a connection manager: provider-softroce's and provider-verbs' both fit. */
export interface RpingConnection {
  readonly qp: QueuePair | null
  readonly state: string
  disconnect(): Promise<void>
  readonly disconnected: Promise<{ readonly by: string }>
}
export interface RpingCm {
  connect(o: { host: string; port: number; qp?: CreateQpOptions; prepare?: (qp: QueuePair) => void }): Promise<RpingConnection>
}
export interface RpingListener {
  accept(): Promise<RpingConnection>
}
/** listen() options rping's server gives. */
export interface RpingListenOptions {
  readonly port: number
  readonly qp: CreateQpOptions
  readonly prepare: (qp: QueuePair) => void
}

const INFO = 16

/** A receive still posted when the QP leaves RTS completes with WR_FLUSH_ERR: whoever awaits it sees that, nobody else must. */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {})
  return p
}

function info(mr: MemoryRegion, size: number): Buffer {
  const b = Buffer.alloc(INFO)
  b.writeBigUInt64BE(BigInt(mr.addr), 0)
  b.writeUInt32BE(mr.rkey, 8)
  b.writeUInt32BE(size, 12)
  return b
}

/** rping_test_client's buffer for ping `n`: "rdma-ping-%d: " then letters, NUL at the end. */
export function pingData(n: number, size: number): Buffer {
  const b = Buffer.alloc(size)
  const head = Buffer.from(`rdma-ping-${n}: `)
  head.copy(b, 0, 0, Math.min(head.length, size))
  let c = 65 + (n % 58)
  for (let i = head.length; i < size; i++) {
    b[i] = c
    c++
    if (c > 122) c = 65
  }
  b[size - 1] = 0
  return b
}

interface Buffers {
  recv: MemoryRegion
  send: MemoryRegion
  rdma: MemoryRegion
  start: MemoryRegion | null
}

function buffers(ctx: Context, size: number, client: boolean): Buffers {
  return {
    recv: ctx.registerMemory(Buffer.alloc(INFO), { access: ['local-write'] }),
    send: ctx.registerMemory(Buffer.alloc(INFO)),
    rdma: ctx.registerMemory(Buffer.alloc(size), { access: ['local-write', 'remote-read', 'remote-write'] }),
    start: client ? ctx.registerMemory(Buffer.alloc(size), { access: ['local-write', 'remote-read', 'remote-write'] }) : null,
  }
}

function release(b: Buffers): void {
  for (const mr of [b.recv, b.send, b.rdma, b.start]) mr?.deregister()
}

export interface RpingResult {
  readonly pings: number
  readonly verified: number
  readonly lines: string[]
  readonly disconnect: string
  /** Client: the last connect() attempt, REQ to established (ms). */
  readonly connectMs?: number
}

/** rping -c -V -C count: connects, pings, verifies, disconnects. */
export async function rpingClient(ctx: Context, cm: RpingCm, o: { host: string; port: number; count: number; size?: number; connectTimeoutMs?: number }): Promise<RpingResult> {
  const size = o.size ?? 64
  const b = buffers(ctx, size, true)
  let recv: Promise<unknown> | null = null
  let conn: RpingConnection | null = null
  const deadline = Date.now() + (o.connectTimeoutMs ?? 0)
  // The server may not listen yet: a REJ (invalid service ID) means try again.
  let connectMs = 0
  for (;;) {
    const t0 = performance.now()
    try {
      conn = await cm.connect({ host: o.host, port: o.port, qp: { caps: { maxSendWr: 16, maxRecvWr: 2 } }, prepare: (qp) => { recv = quiet(qp.recv(b.recv.slice(0, INFO))) } })
      connectMs = performance.now() - t0
      break
    } catch (err) {
      if (Date.now() > deadline) throw err
      await new Promise((r) => setTimeout(r, 200))
    }
  }
  const qp = conn.qp!
  const lines: string[] = []
  let verified = 0
  const debug = process.env.RPING_DEBUG ? (m: string) => console.error(`[rping ${Date.now() % 100000}] ${m}`) : () => {}
  const next = async (): Promise<void> => {
    debug(`waiting for recv ${recv === null ? 'null' : 'promise'}`)
    const wc = await recv
    debug(`recv done ${JSON.stringify(wc)}`)
    recv = quiet(qp.recv(b.recv.slice(0, INFO)))
  }
  for (let ping = 0; ping < o.count; ping++) {
    const data = pingData(ping, size)
    b.start!.bytes.set(data)
    b.rdma.bytes.fill(0)
    b.send.bytes.set(info(b.start!, size))
    debug(`send start info ${Buffer.from(b.send.bytes).toString('hex')}`)
    await qp.send(b.send.slice(0, INFO))
    await next()
    b.send.bytes.set(info(b.rdma, size))
    await qp.send(b.send.slice(0, INFO))
    await next()
    if (Buffer.compare(Buffer.from(b.start!.bytes), Buffer.from(b.rdma.bytes)) === 0) verified++
    lines.push(`ping data: ${Buffer.from(b.rdma.bytes.subarray(0, size - 1)).toString('latin1')}`)
  }
  // The receive still posted completes with WR_FLUSH_ERR when the QP leaves RTS.
  void (recv as Promise<unknown> | null)?.catch(() => {})
  await conn.disconnect()
  const how = await conn.disconnected
  await qp.close()
  release(b)
  return { pings: o.count, verified, lines, disconnect: how.by, connectMs }
}

async function orDisconnect<T>(p: Promise<T>, conn: RpingConnection): Promise<T | null> {
  const r = await Promise.race([p.then((v) => ({ v }), (e: unknown) => ({ e })), conn.disconnected.then(() => null)])
  if (r === null) {
    void p.catch(() => {})
    return null
  }
  if ('e' in r) {
    if (conn.state !== 'ESTABLISHED') return null
    throw r.e
  }
  return r.v
}

/** Per accepted QP: rping's buffers and the receive posted before the REP went out. */
export type RpingServerState = WeakMap<QueuePair, { b: Buffers; recv: Promise<unknown> }>

/** listen() options that give each accepted QP rping's buffers and its first receive (posted in INIT). */
export function rpingListenOptions(ctx: Context, port: number, size = 64 * 1024): { options: RpingListenOptions; state: RpingServerState } {
  const state: RpingServerState = new WeakMap()
  return {
    state,
    options: {
      port,
      qp: { caps: { maxSendWr: 16, maxRecvWr: 2 } },
      prepare: (qp) => {
        const b = buffers(ctx, size, false)
        const recv = qp.recv(b.recv.slice(0, INFO))
        recv.catch(() => {})
        state.set(qp, { b, recv })
      },
    },
  }
}

/** rping -s: serves one connection from `listener` until the client disconnects. */
export async function rpingServer(listener: RpingListener, state: RpingServerState): Promise<RpingResult> {
  const conn = await listener.accept()
  const qp = conn.qp!
  const { b, recv: first } = state.get(qp)!
  const lines: string[] = []
  let recv: Promise<unknown> = first
  let pings = 0
  for (;;) {
    if ((await orDisconnect(recv, conn)) === null) break
    const r = Buffer.from(b.recv.bytes)
    const remote = { addr: Number(r.readBigUInt64BE(0)), rkey: r.readUInt32BE(8), length: r.readUInt32BE(12) }
    recv = quiet(qp.recv(b.recv.slice(0, INFO)))
    const len = Math.min(remote.length, b.rdma.length)
    if ((await orDisconnect(qp.read(b.rdma.slice(0, len), { ...remote, length: len }), conn)) === null) break
    const nul = b.rdma.bytes.indexOf(0)
    lines.push(`server ping data: ${Buffer.from(b.rdma.bytes.subarray(0, nul < 0 ? len : nul)).toString('latin1')}`)
    if ((await orDisconnect(qp.send(b.send.slice(0, INFO)), conn)) === null) break
    if ((await orDisconnect(recv, conn)) === null) break
    const w = Buffer.from(b.recv.bytes)
    const sink = { addr: Number(w.readBigUInt64BE(0)), rkey: w.readUInt32BE(8), length: w.readUInt32BE(12) }
    recv = quiet(qp.recv(b.recv.slice(0, INFO)))
    const wlen = Math.min((nul < 0 ? len : nul) + 1, sink.length)
    if ((await orDisconnect(qp.write(b.rdma.slice(0, wlen), { ...sink, length: wlen }), conn)) === null) break
    pings++
    // The client may disconnect as soon as it has this go-ahead: its completion can be a flush.
    if ((await orDisconnect(qp.send(b.send.slice(0, INFO)), conn)) === null) break
  }
  const how = await conn.disconnected
  void recv.catch(() => {})
  await qp.close()
  release(b)
  return { pings, verified: pings, lines, disconnect: how.by }
}
