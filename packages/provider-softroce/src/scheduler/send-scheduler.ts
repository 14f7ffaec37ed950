/**
 * The device's send scheduler: strict priority between two levels, and deficit
 * round robin by QoS weight within a level, with a token bucket per
 * rate-limited QP. QPs of QoS class `latency` are on the high level: whenever
 * one has a packet ready it goes before any other QP's, and when one is woken
 * (a post, an ACK opening its window) outside a turn, its packets go out at
 * once instead of waiting for the turn in progress to come round. Every other
 * QP shares the normal level by weight, so a saturating bulk QP gets one
 * quantum per round. An idle device also sends the first packets of a post at
 * once; otherwise work runs in a microtask after a post (so a burst of posts
 * is sent together) and continues in setImmediate turns of a few packets,
 * letting ACKs (and latency-class posts) in between turns.
 */
import { microtaskRunner } from '@rdma-session/provider-interface'
import { TokenBucket } from '@rdma-session/rc-engine'
import { performance } from 'node:perf_hooks'

/** A QP's send side as the scheduler sees it. */
export interface PacketSource {
  /** Sends the next ready packet and returns its size in bytes, or 0 when nothing is ready now. */
  sendNextPacket(): number
}

/** Bytes a weight-1 flow may send per round (one 4096-byte MTU packet with headers). */
export const QUANTUM_BYTES = 4096 + 64
/** Packets sent per scheduler turn before yielding to the event loop. */
const PACKETS_PER_TURN = 64
/**
 * While the device has latency-class QPs, turns are short: at most this many packets, and they
 * end after SHORT_TURN_MS whatever they sent (big packets of an encrypted QP cost far more than
 * small ones). What waits for the event loop (a latency-class ACK or post) then waits about a
 * twentieth of a millisecond, not a turn of 64 packets at tens of microseconds each. Without
 * latency-class QPs, long turns cost less per packet.
 */
const SHORT_TURN_PACKETS = 16
const SHORT_TURN_MS = 0.05
/** Packets an idle device sends inside the post call that woke it. */
const DIRECT_PACKETS = 4

/** Strict priority levels: 0 (QoS class `latency`) goes before 1 (every other class). */
export const PRIORITY_LATENCY = 0
export const PRIORITY_NORMAL = 1
const LEVELS = 2

/** The priority level of a QoS class name. */
export function priorityOfClass(className: string): number {
  return className === 'latency' ? PRIORITY_LATENCY : PRIORITY_NORMAL
}

const now = (): number => performance.now()

export class SendFlow {
  deficit = 0
  active = false
  /** Waiting for tokens (rate limit). */
  parked = false
  removed = false
  bucket: TokenBucket | null
  readonly quantum: number

  constructor(
    readonly source: PacketSource,
    weight: number,
    rateLimitBps: number,
    readonly priority: number = PRIORITY_NORMAL,
  ) {
    this.quantum = QUANTUM_BYTES * Math.max(1, Math.min(1000, Math.floor(weight) || 1))
    this.bucket = rateLimitBps > 0 ? new TokenBucket(rateLimitBps, now()) : null
  }
}

function runTurn(s: SendScheduler): void {
  s.runTurn()
}

/** The flows of one priority level with packets ready, served round robin by deficit. */
class Level {
  readonly ring: SendFlow[] = []
  cursor = 0
}

export class SendScheduler {
  readonly #levels: Level[] = Array.from({ length: LEVELS }, () => new Level())
  #scheduled = false
  #immediate = false
  #closed = false
  #inTurn = false
  #turnEnds = 0
  readonly #turnInMicrotask = microtaskRunner(() => this.runTurn())
  /** Turns run so far (diagnostics). */
  turns = 0
  /** Packets sent at once on a wake (idle device or latency class), not in a turn (diagnostics). */
  directPackets = 0
  /** Flows of latency-class QPs that exist (not only ready ones): while > 0, turns are short. */
  latencyFlows = 0

  /** A flow was created (counts latency-class flows). */
  add(flow: SendFlow): void {
    if (flow.priority === PRIORITY_LATENCY) this.latencyFlows++
  }

