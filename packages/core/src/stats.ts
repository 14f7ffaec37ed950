/** Counters and latency histograms kept per QP, and their sum per session. */

/** Latency buckets are powers of two in microseconds: bucket i holds [2^(i-1), 2^i) µs; bucket 0 holds < 1 µs. */
const BUCKETS = 32

export class LatencyHistogram {
  #counts: Uint32Array | null = null
  #total = 0
  #sumMicros = 0
  #maxMicros = 0

  record(micros: number): void {
    const counts = (this.#counts ??= new Uint32Array(BUCKETS))
    const i = micros < 1 ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log2(micros)) + 1)
    counts[i] = (counts[i] ?? 0) + 1
    this.#total++
    this.#sumMicros += micros
    if (micros > this.#maxMicros) this.#maxMicros = micros
  }

  get count(): number {
    return this.#total
  }

  /** Adds another histogram's samples to this one. */
  merge(other: LatencyHistogram): void {
    const src = other.#counts
    if (src === null) return
    const dst = (this.#counts ??= new Uint32Array(BUCKETS))
    for (let i = 0; i < BUCKETS; i++) dst[i] = (dst[i] ?? 0) + (src[i] ?? 0)
    this.#total += other.#total
    this.#sumMicros += other.#sumMicros
    this.#maxMicros = Math.max(this.#maxMicros, other.#maxMicros)
  }

  /** The upper bound (µs) of the bucket holding the given quantile (0–1); 0 when empty. */
  quantile(q: number): number {
    if (this.#counts === null || this.#total === 0) return 0
    const target = Math.max(1, Math.ceil(q * this.#total))
    let seen = 0
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i] ?? 0
      if (seen >= target) return Math.min(2 ** i, this.#maxMicros)
    }
    return this.#maxMicros
  }

  snapshot(): LatencySnapshot {
    return {
      count: this.#total,
      meanMicros: this.#total === 0 ? 0 : this.#sumMicros / this.#total,
      p50Micros: this.quantile(0.5),
      p99Micros: this.quantile(0.99),
      maxMicros: this.#maxMicros,
      buckets: this.#counts === null ? [] : Array.from(this.#counts),
    }
  }
}

export interface LatencySnapshot {
  readonly count: number
  readonly meanMicros: number
  readonly p50Micros: number
  readonly p99Micros: number
  readonly maxMicros: number
  /** Counts per power-of-two microsecond bucket (see LatencyHistogram). */
  readonly buckets: readonly number[]
}

export interface QpStatsSnapshot {
  readonly bytesSent: number
  readonly bytesReceived: number
  readonly opsCompleted: number
  readonly errors: number
  readonly latency: LatencySnapshot
}

export class QpStats {
  bytesSent = 0
  bytesReceived = 0
  opsCompleted = 0
  errors = 0
  readonly latency = new LatencyHistogram()

  snapshot(): QpStatsSnapshot {
    return {
      bytesSent: this.bytesSent,
      bytesReceived: this.bytesReceived,
      opsCompleted: this.opsCompleted,
      errors: this.errors,
      latency: this.latency.snapshot(),
    }
  }

  /** The sum of several QPs' stats. */
  static sum(all: Iterable<QpStats>): QpStats {
    const total = new QpStats()
    for (const s of all) {
      total.bytesSent += s.bytesSent
      total.bytesReceived += s.bytesReceived
      total.opsCompleted += s.opsCompleted
      total.errors += s.errors
      total.latency.merge(s.latency)
    }
    return total
  }
}
