/**
 * The device's send scheduler: deficit round robin over the QPs that have
 * packets ready, by QoS weight, with a token bucket per rate-limited QP. A
 * saturating bulk QP gets one quantum per round, so a latency QP's packets go
 * out between the bulk QP's packets instead of behind them. An idle device
 * sends the first packets of a post at once; otherwise work runs in a
 * microtask after a post (so a burst of posts is sent together) and continues
 * in setImmediate turns, letting ACKs in between turns.
 */
import { TokenBucket } from './token-bucket.js'

/** A QP's send side as the scheduler sees it. */
export interface PacketSource {
  /** Sends the next ready packet and returns its size in bytes, or 0 when nothing is ready now. */
  sendNextPacket(): number
}

/** Bytes a weight-1 flow may send per round (one 4096-byte MTU packet with headers). */
export const QUANTUM_BYTES = 4096 + 64
/** Packets sent per scheduler turn before yielding to the event loop. */
const PACKETS_PER_TURN = 64
/** Packets an idle device sends inside the post call that woke it. */
const DIRECT_PACKETS = 4

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
  ) {
    this.quantum = QUANTUM_BYTES * Math.max(1, Math.min(1000, Math.floor(weight) || 1))
    this.bucket = rateLimitBps > 0 ? new TokenBucket(rateLimitBps, now()) : null
  }
}

function runTurn(s: SendScheduler): void {
  s.runTurn()
}

export class SendScheduler {
  readonly #ring: SendFlow[] = []
  #cursor = 0
  #scheduled = false
  #immediate = false
  #closed = false
  #inTurn = false
  readonly #turn = (): void => this.runTurn()
  /** Turns run so far (diagnostics). */
  turns = 0

  /**
   * Marks a flow as having packets ready and makes sure a turn runs soon. When nothing else is
   * queued and no turn is pending or running (an idle device: a ping-pong's request, a lone
   * probe), the first few packets go out at once, inside the post call, instead of a deferred turn.
   */
  wake(flow: SendFlow): void {
    if (this.#closed || flow.removed) return
    const idle = this.#ring.length === 0 && !this.#scheduled && !this.#inTurn
    if (!flow.active && !flow.parked) {
      flow.active = true
      this.#ring.push(flow)
    }
    if (idle && flow.active) {
      this.#turnOf(DIRECT_PACKETS)
      // The rest of a burst follows in a microtask, as posts do on a busy device.
      if (this.#ring.length > 0) this.#schedule()
      return
    }
    this.#schedule()
  }

  /** Forgets a flow (its QP is destroyed). */
  remove(flow: SendFlow): void {
    flow.active = false
    flow.removed = true
    const i = this.#ring.indexOf(flow)
    if (i >= 0) {
      this.#ring.splice(i, 1)
      if (this.#cursor > i) this.#cursor--
    }
  }

  close(): void {
    this.#closed = true
    this.#ring.length = 0
  }

  #schedule(): void {
    if (this.#scheduled) return
    this.#scheduled = true
    if (this.#immediate) setImmediate(runTurn, this)
    else queueMicrotask(this.#turn)
  }

  /** @internal One turn: up to PACKETS_PER_TURN packets, round robin by deficit. */
  runTurn(): void {
    this.#scheduled = false
    this.#turnOf(PACKETS_PER_TURN)
    if (this.#ring.length > 0) {
      // More work: continue after the event loop has polled for I/O (ACKs).
      this.#immediate = true
      this.#schedule()
      this.#immediate = false
    }
  }

  #turnOf(packets: number): void {
    this.#inTurn = true
    try {
      this.#sendRound(packets)
    } finally {
      this.#inTurn = false
    }
  }

  #sendRound(packets: number): void {
    this.turns++
    const ring = this.#ring
    let budget = packets
    const t = now()
    while (ring.length > 0 && budget > 0) {
      if (this.#cursor >= ring.length) this.#cursor = 0
      const flow = ring[this.#cursor]!
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
      }
      if (idle) {
        flow.deficit = 0
        this.#drop(this.#cursor)
      } else if (bucket !== null && bucket.tokens < 0) {
        this.#drop(this.#cursor)
        this.#park(flow, bucket.waitMs())
      } else if (flow.deficit <= 0) {
        this.#cursor++
      }
    }
  }

  #drop(i: number): void {
    const flow = this.#ring[i]!
    flow.active = false
    this.#ring.splice(i, 1)
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
