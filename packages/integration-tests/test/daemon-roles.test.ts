/**
 * Roles in the session daemon, with separate processes: the creator of a
 * session (process p1) and a process that speaks the daemon protocol directly
 * (the intruder). A joiner cannot re-register as the creator, close the
 * creator's session, rekey it, remove the creator's QPs, name itself creator or
 * grant itself rights; its close is its leaving. A process that joins with a
 * token the creator granted with 'close' can close the session for everyone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Session } from '@rdma-session/core'
import { JsonProcess, type Event } from './processes.js'
import { waitFor } from './helpers.js'
import { startDaemonHost, type DaemonHost } from './daemon-host.js'

let host: DaemonHost

beforeAll(async () => {
  host = await startDaemonHost(1 << 20)
})

afterAll(async () => {
  await host?.stop()
})

/** Sends raw daemon requests from the intruder process; resolves with its answer. */
function requester(intruder: JsonProcess): (req: object) => Promise<Event> {
  let n = 0
  return async (req) => {
    const id = ++n
    intruder.send(JSON.stringify({ id, req }))
    return intruder.wait('answer', (e) => e.id === id)
  }
}

/** A process that creates a session through the daemon, and the peer's side of that session. */
async function creator(): Promise<{ p1: JsonProcess; ready: Event; sessionId: string; peerSession: Session }> {
  const p1 = new JsonProcess('node', ['session-process.mjs', 'create', host.socketPath, host.tokenFile, host.server.url, host.psk.toString('hex')], {}, 'creator')
  const ready = await p1.wait('ready')
  const sessionId = String(ready.sessionId)
  await waitFor(() => host.peer.sessions.list().includes(sessionId), 5000, 'the peer has the session')
  return { p1, ready, sessionId, peerSession: host.peer.sessions.get(sessionId) }
}

/** A process that joins the session to the peer through the daemon (with `token`, the rights it grants) and adds two QPs. */
function joiner(name: string, token?: string): JsonProcess {
  const remote = `${host.peer.endpoint.address}:${host.peer.endpoint.port}`
  return new JsonProcess('node', ['session-process.mjs', 'join', host.socketPath, host.tokenFile, remote, ...(token === undefined ? [] : [token])], {}, name)
}

function expectRefused(answer: Event, code: string, message?: RegExp): void {
  expect(answer, JSON.stringify(answer)).toMatchObject({ ok: false, code })
  if (message !== undefined) expect(String(answer.message)).toMatch(message)
}

