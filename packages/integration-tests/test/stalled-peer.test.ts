/**
 * Half-dead sessions (issue 23, item 6): a child process on provider-softroce is stopped
 * (SIGSTOP) for 5 s or 40 s while this process writes to it over a session. The writer's QP
 * exhausts its retries; both ends must end consistent: the failed pair removed at both ends
 * (and replaced by the initiator) or the session closed at both ends, never a QP in RTS facing
 * one that is gone or in ERR. The child is the server (listen) or the client (connect).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createContext, type Context, type QpFailure, type Session } from '@rdma-session/core'
import { softroce } from '@rdma-session/provider-softroce'
import { PSK, waitFor } from './helpers.js'
import { JsonProcess, stopAll } from './processes.js'

const auth = { psk: PSK }
const cleanups: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  await stopAll()
  for (const c of cleanups.splice(0).reverse()) await c()
})

interface ChildQp {
  readonly qpn: number
  readonly remoteQpn: number | null
  readonly state: string
}
interface ChildSession {
  readonly id: string
  readonly closed: boolean
  readonly qps: readonly ChildQp[]
  readonly failures: readonly QpFailure[]
}

const pattern = (len: number, seed: number): Buffer => Buffer.from(Array.from({ length: len }, (_, i) => (i * 13 + seed) & 0xff))
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

interface Setup {
  readonly ctx: Context
  readonly child: JsonProcess
  /** This process's end of the session. */
  readonly session: Session
}

/** This process and a child, with one session of one QP between them; `stopped` is the child's role. */
async function setup(stopped: 'server' | 'client'): Promise<Setup> {
  const ctx = await createContext({ provider: softroce({ address: '127.0.0.1', port: 0 }) })
  cleanups.push(() => ctx.close())
  const psk = PSK.toString('hex')
  if (stopped === 'server') {
    const child = new JsonProcess('node', ['stall-peer.mjs', 'listen', psk], {}, 'stopped server')
    const { url } = (await child.wait('ready')) as unknown as { url: string }
    return { ctx, child, session: await ctx.connect(url, { auth, qps: [{}] }) }
  }
  const server = await ctx.listen({ host: '127.0.0.1', port: 0, auth })
  const opened = new Promise<Session>((resolve) => ctx.sessions.once('session', resolve))
  const child = new JsonProcess('node', ['stall-peer.mjs', 'connect', server.url, psk], {}, 'stopped client')
  await child.wait('ready')
  return { ctx, child, session: await opened }
}

async function childSession(s: Setup): Promise<ChildSession | undefined> {
  const { sessions } = (await s.child.ask('state', 'state')) as unknown as { sessions: ChildSession[] }
  return sessions.find((c) => c.id === s.session.id)
}

/** Writes 4 KiB at `offset` of the child's 'buf' over the session's first QP. */
async function write(s: Setup, offset: number, seed: number): Promise<void> {
  const src = pattern(4096, seed)
  const mr = s.ctx.registerMemory(src, { access: ['local-write'] })
  const region = s.session.remoteRegions.get('buf')!
  try {
    await s.session.qps[0]!.write(mr.slice(), { addr: region.addr + offset, rkey: region.rkey, length: src.length })
  } finally {
    mr.deregister()
  }
}

const settled = (failures: readonly QpFailure[]): boolean => failures.every((f) => f.action === 'removed' || f.action === 'replaced')

/**
 * Both ends agree and are done repairing: the session closed at both, or open at both with the
 * same QP pairs, every one in RTS, and no removal or replacement under way.
 */
function consistent(mine: Session, theirs: ChildSession | undefined): boolean {
  if (mine.closed || theirs === undefined || theirs.closed) return mine.closed && (theirs === undefined || theirs.closed)
  if (!settled(mine.stats().failures) || !settled(theirs.failures)) return false
  const here = mine.qps.map((q) => `${q.qpn}-${String(q.remoteQpn)}-${q.state}`).sort()
  const there = theirs.qps.map((q) => `${String(q.remoteQpn)}-${q.qpn}-${q.state}`).sort()
  return here.length === there.length && here.every((x, i) => x === there[i] && x.endsWith('-RTS'))
}

