/**
 * One host's egress scheduler: deficit round robin across its QPs by QoS weight,
 * a token bucket per QP for its rate limit, and an optional link rate shared by
 * all QPs of the host. Messages are scheduled in MTU-sized segments, so a bulk
 * QP's large writes interleave with a latency QP's small ones as on a real link.
 */
import { FifoQueue } from '@rdma-session/provider-interface'
import { TokenBucket } from '@rdma-session/rc-engine'
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

/** One QP's scheduling state (created lazily, on its first send). */
export class EgressFlow {
  deficit = 0
  queued = false
  turnStarted = false
  /** The QP's rate limit; null when unlimited. */
  readonly bucket: TokenBucket | null

  constructor(
    readonly source: EgressSource,
    readonly weight: number,
    /** Bytes per second; 0 = unlimited. */
    rateLimitBps: number,
  ) {
    this.bucket = rateLimitBps > 0 ? new TokenBucket(rateLimitBps, performance.now(), 2 * QUANTUM) : null
  }
}

function runLater(s: EgressScheduler): void {
  s.run()
}

export class EgressScheduler {
  readonly #queue = new FifoQueue<EgressFlow>()
  #immediate = false
  #timer: NodeJS.Timeout | null = null
  /** The host's link rate shared by all its QPs; null when unlimited. */
  readonly #link: TokenBucket | null
  #stopped = false

  constructor(
    linkBytesPerSecond: number,
    private readonly refTimers: boolean,
  ) {
    this.#link = Number.isFinite(linkBytesPerSecond) ? new TokenBucket(linkBytesPerSecond, performance.now(), 4 * QUANTUM) : null
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
    const link = this.#link
    if (link !== null) link.refill(now)
    let waitMs = Infinity
    /** Consecutive visits that found the flow waiting for tokens. */
    let blocked = 0
    outer: while (!this.#queue.empty) {
      if (link !== null && link.tokens <= 0) {
        waitMs = Math.min(waitMs, link.waitMs())
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
        const bucket = flow.bucket
        if (bucket !== null) {
          bucket.refill(now)
          const wait = bucket.tokens > 0 ? 0 : bucket.startWaiting()
          if (wait > 0) {
            waitMs = Math.min(waitMs, wait)
            flow.deficit = Math.min(flow.deficit, QUANTUM * flow.weight)
            this.#rotate(flow)
            // Every queued flow is waiting for tokens: sleep until the first can send.
            if (++blocked >= this.#queue.length) break outer
            continue outer
          }
        }
        if (link !== null && link.tokens <= 0) continue outer
        flow.deficit -= bytes
        if (bucket !== null) bucket.tokens -= bytes
        if (link !== null) link.tokens -= bytes
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