describe('session daemon roles (two processes)', () => {
  it('a joiner manages only its own QPs and cannot take over the creator; a granted close right closes the session for everyone', async () => {
    const { socketPath, tokenFile } = host
    const { p1, ready: r1, sessionId, peerSession } = await creator()
    const creatorQpn = peerSession.qps[0]!.qpn

    const intruder = new JsonProcess('node', ['daemon-intruder.mjs', socketPath, tokenFile, '45001'], {}, 'intruder')
    const me = (await intruder.wait('ready')).endpoint as { address: string; port: number }
    const ask = requester(intruder)

    // The attack of issue 23: register again, as the creator's endpoint.
    expectRefused(await ask({ op: 'register', endpoint: r1.endpoint, pid: 1 }), 'ERR_INVALID_ARGUMENT', /registered already/)

    // Join as any local process may: it gets a joiner's rights.
    const token = await ask({ op: 'token', sessionId })
    expect(token.ok).toBe(true)
    const presented = String((token.reply as { token: string }).token).split('#')[0]!
    expect((await ask({ op: 'relay', sessionId, request: { type: 'join-session', sessionId, from: me, token: presented } })).ok).toBe(true)

    const relay = (request: object): Promise<Event> => ask({ op: 'relay', sessionId, request: { sessionId, from: me, ...request } })
    expectRefused(await ask({ op: 'relay', sessionId, request: { type: 'close-session', sessionId, from: r1.endpoint, reason: 'hijack' } }), 'ERR_INVALID_ARGUMENT', /own endpoint/)
    expectRefused(await relay({ type: 'rekey', epoch: 1 }), 'ERR_JOIN_TOKEN', /'rekey' right/)
    expectRefused(await relay({ type: 'remove-qp', qpn: creatorQpn }), 'ERR_QP_NOT_FOUND')
    expectRefused(await ask({ op: 'set-creator', sessionId, clientId: (await intruder.wait('ready')).clientId }), 'ERR_JOIN_TOKEN', /'creator' right/)
    expectRefused(await ask({ op: 'token', sessionId, scope: ['close'] }), 'ERR_JOIN_TOKEN', /granting close/)
    // Its close is its leaving: the session stays.
    expect((await relay({ type: 'close-session', reason: 'bye' })).ok).toBe(true)
    expect(peerSession.closed).toBe(false)
    expect(peerSession.qps.map((q) => q.qpn)).toEqual([creatorQpn])
    await p1.ask(`write ${sessionId} 0 0 65536 3`, 'written')
    expect(p1.events.some((e) => e.event === 'session-closed')).toBe(false)

    // The creator grants the close right; the process joining with that token closes the session for everyone.
    const granted = await p1.ask(`grant ${sessionId} close`, 'granted')
    const p3 = joiner('granted', String(granted.token))
    expect((await p3.wait('ready')).sessionId).toBe(sessionId)
    await p3.ask(`close ${sessionId}`, 'closed')
    await waitFor(() => peerSession.closed, 5000, 'the peer closed the session')
    await p1.wait('session-closed', (e) => e.sessionId === sessionId)
  }, 60_000)

  it('the creator hands its role to another process: the old one keeps a joiner\'s rights, the new one rekeys; the session lives until its last process leaves', async () => {
    const { p1, sessionId, peerSession } = await creator()
    const p2 = joiner('joiner')
    const r2 = await p2.wait('ready')
    expect(r2.sessionId).toBe(sessionId)

    // Before the handover the joiner may not rekey; after it, the old creator may not.
    expect(await p2.ask(`try-rekey ${sessionId}`, 'rekey-result')).toMatchObject({ ok: false, code: 'ERR_JOIN_TOKEN' })
    await p1.ask(`set-creator ${sessionId} ${String(r2.clientId)}`, 'creator-set')
    expect(await p1.ask(`try-rekey ${sessionId}`, 'rekey-result')).toMatchObject({ ok: false, code: 'ERR_JOIN_TOKEN' })
    expect(await p2.ask(`try-rekey ${sessionId}`, 'rekey-result')).toMatchObject({ ok: true, epoch: 1 })
    expect(peerSession.epoch).toBe(1)
    expect(await p1.ask(`epoch ${sessionId}`, 'epoch')).toMatchObject({ epoch: 1 })

    // The old creator's close is now its leaving; the new creator's QPs keep working.
    await p1.ask(`close ${sessionId}`, 'closed')
    await waitFor(() => peerSession.size === 2, 5000, `the peer removed the old creator's QP (has ${peerSession.size})`)
    expect(peerSession.closed).toBe(false)
    await p2.ask(`write ${sessionId} 0 0 4096 7`, 'written')
    await p2.ask('exit', 'exited')
    await waitFor(() => peerSession.closed, 5000, 'the session closed with its last process')
  }, 60_000)

  it('when the creator is gone, the last joiner to leave closes the session (nobody is left to hold it)', async () => {
    const { p1, sessionId, peerSession } = await creator()
    const p2 = joiner('joiner')
    await p2.wait('ready')
    await waitFor(() => peerSession.size === 3, 5000, `the joiner's QPs at the peer (has ${peerSession.size})`)
    p1.child.kill('SIGKILL')
    await p1.exited
    await waitFor(() => peerSession.size === 2, 10_000, `the dead creator's QP removed (has ${peerSession.size})`)
    expect(peerSession.closed).toBe(false)
    await p2.ask(`close ${sessionId}`, 'closed')
    await waitFor(() => peerSession.closed, 5000, 'the session closed with its last process')
  }, 60_000)
})
