/**
 * Data checks and the two roles of an rdma_cm session between two processes (the rxe guest and
 * the host) or two contexts of one process, on any provider with core's rdma_cm hook. Used by
 * guest-cm-session.ts (provider-verbs in the guest) and softroce-session-child.ts (provider-softroce
 * on the host). Neither side knows the other's QP order, so each QP's check is symmetric: both
 * ends SEND their label and a 32-byte target (addr, rkey), WRITE their label into the peer's
 * target, then SEND "done"; RC ordering makes the WRITE visible before "done" arrives. The QPs
 * rdma_cm makes retry RNR NAKs without limit (rnr_retry 7), so which end posts first does not matter.
 */
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { encodeCmPrivateData, isRdmaError, type CmServer, type Context, type QueuePair, type Session, type SessionParamsSpec } from '@rdma-session/core'

const TARGET = 32
const MSG = 64

export interface QpCheck {
  /** The label this end sent and wrote. */
  readonly sent: string
  /** The label the peer sent on this QP. */
  readonly peer: string
  /** The peer's WRITE put its label into this end's target. */
  readonly written: boolean
}

/** Does the symmetric check on one connected QP. */
export async function checkQp(ctx: Context, qp: QueuePair, label: string): Promise<QpCheck> {
  const rx = ctx.registerMemory(Buffer.alloc(2 * MSG), { access: ['local-write'] })
  const target = ctx.registerMemory(Buffer.alloc(TARGET), { access: ['local-write', 'remote-write'] })
  const tx = ctx.registerMemory(Buffer.alloc(MSG + TARGET + 4))
  try {
    const info = qp.recv(rx.slice(0, MSG))
    const done = qp.recv(rx.slice(MSG, MSG))
    done.catch(() => {})
    const t = target.region()
    const out = Buffer.from(tx.bytes.buffer, tx.bytes.byteOffset, tx.length)
    out.writeBigUInt64LE(BigInt(t.addr), 0)
    out.writeUInt32LE(t.rkey, 8)
    out.write(label.slice(0, MSG - 12), 12, 'latin1')
    await qp.send(tx.slice(0, MSG))
    const wc = await info
    const msg = Buffer.from(rx.bytes.subarray(0, wc.byteLen))
    const peer = msg.subarray(12).toString('latin1').replace(/\0+$/, '')
    const remote = { addr: Number(msg.readBigUInt64LE(0)), rkey: msg.readUInt32LE(8), length: TARGET }
    out.fill(0, MSG, MSG + TARGET)
    out.write(label.slice(0, TARGET), MSG, 'latin1')
    await qp.write(tx.slice(MSG, TARGET), remote)
    out.write('done', MSG + TARGET, 'latin1')
    await qp.send(tx.slice(MSG + TARGET, 4))
    await done
    const written = Buffer.from(target.bytes).toString('latin1').replace(/\0+$/, '') === peer.slice(0, TARGET)
    return { sent: label, peer, written }
  } finally {
    rx.deregister()
    target.deregister()
    tx.deregister()
  }
}

/** Resolves within `ms` or rejects with `what`. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms / 1000} s`)), ms)))])
  } finally {
    clearTimeout(timer)
  }
}

/** How the session ends: `local` closes it when the checks are done, `remote` waits for the peer to. */
export type Closer = 'local' | 'remote'

/** What the connecting side reports. */
export interface ConnectReport {
  readonly sessionId: string
  readonly qps: number
  readonly checks: QpCheck[]
  /** A join naming a session nobody has, and one naming this session with a wrong token: the codes they got. */
  readonly refusals: string[]
  /** The QP added by session ID and token over CM after the refusals. */
  readonly added: QpCheck
  readonly sizeAfterAdd: number
  /** Every QP's traffic class (the session's DSCP and ECN). */
  readonly trafficClasses: number[]
  readonly closedBy: Closer
  readonly closeReason: string
  readonly qpsLeft: number
}

/** What the listening side reports. */
export interface ListenReport {
  readonly sessionId: string
  readonly remote: string
  readonly checks: QpCheck[]
  readonly refused: Record<string, number>
  /** Every QP's traffic class: inherited from the connecting side's session parameters. */
  readonly trafficClasses: number[]
  readonly closedBy: Closer
  readonly closeReason: string
  readonly qpsLeft: number
}

