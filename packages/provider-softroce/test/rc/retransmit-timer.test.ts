/**
 * The local ACK timer acts only after the event loop has polled for I/O once more: after this
 * process was stalled past the deadline, an ACK already waiting in the socket is read first and
 * no spurious go-back-N follows.
 */
import dgram from 'node:dgram'
import { describe, expect, it } from 'vitest'
import { RetransmitTimer } from '../../src/rc/retransmit-timer.js'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function waitUntil(cond: () => boolean, ms: number, seen: () => string): Promise<void> {
  const end = performance.now() + ms
  while (!cond()) {
    if (performance.now() > end) throw new Error(`not within ${ms} ms: ${seen()}`)
    await sleep(5)
  }
}

describe('RetransmitTimer', () => {
  it('an ACK that arrived during a stall is read before the expiry is acted on', async () => {
    const socket = dgram.createSocket('udp4')
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r))
    let expired = 0
    let expiredAt = 0
    const timer = new RetransmitTimer(20, () => {
      expired++
      expiredAt = performance.now()
    })
    // The "ACK": progress moves the deadline. What the timer had done by the time it was read is the outcome that
    // matters; a check some fixed time later would also count a stall of this host after the read.
    const ack = new Promise<{ expiredBefore: number; at: number }>((resolve) => socket.once('message', () => {
      const expiredBefore = expired
      timer.restart()
      resolve({ expiredBefore, at: performance.now() })
    }))
    timer.restart()
    socket.send(Buffer.from('ack'), socket.address().port, '127.0.0.1')
    await new Promise((r) => setImmediate(r)) // the send is on the wire
    const until = performance.now() + 40
    while (performance.now() < until) {
      // this process is stalled past the deadline; the ACK waits in the socket buffer
    }
    const read = await ack
    expect(read.expiredBefore, 'no expiry: the ACK restarted the timer first').toBe(0)
    expect(expired, 'nor right after it').toBe(0)
    expect(timer.running).toBe(true)
    await waitUntil(() => expired > 0, 5000, () => `expiries ${expired}, running ${timer.running}`)
    expect(expired, 'a real timeout still fires, once').toBe(1)
    expect(expiredAt - read.at, 'a full timeout after the ACK').toBeGreaterThanOrEqual(19.5)
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
    // Stopped in the same turn (a sleep here could outlast the 20 ms on a loaded host and let the timer expire first).
    timer.restart()
    timer.stop()
    expect(timer.running).toBe(false)
    await sleep(10)
    const restartedAt = performance.now()
    timer.restart()
    await waitUntil(() => expiries.length > 0, 5000, () => `expiries ${JSON.stringify(expiries)}, running ${timer.running}`)
    expect(expiries).toHaveLength(1)
    expect(expiries[0]! - restartedAt).toBeGreaterThanOrEqual(19.5)
    expect(timer.running).toBe(false)
    timer.dispose()
    socket.close()
  })
})
