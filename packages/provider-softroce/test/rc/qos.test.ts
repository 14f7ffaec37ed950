/**
 * QoS isolation inside one device: strict priority for QoS class `latency` in the send scheduler
 * (sent before normal-level flows, at once when woken outside a turn), the first packets of an
 * idle device sent inside the post, and the delay-based congestion window of bulk-class QPs.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { CONTENDED_MS, DelayWindow, resolveDelayWindow } from '../../src/rc/delay-window.js'
import { PRIORITY_LATENCY, PRIORITY_NORMAL, priorityOfClass, SendFlow, SendScheduler } from '../../src/scheduler/send-scheduler.js'
import type { SoftRoceQp } from '../../src/rc/queue-pair.js'
import { connect, openPair, register, TEST_TIMERS, type Pair } from './harness.js'

function source(name: string, left: { n: number }, order: string[]): { sendNextPacket(): number } {
  return {
    sendNextPacket: () => {
      if (left.n === 0) return 0
      left.n--
      order.push(name)
      return 4096
    },
  }
}

const turnOver = (): Promise<void> => new Promise((r) => setImmediate(r))

describe('send scheduler priority', () => {
  it('maps QoS class latency to the high level and everything else to the normal one', () => {
    expect(priorityOfClass('latency')).toBe(PRIORITY_LATENCY)
    for (const c of ['bulk', 'default', 'Latency', '']) expect(priorityOfClass(c)).toBe(PRIORITY_NORMAL)
  })

  it('an idle device sends the first packets inside wake(), the rest later', async () => {
    const s = new SendScheduler()
    const order: string[] = []
    s.wake(new SendFlow(source('a', { n: 10 }, order), 1, 0))
    const atOnce = order.length
    expect(atOnce, 'some packets went out before wake() returned').toBeGreaterThan(0)
    expect(atOnce).toBeLessThan(10)
    await turnOver()
    expect(order).toHaveLength(10)
    s.close()
  })

  it('a latency flow woken while normal flows wait for their turn goes out at once, all of it', async () => {
    const s = new SendScheduler()
    const order: string[] = []
    const bulk = { n: 200 }
    s.wake(new SendFlow(source('bulk', bulk, order), 4, 0, PRIORITY_NORMAL))
    const bulkSentFirst = order.length
    // bulk has a turn pending now; the latency flow does not wait for it
    s.wake(new SendFlow(source('lat', { n: 3 }, order), 1, 0, PRIORITY_LATENCY))
    expect(order.slice(bulkSentFirst)).toEqual(['lat', 'lat', 'lat'])
    while (bulk.n > 0) await turnOver()
    expect(order.filter((x) => x === 'bulk')).toHaveLength(200)
    s.close()
  })

  it('in a turn, ready latency flows are served before any normal flow, whatever the weights', async () => {
    const s = new SendScheduler()
    const order: string[] = []
    const bulk = new SendFlow(source('bulk', { n: 100 }, order), 1000, 0, PRIORITY_NORMAL)
    const lat = new SendFlow(source('lat', { n: 20 }, order), 1, 0, PRIORITY_LATENCY)
    s.wake(new SendFlow(source('first', { n: 1 }, order), 1, 0)) // the idle device's direct send
    s.wake(bulk) // queued for the next turn
    // The latency flow is woken from inside a turn (as an ACK processed mid-turn would): it is
    // not sent at once then, but the scheduler serves it before the bulk flow.
    const inside = new SendFlow({
      sendNextPacket: () => {
        s.wake(lat) // woken during a turn: served by the scheduler, not at once
        return 0
      },
    }, 1, 0)
    s.wake(inside)
    while (order.length < 121) await turnOver()
    const firstLat = order.indexOf('lat')
    const lastLat = order.lastIndexOf('lat')
    const bulkBetween = order.slice(firstLat, lastLat + 1).filter((x) => x === 'bulk').length
    expect(firstLat).toBeGreaterThanOrEqual(0)
    expect(bulkBetween, 'no bulk packet between the latency packets').toBe(0)
    expect(order.slice(lastLat + 1).every((x) => x === 'bulk')).toBe(true)
    s.close()
  })
})

describe('turn length', () => {
  async function firstTurn(withLatencyQp: boolean): Promise<number> {
    const s = new SendScheduler()
    if (withLatencyQp) s.add(new SendFlow(source('idle', { n: 0 }, []), 1, 0, PRIORITY_LATENCY))
    const order: string[] = []
    s.wake(new SendFlow(source('bulk', { n: 500 }, order), 1000, 0))
    for (let i = 0; i < 5; i++) await Promise.resolve() // the direct send and the microtask turn, no I/O turn yet
    s.close()
    return order.length
  }

  it('turns are long without latency-class QPs on the device, short (16 packets at most) with one', async () => {
    expect(await firstTurn(false)).toBe(4 + 64)
    const short = await firstTurn(true)
    expect(short).toBeGreaterThan(4)
    expect(short).toBeLessThanOrEqual(4 + 16)
  })
})

describe('delay-based congestion window', () => {
  const config = resolveDelayWindow({ targetQueueMs: 0.25, minPackets: 2 })!

  /** Feeds samples of `rtt` ms, one every `step` ms from `t`, for `ms` ms; returns the time reached. */
  function feed(w: DelayWindow, rtt: number, t: number, ms: number, step = 0.05): number {
    let now = t
    for (const end = t + ms; now < end; now += step) w.onSample(rtt, now)
    return now
  }

  it('is off for every QP with congestion: false, on for class bulk by default', () => {
    expect(resolveDelayWindow(false)).toBeNull()
    expect(config.classes.has('bulk')).toBe(true)
    expect(config.classes.has('default')).toBe(false)
    expect(resolveDelayWindow({ classes: ['default'] })!.classes.has('default')).toBe(true)
  })

  it('stays open at the round-trip floor, shrinks when the standing round trip rises above the target, and grows back', () => {
    const w = new DelayWindow(256, config)
    let t = feed(w, 0.1, 0, 20)
    expect(w.packets).toBe(256)
    expect(w.floorMs).toBeCloseTo(0.1)
    expect(w.targetMs).toBeCloseTo(0.1 + 0.25)
    t = feed(w, 2, t, 50)
    const shrunk = w.packets
    expect(shrunk).toBeLessThan(256)
    expect(w.decreases).toBeGreaterThan(0)
    t = feed(w, 2, t, 200)
    expect(w.packets, 'never below minPackets').toBeGreaterThanOrEqual(2)
    expect(w.packets).toBeLessThanOrEqual(shrunk)
    const low = w.packets
    t = feed(w, 0.1, t, 50)
    expect(w.packets).toBeGreaterThan(low)
    feed(w, 0.1, t, 500)
    expect(w.packets).toBe(256)
  })

  it('a lone late sample among samples at the floor does not shrink it (the standing round trip is the interval minimum)', () => {
    const w = new DelayWindow(256, config)
    let t = feed(w, 0.1, 0, 20)
    for (let i = 0; i < 50; i++) {
      w.onSample(5, t) // a host that was busy elsewhere for a moment
      t = feed(w, 0.1, t + 0.05, 1)
    }
    expect(w.decreases).toBe(0)
    expect(w.packets).toBe(256)
  })

  it('tolerates a shorter queue (contendedQueueMs) while the device has latency-class traffic, the long one again once it stops', () => {
    const w = new DelayWindow(256, config)
    let t = feed(w, 0.1, 0, 20)
    // A standing round trip of 0.28 ms: under the usual target (0.1 + 0.25) ...
    const at = (rtt: number, from: number, ms: number, latencyAt: (now: number) => number): number => {
      let now = from
      for (const end = from + ms; now < end; now += 0.05) w.onSample(rtt, now, latencyAt(now))
      return now
    }
    t = at(0.28, t, 50, () => -Infinity)
    expect(w.contended).toBe(false)
    expect(w.decreases).toBe(0)
    expect(w.packets).toBe(256)
    // ... above the contended one (0.1 + max(0.05, floor 0.1) = 0.2) while latency packets arrive.
    t = at(0.28, t, 50, (now) => now - 1)
    expect(w.contended).toBe(true)
    expect(w.targetMs).toBeCloseTo(0.2)
    expect(w.decreases).toBeGreaterThan(0)
    const shrunk = w.packets
    expect(shrunk).toBeLessThan(256)
    // Latency traffic last seen more than CONTENDED_MS ago: the usual target again, the window grows.
    const last = t
    t = at(0.1, t, CONTENDED_MS + 10, () => last)
    expect(w.contended).toBe(false)
    expect(w.targetMs).toBeCloseTo(0.35)
    expect(w.packets).toBeGreaterThan(shrunk)
  })
})