const JOIN_LIMIT_MS = 60_000

async function closeOrAwait(session: Session, closer: Closer): Promise<string> {
  if (closer === 'local') {
    await session.close('checks done')
    return 'checks done'
  }
  if (session.closed) return 'closed before waiting'
  const [reason] = (await within(once(session, 'closed'), JOIN_LIMIT_MS, 'the peer closing the session')) as [unknown]
  return String(reason)
}

async function refusalCode(ctx: Context, url: string, sessionId: string): Promise<string> {
  try {
    const c = await ctx.connectQp(url, { privateData: encodeCmPrivateData({ kind: 'join', sessionId, token: randomBytes(30) }) })
    await c.disconnect().catch(() => {})
    await c.qp?.close()
    return 'accepted'
  } catch (err) {
    return isRdmaError(err) ? `${err.code}/${String(err.details.cmRefusal)}` : `uncoded: ${String(err)}`
  }
}

/** Waits (bounded) for handles.qps to reach 0: the peer's DREQs close the QPs a little after the session. */
async function qpsLeft(ctx: Context): Promise<number> {
  const deadline = Date.now() + 10_000
  while (ctx.handles.qps > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  return ctx.handles.qps
}

/**
 * The connecting side: a session of `n` QPs over rdma_cm, every QP checked, two wrong joins, one
 * QP added by ID and token, then the session ends (`closer`). `retryMs`: connect again on refusals
 * and timeouts this long (the listener may not be up yet).
 */
export async function connectSide(ctx: Context, url: string, label: string, n: number, closer: Closer, retryMs = 0, params: SessionParamsSpec = { encryption: 'none' }): Promise<ConnectReport> {
  const deadline = Date.now() + retryMs
  let session: Session
  for (;;) {
    try {
      session = await ctx.connect(url as `rdma-cm://${string}`, { params, qps: Array.from({ length: n }, () => ({})) })
      break
    } catch (err) {
      if (Date.now() > deadline || !isRdmaError(err) || !['ERR_CONNECTION_REFUSED', 'ERR_TIMEOUT'].includes(err.code)) throw err
    }
  }
  const checks = await Promise.all(session.qps.map((qp, i) => checkQp(ctx, qp, `${label}-${i}`)))
  const refusals = [await refusalCode(ctx, url, randomBytes(16).toString('hex')), await refusalCode(ctx, url, session.id)]
  const [qp] = await session.addQps([{}])
  const added = await checkQp(ctx, qp!, `${label}-${n}`)
  const sizeAfterAdd = session.size
  const trafficClasses = session.qps.map((q) => q.qos.trafficClass)
  const closeReason = await closeOrAwait(session, closer)
  return { sessionId: session.id, qps: n, checks, refusals, added, sizeAfterAdd, trafficClasses, closedBy: closer, closeReason, qpsLeft: await qpsLeft(ctx) }
}

/**
 * The listening side: `server`'s first session; every QP checked as it arrives (`total` of them:
 * the first ones and the added one), then the session ends (`closer`).
 */
export async function listenSide(ctx: Context, server: CmServer, label: string, total: number, closer: Closer): Promise<ListenReport> {
  const [session] = (await within(once(server, 'session'), JOIN_LIMIT_MS, 'a session over rdma_cm')) as [Session]
  const seen = new Set<QueuePair>()
  const jobs: Promise<QpCheck>[] = []
  let all!: () => void
  const allSeen = new Promise<void>((resolve) => (all = resolve))
  const take = (): void => {
    for (const qp of session.qps) {
      if (seen.has(qp)) continue
      seen.add(qp)
      jobs.push(checkQp(ctx, qp, `${label}-${jobs.length}`))
    }
    if (jobs.length >= total) all()
  }
  session.on('qp-added', take)
  take()
  await within(allSeen, JOIN_LIMIT_MS, `${total} QPs in the session`)
  session.off('qp-added', take)
  const checks = await Promise.all(jobs)
  const refused = { ...server.refused }
  const trafficClasses = session.qps.map((q) => q.qos.trafficClass)
  const closeReason = await closeOrAwait(session, closer)
  server.close()
  return { sessionId: session.id, remote: session.remote.address, checks, refused, trafficClasses, closedBy: closer, closeReason, qpsLeft: await qpsLeft(ctx) }
}