function describeEnds(mine: Session, theirs: ChildSession | undefined): string {
  const side = mine.closed ? 'closed' : { qps: mine.qps.map((q) => [q.qpn, q.remoteQpn, q.state]), failures: mine.stats().failures }
  return JSON.stringify({ here: side, child: theirs ?? 'no such session' })
}

/** Stops the child for `stopMs`, fails a WRITE to it meanwhile, and waits for both ends to agree. */
async function stall(s: Setup, stopMs: number, settleMs: number): Promise<ChildSession | undefined> {
  await write(s, 0, 1)
  const failedQp = s.session.qps[0]!
  s.child.child.kill('SIGSTOP')
  const stoppedAt = performance.now()
  let status = 'SUCCESS'
  await write(s, 4096, 2).catch((err: { status?: string; code?: string }) => (status = err.status ?? String(err.code)))
  expect(status, 'the WRITE to the stopped peer exhausts its retries').toBe('RETRY_EXC_ERR')
  await waitFor(() => !s.session.has(failedQp), 10_000, 'this end to drop its failed QP')
  expect(s.session.stats().failures[0]).toMatchObject({ qpn: failedQp.qpn, reason: expect.stringMatching(/RETRY_EXC_ERR|retr(y|ies)/i), detectedBy: 'local' })
  // The stop's length (not an assertion): the child sleeps this long in all.
  await sleep(Math.max(0, stopMs - (performance.now() - stoppedAt)))
  s.child.child.kill('SIGCONT')
  const deadline = performance.now() + settleMs
  for (;;) {
    const theirs = await childSession(s)
    if (consistent(s.session, theirs)) return theirs
    if (performance.now() > deadline) throw new Error(`the two ends did not agree within ${settleMs} ms of SIGCONT: ${describeEnds(s.session, theirs)}`)
    await sleep(100)
  }
}

/** After a repair, the session carries data again: a WRITE lands byte-exact in the child's memory. */
async function carriesData(s: Setup): Promise<void> {
  await write(s, 8192, 3)
  const checked = (await s.child.ask('check 8192 4096 3', 'checked')) as unknown as { ok: boolean }
  expect(checked.ok, 'the WRITE over the replacement QP landed byte-exact').toBe(true)
}

describe.each(['server', 'client'] as const)('the %s end stopped (SIGSTOP)', (stopped) => {
  it('for 5 s: the failed QP is dropped at both ends, the initiator replaces it, data moves again', async () => {
    const s = await setup(stopped)
    const theirs = await stall(s, 5_000, 30_000)
    expect(s.session.closed, 'a 5 s stall is within every control-plane grace: the session stays').toBe(false)
    expect(s.session.size, describeEnds(s.session, theirs)).toBe(1)
    const [mine] = s.session.stats().failures
    const seenThere = theirs!.failures
    // The initiator replaces: this end when the child is the server, the child otherwise.
    if (stopped === 'server') expect(mine).toMatchObject({ action: 'replaced', replacedBy: s.session.qps[0]!.qpn })
    else expect(seenThere.some((f) => f.detectedBy === 'peer' && f.action === 'replaced'), describeEnds(s.session, theirs)).toBe(true)
    expect(seenThere.filter((f) => f.detectedBy === 'peer'), 'the child learned of the failure over the control channel').toHaveLength(1)
    await carriesData(s)
  }, 90_000)

  it('for 40 s: both ends end consistent (repaired, or the session closed at both)', async () => {
    const s = await setup(stopped)
    const theirs = await stall(s, 40_000, 60_000)
    console.info(`[stalled ${stopped} 40 s] ${describeEnds(s.session, theirs)}`)
    if (!s.session.closed && s.session.size > 0) await carriesData(s)
  }, 150_000)
})