  get #turnPackets(): number {
    return this.latencyFlows > 0 ? SHORT_TURN_PACKETS : PACKETS_PER_TURN
  }

  /** Flows with packets ready, all levels. */
  get activeFlows(): number {
    let n = 0
    for (const l of this.#levels) n += l.ring.length
    return n
  }

  /**
   * Marks a flow as having packets ready and makes sure a turn runs soon. When nothing else is
   * queued and no turn is pending or running (an idle device: a ping-pong's request, a lone
   * probe), the first few packets go out at once, inside the post call, instead of a deferred
   * turn; a latency-class flow does so whenever no turn is running.
   */
  wake(flow: SendFlow): void {
    if (this.#closed || flow.removed) return
    const idle = !this.#scheduled && !this.#inTurn && this.activeFlows === 0
    if (!flow.active && !flow.parked) {
      flow.active = true
      this.#levels[flow.priority]!.ring.push(flow)
    }
    if (flow.active && !this.#inTurn && (idle || flow.priority === PRIORITY_LATENCY)) {
      this.directPackets += this.#turnOf(idle ? DIRECT_PACKETS : this.#turnPackets, idle ? LEVELS : PRIORITY_LATENCY + 1)
      // The rest follows in a microtask, as posts do on a busy device.
      if (this.activeFlows > 0) this.#schedule()
      return
    }
    this.#schedule()
  }

  /** Forgets a flow (its QP is destroyed). */
  remove(flow: SendFlow): void {
    if (!flow.removed && flow.priority === PRIORITY_LATENCY) this.latencyFlows--
    flow.active = false
    flow.removed = true
    const level = this.#levels[flow.priority]!
    const i = level.ring.indexOf(flow)
    if (i >= 0) {
      level.ring.splice(i, 1)
      if (level.cursor > i) level.cursor--
    }
  }

  close(): void {
    this.#closed = true
    for (const l of this.#levels) l.ring.length = 0
  }

  #schedule(): void {
    if (this.#scheduled) return
    this.#scheduled = true
    if (this.#immediate) setImmediate(runTurn, this)
    else this.#turnInMicrotask()
  }

  /** @internal One turn: up to PACKETS_PER_TURN packets, highest level first, round robin by deficit within a level. */
  runTurn(): void {
    this.#scheduled = false
    this.#turnOf(this.#turnPackets, LEVELS)
    if (this.activeFlows > 0) {
      // More work: continue after the event loop has polled for I/O (ACKs).
      this.#immediate = true
      this.#schedule()
      this.#immediate = false
    }
  }

  /** Sends up to `packets` packets from levels below `levels`, highest first; returns how many it sent. */
  #turnOf(packets: number, levels: number): number {
    this.#inTurn = true
    this.turns++
    let budget = packets
    try {
      const t = now()
      this.#turnEnds = this.latencyFlows > 0 ? t + SHORT_TURN_MS : Infinity
      for (let p = 0; p < levels && budget > 0; p++) budget = this.#serve(this.#levels[p]!, budget, t)
    } finally {
      this.#inTurn = false
    }
    return packets - budget
  }

  /** Deficit round robin over one level; returns the budget left. */
  #serve(level: Level, budget: number, t: number): number {
    const ring = level.ring
    while (ring.length > 0 && budget > 0) {
      if (level.cursor >= ring.length) level.cursor = 0
      const flow = ring[level.cursor]!
      if (flow.deficit <= 0) flow.deficit += flow.quantum
      const bucket = flow.bucket
      if (bucket !== null) bucket.refill(t)
      let idle = false
      while (flow.deficit > 0 && budget > 0) {
        if (bucket !== null && bucket.tokens < 0) break
        const n = flow.source.sendNextPacket()
        if (n === 0) {
          idle = true
          break
        }
        budget--
        flow.deficit -= n
        if (bucket !== null) bucket.tokens -= n
        // Out of time: end the turn here (the flow keeps its place and its deficit).
        if (budget > 0 && (budget & 3) === 0 && this.#turnEnds !== Infinity && now() >= this.#turnEnds) budget = 0
      }
      if (idle) {
        flow.deficit = 0
        this.#drop(level, level.cursor)
      } else if (bucket !== null && bucket.tokens < 0) {
        this.#drop(level, level.cursor)
        this.#park(flow, bucket.startWaiting())
      } else if (flow.deficit <= 0) {
        level.cursor++
      }
    }
    return budget
  }

  #drop(level: Level, i: number): void {
    const flow = level.ring[i]!
    flow.active = false
    level.ring.splice(i, 1)
  }

  #park(flow: SendFlow, ms: number): void {
    flow.parked = true
    const timer = setTimeout(() => {
      flow.parked = false
      this.wake(flow)
    }, Math.max(1, Math.ceil(ms)))
    timer.unref?.()
  }
}
