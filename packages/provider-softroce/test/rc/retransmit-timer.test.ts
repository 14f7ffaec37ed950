/**
 * The local ACK timer acts only after the event loop has polled for I/O once more: after this
 * process was stalled past the deadline, an ACK already waiting in the socket is read first and
 * no spurious go-back-N follows.
 */
import dgram from 'node:dgram'
import { describe, expect, it } from 'vitest'
import { RetransmitTimer } from '../../src/rc/retransmit-timer.js'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

describe('RetransmitTimer', () => {
  it('an ACK that arrived during a stall is read before the expiry is acted on', async () => {
    const socket = dgram.createSocket('udp4')
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r))
    let expired = 0
    const timer = new RetransmitTimer(20, () => expired++)
    socket.on('message', () => timer.restart()) // the "ACK": progress moves the deadline
    timer.restart()
    socket.send(Buffer.from('ack'), socket.address().port, '127.0.0.1')
    await new Promise((r) => setImmediate(r)) // the send is on the wire
    const until = performance.now() + 40
    while (performance.now() < until) {
      // this process is stalled past the deadline; the ACK waits in the socket buffer
    }
    await sleep(5)
    expect(expired, 'no expiry: the ACK restarted the timer first').toBe(0)
    expect(timer.running).toBe(true)
    await sleep(40)
    expect(expired, 'a real timeout still fires').toBe(1)
    timer.stop()
    socket.close()
  })

  it('stop() (the last ACK) cancels an expiry already deferred past the I/O poll', async () => {
    const socket = dgram.createSocket('udp4')
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r))
    let expired = 0
    const timer = new RetransmitTimer(10, () => expired++)
    socket.on('message', () => timer.stop()) // everything acknowledged: nothing left to time
    timer.restart()
    socket.send(Buffer.from('ack'), socket.address().port, '127.0.0.1')
    await new Promise((r) => setImmediate(r))
    const until = performance.now() + 20
    while (performance.now() < until) {
      // stalled past the deadline
    }
    await sleep(30)
    expect(expired).toBe(0)
    expect(timer.running).toBe(false)
    socket.close()
  })

  it('a stopped timer that is restarted expires a full timeout after the restart, not at the lapsed deadline', async () => {
    const socket = dgram.createSocket('udp4') // keeps the loop alive: the timer itself is unref'd
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r))
    const expiries: number[] = []
    const timer = new RetransmitTimer(20, () => expiries.push(performance.now()))
    timer.restart()
    await sleep(5)
    timer.stop()
    expect(timer.running).toBe(false)
    await sleep(10)
    const restartedAt = performance.now()
    timer.restart()
    while (expiries.length === 0) await sleep(5)
    expect(expiries).toHaveLength(1)
    expect(expiries[0]! - restartedAt).toBeGreaterThanOrEqual(19.5)
    expect(timer.running).toBe(false)
    timer.dispose()
    socket.close()
  })
})
