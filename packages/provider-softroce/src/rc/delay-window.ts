/**
 * A delay-based congestion window per QP (after TIMELY, Swift and Copa): the requester samples
 * the round trip of its packets from their ACKs and keeps the number of packets in flight where
 * the round trip stays near its floor. Decisions are taken once per interval of about one
 * smoothed round trip, on the smallest sample of the interval (the "standing" round trip: a
 * queue that persists for a whole round trip shows in it, a lone late sample from a host that
 * was busy elsewhere does not). At or below the target delay the window grows by an eighth (at
 * least one packet); above it, it shrinks in proportion to the excess, by half at most.
 *
 * What it bounds is the queue in front of the bottleneck. Between two softroce hosts that is
 * usually the receiving socket of the peer and the peer's event loop: a bulk QP with a full
 * device window (1 MiB) parks hundreds of packets there, and a latency-class packet of another
 * QP of the same device waits behind all of them. Kept at the floor plus a small queue, the
 * window still covers the path (the bottleneck stays busy), so throughput does not suffer.
 *
 * The floor is the smallest round trip seen over the last two epochs (about a second each), so
 * it follows a path that changes. The target is the floor plus max(targetQueueMs, the floor):
 * a queue worth one round trip at most. While latency-class QPs of the same device have
 * traffic (a packet accepted within the last CONTENDED_MS), the tolerated queue is contendedQueueMs
 * instead: the bulk QP gives up some throughput so that the latency packets, which share the
 * peer's receiving socket with it, wait behind a shorter queue.
 */

export interface DelayWindowOptions {
  /** Queueing delay above the round-trip floor that is tolerated, in ms (default 0.25). */
  readonly targetQueueMs?: number
  /**
   * The queueing delay tolerated while latency-class QPs of the device have traffic, in ms
   * (default 0.05).
   */
  readonly contendedQueueMs?: number
  /** The smallest window, in packets (default 2). */
  readonly minPackets?: number
  /**
   * QoS classes whose QPs run the window (default ['bulk']): throughput traffic that shares a
   * device with latency-sensitive QPs. Other QPs keep the full device window: on a loaded host
   * the round trip also rises when the CPU, not a queue, is the bottleneck, and a lone transfer
   * gains nothing from a shorter queue.
   */
  readonly classes?: readonly string[]
}

/** The resolved options (device config). */
export interface DelayWindowConfig {
  readonly targetQueueMs: number
  readonly contendedQueueMs: number
  readonly minPackets: number
  readonly classes: ReadonlySet<string>
}

export function resolveDelayWindow(o: DelayWindowOptions | false | undefined): DelayWindowConfig | null {
  if (o === false) return null
  return {
    targetQueueMs: Math.max(0.01, o?.targetQueueMs ?? 0.25),
    contendedQueueMs: Math.max(0.01, o?.contendedQueueMs ?? 0.05),
    minPackets: Math.max(1, Math.floor(o?.minPackets ?? 2)),
    classes: new Set(o?.classes ?? ['bulk']),
  }
}

/** Multiplicative decrease: the share of the excess delay taken off, and the largest cut. */
const BETA = 0.8
const MAX_DECREASE = 0.5
/** Growth per interval at or below the target: this share of the window, at least one packet. */
const GROWTH = 1 / 8
const EPOCH_MS = 1000
/** The shortest decision interval, ms. */
const MIN_INTERVAL_MS = 0.1
/** Latency-class traffic this recent (ms) makes the window contended. */
export const CONTENDED_MS = 50

export class DelayWindow {
  /** The window, in packets (fractional). */
  #cwnd: number
  readonly #max: number
  readonly #min: number
  readonly #targetQueueMs: number
  readonly #contendedQueueMs: number
  /** True when the last decision was taken with latency-class traffic on the device. */
  contended = false
  #minRtt = Infinity
  #prevMinRtt = Infinity
  #epochStart = -Infinity
  #srtt = 0
  /** The current interval: its start and smallest sample. */
  #intervalStart = -Infinity
  #standing = Infinity
  /** Diagnostics: samples taken, decreases made, the last sample. */
  samples = 0
  decreases = 0
  lastRttMs = 0

  constructor(maxPackets: number, config: DelayWindowConfig) {
    this.#max = Math.max(1, maxPackets)
    this.#min = Math.min(this.#max, config.minPackets)
    this.#targetQueueMs = config.targetQueueMs
    this.#contendedQueueMs = config.contendedQueueMs
    this.#cwnd = this.#max
  }

  /** Packets that may be in flight now. */
  get packets(): number {
    return Math.max(this.#min, Math.floor(this.#cwnd))
  }

  /** The round-trip floor (ms) the target is measured from. */
  get floorMs(): number {
    return Math.min(this.#minRtt, this.#prevMinRtt)
  }

  /** The round trip (ms) above which the window shrinks. */
  get targetMs(): number {
    const floor = this.floorMs
    if (floor === Infinity) return Infinity
    return floor + (this.contended ? Math.max(this.#contendedQueueMs, floor) : Math.max(this.#targetQueueMs, floor))
  }

  /**
   * A round-trip sample `rttMs` taken at time `now` (ms, performance.now()); `latencyTrafficAt`:
   * when the device last had a packet of a latency-class QP (-Infinity: never).
   */
  onSample(rttMs: number, now: number, latencyTrafficAt = -Infinity): void {
    if (!(rttMs >= 0)) return
    this.samples++
    this.lastRttMs = rttMs
    if (now - this.#epochStart >= EPOCH_MS) {
      this.#prevMinRtt = this.#minRtt
      this.#minRtt = Infinity
      this.#epochStart = now
    }
    if (rttMs < this.#minRtt) this.#minRtt = rttMs
    this.#srtt = this.#srtt === 0 ? rttMs : this.#srtt + (rttMs - this.#srtt) / 8
    if (rttMs < this.#standing) this.#standing = rttMs
    if (now - this.#intervalStart < Math.max(MIN_INTERVAL_MS, this.#srtt)) return
    const standing = this.#standing
    this.#intervalStart = now
    this.#standing = Infinity
    if (standing === Infinity) return
    this.contended = now - latencyTrafficAt < CONTENDED_MS
    const target = this.targetMs
    if (standing <= target) {
      this.#cwnd = Math.min(this.#max, this.#cwnd + Math.max(1, this.#cwnd * GROWTH))
      return
    }
    this.decreases++
    const cut = Math.min(MAX_DECREASE, BETA * ((standing - target) / standing))
    this.#cwnd = Math.max(this.#min, this.#cwnd * (1 - cut))
  }
}