describe('QoS classes on softroce QPs', () => {
  let pair: Pair | null = null
  afterEach(async () => {
    await pair?.close()
    pair = null
  })

  it('a bulk QP runs the delay window and shrinks it when its ACKs come late; other QPs keep the device window; latency QPs ACK at once', async () => {
    // ACK timeouts well above the late ACKs' delay below (30 ms + 10 floors, which a loaded
    // machine's floor makes hundreds of ms): the window is under test here, not retries
    pair = await openPair({ timers: { ...TEST_TIMERS, ackTimeoutMinMs: 1000, ackTimeoutMaxMs: 2000 } })
    const bulk = connect(pair, { mtu: 4096, qos: { class: 'bulk' }, qosB: { class: 'bulk' } })
    const plain = connect(pair, { mtu: 4096 })
    const lat = connect(pair, { mtu: 4096, qos: { class: 'latency' }, qosB: { class: 'latency' } })
    const bulkQp = bulk.qa.provider as SoftRoceQp
    expect((plain.qa.provider as SoftRoceQp).congestion).toBeNull()
    expect(bulkQp.congestion).not.toBeNull()
    expect((lat.qb.provider as SoftRoceQp).immediateAcks).toBe(true)
    expect((bulk.qb.provider as SoftRoceQp).immediateAcks).toBe(false)
    const cc = bulkQp.congestion!
    const max = cc.packets
    const MiB = 1 << 20
    const ma = register(pair.a, 4 * MiB)
    const mb = register(pair.b, 4 * MiB)
    await bulk.qa.write(ma.slice(0, MiB), mb.region(0, MiB)) // the floor: ACKs on time
    expect(cc.samples).toBeGreaterThan(0)
    const floor = cc.floorMs
    // every ACK from b now arrives 30 ms late: far above the floor plus the target queue
    pair.db.setImpairment({ delayMs: 30 + 10 * floor })
    await Promise.all([0, 1].map((k) => bulk.qa.write(ma.slice(k * MiB, MiB), mb.region(k * MiB, MiB))))
    expect(cc.decreases).toBeGreaterThan(0)
    expect(cc.packets).toBeLessThan(max)
    // the latency QP still works, and the plain QP's window is untouched
    await lat.qa.write(ma.slice(0, 64), mb.region(0, 64))
    pair.db.setImpairment(null)
  }, 30_000)
})
