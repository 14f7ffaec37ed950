/** Session, session-table and server events are typed: names are checked and listeners get their argument types. */
import { describe, expect, expectTypeOf, it } from 'vitest'
import { EventEmitter, once } from 'node:events'
import type { Autoscaler, ControlServer, QueuePair, Session, SessionDaemon, SessionManager, SessionQpError, WorkCompletion } from '../src/index.js'
import { TypedEventEmitter } from '../src/index.js'

// Type-level checks: compiled by tsc (pnpm typecheck), never called.
function sessionEvents(s: Session): void {
  s.on('qp-added', (qp) => expectTypeOf(qp).toEqualTypeOf<QueuePair>())
  s.on('qp-removed', (qp) => expectTypeOf(qp).toEqualTypeOf<QueuePair>())
  s.once('closed', (reason) => expectTypeOf(reason).toEqualTypeOf<string>())
  s.on('error', (err) => {
    expectTypeOf(err).toEqualTypeOf<SessionQpError>()
    expectTypeOf(err.qpn).toEqualTypeOf<number>()
    expectTypeOf(err.completion).toEqualTypeOf<WorkCompletion | undefined>()
  })
  // @ts-expect-error: not a session event
  s.on('close', () => undefined)
  // @ts-expect-error: 'closed' gives a string
  s.on('closed', (reason: number) => reason)
}

function otherEvents(m: SessionManager, server: ControlServer, a: Autoscaler, d: SessionDaemon): void {
  m.on('session', (s) => expectTypeOf(s).toEqualTypeOf<Session>())
  m.on('session-closed', (s) => expectTypeOf(s).toEqualTypeOf<Session>())
  server.on('session', (s) => expectTypeOf(s).toEqualTypeOf<Session>())
  server.on('rejected', (err) => expectTypeOf(err).toEqualTypeOf<Error>())
  a.on('scaled', (qps) => expectTypeOf(qps).toEqualTypeOf<QueuePair[]>())
  d.on('session-closed', (s) => expectTypeOf(s).toEqualTypeOf<{ id: string; reason: string }>())
}

describe('typed events', () => {
  it('are checked by the compiler (this file is in tsconfig)', () => {
    expect(typeof sessionEvents).toBe('function')
    expect(typeof otherEvents).toBe('function')
  })

  it('is an EventEmitter at run time, and works with events.once', async () => {
    class Thing extends TypedEventEmitter<{ ping: [n: number] }> {}
    const t = new Thing()
    expect(t).toBeInstanceOf(EventEmitter)
    const got = once(t, 'ping')
    t.emit('ping', 7)
    expect(await got).toEqual([7])
    // @ts-expect-error: a wrong argument type
    t.emit('ping', 'seven')
    // @ts-expect-error: an unknown event
    t.on('pong', () => undefined)
  })
})
