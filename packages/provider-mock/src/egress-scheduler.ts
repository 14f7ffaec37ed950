/**
 * One host's egress scheduler: deficit round robin across its QPs by QoS weight,
 * a token bucket per QP for its rate limit, and an optional link rate shared by
 * all QPs of the host. Messages are scheduled in MTU-sized segments, so a bulk
 * QP's large writes interleave with a latency QP's small ones as on a real link.
 */
import { FifoQueue } from '@rdma-session/provider-interface'
import { HEADER_BYTES } from './packet.js'
import { performance } from 'node:perf_hooks'

/** A QP's send side as the scheduler sees it. */
export interface EgressSource {
  /** Wire bytes (payload + headers) of the next segment, or -1 when the QP has nothing to send now. */
  nextSegmentBytes(): number
  /** Sends that segment; a message goes on the fabric with its last segment. */
  sendSegment(): void
}

/** Bytes a weight-1 QP may send per round: one full 4096-byte MTU packet. */
const QUANTUM = 4096 + HEADER_BYTES
/** Token buckets and the link may bank this much idle time as burst. */
const BURST_MS = 5

/** One QP's scheduling state (created lazily, on its first send). */
export class EgressFlow {
  deficit = 0
  tokens = 0
  tokensAt = 0
  queued = false
  turnStarted = false
  readonly #bytesPerMs: number
  readonly #burst: number

  constructor(
    readonly source: EgressSource,
    readonly weight: number,
    /** Bytes per second; 0 = unlimited. */
    rateLimitBps: number,
  ) {
    this.#bytesPerMs = rateLimitBps / 1000
    this.#burst = Math.max(2 * QUANTUM, this.#bytesPerMs * BURST_MS)
    this.tokens = this.#burst
    this.tokensAt = performance.now()
  }

  get limited(): boolean {
    return this.#bytesPerMs > 0
  }

  /** Refills the bucket; returns ms until it is positive again (0 if it is). */
  refill(now: number): number {
    this.tokens = Math.min(this.#burst, this.tokens + (now - this.tokensAt) * this.#bytesPerMs)
    this.tokensAt = now
    return this.tokens > 0 ? 0 : -this.tokens / this.#bytesPerMs
  }
}

function runLater(s: EgressScheduler): void {
  s.run()
}

export class EgressScheduler {
  readonly #queue = new FifoQueue<EgressFlow>()
  #immediate = false
  #timer: NodeJS.Timeout | null = null
  #linkBudget: number
  #linkAt = performance.now()
  readonly #linkBytesPerMs: number
  readonly #linkBurst: number
  #stopped = false

  constructor(
    linkBytesPerSecond: number,
    private readonly refTimers: boolean,
  ) {
    this.#linkBytesPerMs = linkBytesPerSecond / 1000
    this.#linkBurst = Number.isFinite(linkBytesPerSecond) ? Math.max(4 * QUANTUM, this.#linkBytesPerMs * BURST_MS) : Infinity
    this.#linkBudget = this.#linkBurst
  }

  /** A flow has something to send. */
  wake(flow: EgressFlow): void {
    if (this.#stopped) return
    if (!flow.queued) {
      flow.queued = true
      this.#queue.push(flow)
    }
    if (!this.#immediate) {
      this.#immediate = true
      setImmediate(runLater, this)
    }
  }

  /** Stops for good (the host closed). */
  stop(): void {
    this.#stopped = true
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    for (const f of this.#queue.drain()) f.queued = false
  }

  /** @internal One scheduling pass: sends until every flow is empty or waits for tokens or link budget. */
  run(): void {
    this.#immediate = false
    if (this.#stopped) return
    const now = performance.now()
    const linkLimited = Number.isFinite(this.#linkBurst)
    if (linkLimited) {
      this.#linkBudget = Math.min(this.#linkBurst, this.#linkBudget + (now - this.#linkAt) * this.#linkBytesPerMs)
      this.#linkAt = now
    }
    let waitMs = Infinity
    /** Consecutive visits that found the flow waiting for tokens. */
    let blocked = 0
    outer: while (!this.#queue.empty) {
      if (this.#linkBudget <= 0) {
        waitMs = Math.min(waitMs, -this.#linkBudget / this.#linkBytesPerMs)
        break
      }
      const flow = this.#queue.peek()!
      if (!flow.turnStarted) {
        flow.deficit += QUANTUM * flow.weight
        flow.turnStarted = true
      }
      for (;;) {
        const bytes = flow.source.nextSegmentBytes()
        if (bytes < 0) {
          this.#dequeue(flow)
          break
        }
        if (bytes > flow.deficit) {
          this.#rotate(flow)
          break
        }
        if (flow.limited) {
          const wait = flow.refill(now)
          if (wait > 0) {
            waitMs = Math.min(waitMs, wait)
            flow.deficit = Math.min(flow.deficit, QUANTUM * flow.weight)
            this.#rotate(flow)
            // Every queued flow is waiting for tokens: sleep until the first can send.
            if (++blocked >= this.#queue.length) break outer
            continue outer
          }
        }
        if (this.#linkBudget <= 0) continue outer
        flow.deficit -= bytes
        flow.tokens -= bytes
        this.#linkBudget -= bytes
        flow.source.sendSegment()
        blocked = 0
      }
    }
    if (!this.#queue.empty && waitMs !== Infinity) this.#sleep(waitMs)
  }

  #dequeue(flow: EgressFlow): void {
    this.#queue.shift()
    flow.queued = false
    flow.deficit = 0
    flow.turnStarted = false
  }

  #rotate(flow: EgressFlow): void {
    this.#queue.shift()
    this.#queue.push(flow)
    flow.turnStarted = false
  }

  #sleep(ms: number): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.run()
    }, Math.max(1, Math.ceil(ms)))
    if (!this.refTimers) this.#timer.unref()
  }
}
