/**
 * Session scale-out: every interval, if the session moved fewer bytes per second
 * than the threshold while its QPs (of the spec's class) were saturated, add a QP.
 */
import { TypedEventEmitter } from '../typed-events.js'
import { InvalidArgumentError } from '../errors.js'
import type { QueuePair } from '../queue-pair.js'
import type { QpSpec } from './records.js'
import type { Session } from './session.js'
import { parseRate } from './rate.js'

export interface AutoscaleOptions {
  /** Never grow the session (QPs of the spec's class) beyond this many QPs. */
  readonly maxQps: number
  /**
   * The throughput threshold: `{ rate: '8Gbps' }` (a number of bytes per second or a rate string,
   * read like a QoS rate limit: b = bit, B = byte) or `{ bytesPerSecond: 1e9 }`.
   */
  readonly below: { readonly rate: number | string } | { readonly bytesPerSecond: number }
  /** The spec of the QPs to add; its qos.class selects the QPs that are watched. */
  readonly spec: QpSpec
  /** Sampling interval; default 100 ms. */
  readonly intervalMs?: number
  /** A QP counts as saturated when this share of its send queue is in use; default 0.5. */
  readonly saturation?: number
}

/** Reads `below` with the one rate parser; the threshold must be positive. */
function thresholdOf(below: AutoscaleOptions['below'] | undefined): number {
  const given = below !== null && typeof below === 'object' ? (['rate', 'bytesPerSecond'] as const).filter((k) => k in below) : []
  if (given.length !== 1) throw new InvalidArgumentError(`autoscale needs below: { rate } (e.g. '8Gbps') or below: { bytesPerSecond }${given.length > 1 ? ', not both' : ''}`)
  const key = given[0]!
  const value = (below as Record<typeof key, unknown>)[key]
  if (key === 'bytesPerSecond' && typeof value !== 'number') throw new InvalidArgumentError(`autoscale below.bytesPerSecond must be a number; write a rate with a unit as below: { rate: '${String(value)}' }`, { attribute: 'below.bytesPerSecond' })
  const bps = parseRate(value as number | string, `autoscale below.${key}`)
  if (bps === 0) throw new InvalidArgumentError(`autoscale below.${key} must be a positive rate`, { attribute: `below.${key}` })
  return bps
}

/** Events: 'scaled' (the QPs added), 'error' (a failed addQps; only emitted to listeners). */
export interface AutoscalerEvents {
  scaled: [qps: QueuePair[]]
  error: [err: unknown]
}

export class Autoscaler extends TypedEventEmitter<AutoscalerEvents> {
  readonly #session: Session
  readonly #options: Required<Omit<AutoscaleOptions, 'below'>>
  /** The threshold from `below`, in bytes per second. */
  readonly belowBytesPerSecond: number
  readonly #timer: NodeJS.Timeout
  readonly #onStop: () => void
  #lastBytes: number
  #lastAt = performance.now()
  #busy = false
  #stopped = false
  /** QPs this autoscaler added. */
  added = 0

  constructor(session: Session, options: AutoscaleOptions, onStop: () => void) {
    super()
    if (!Number.isInteger(options.maxQps) || options.maxQps < 1) throw new InvalidArgumentError('autoscale maxQps must be a positive integer')
    this.belowBytesPerSecond = thresholdOf(options.below)
    this.#session = session
    this.#options = { intervalMs: 100, saturation: 0.5, ...options }
    this.#onStop = onStop
    this.#lastBytes = this.#bytes()
    this.#timer = setInterval(() => void this.#tick(), this.#options.intervalMs)
    this.#timer.unref()
  }

  get stopped(): boolean {
    return this.#stopped
  }

  stop(): void {
    if (this.#stopped) return
    this.#stopped = true
    clearInterval(this.#timer)
    this.#onStop()
  }

  #watched(): QueuePair[] {
    return this.#session.qpsOfClass(this.#options.spec.qos?.class ?? 'default')
  }

  #bytes(): number {
    const s = this.#session.stats().session
    return s.bytesSent + s.bytesReceived
  }

  #saturated(qps: QueuePair[]): boolean {
    return qps.length > 0 && qps.every((qp) => {
      const o = qp.outstanding
      return o.backlog > 0 || o.send >= qp.caps.maxSendWr * this.#options.saturation
    })
  }

  async #tick(): Promise<void> {
    if (this.#busy || this.#stopped || this.#session.closed) return
    const at = performance.now()
    const bytes = this.#bytes()
    const rate = ((bytes - this.#lastBytes) * 1000) / Math.max(1, at - this.#lastAt)
    this.#lastBytes = bytes
    this.#lastAt = at
    const qps = this.#watched()
    if (qps.length >= this.#options.maxQps || rate >= this.belowBytesPerSecond || !this.#saturated(qps)) return
    this.#busy = true
    try {
      const added = await this.#session.addQps([this.#options.spec])
      this.added += added.length
      this.emit('scaled', added)
    } catch (err) {
      if (this.listenerCount('error') > 0) this.emit('error', err)
    } finally {
      this.#busy = false
    }
  }
}
