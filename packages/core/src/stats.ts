/** Counters and latency histograms kept per QP, and their sum per session. */

/** Latency buckets are powers of two in microseconds: bucket i holds [2^(i-1), 2^i) µs; bucket 0 holds < 1 µs. */
const BUCKETS = 32

/** Where a quantile lies: the estimate and the bounds of the bucket that holds it (clamped to the smallest and largest sample). */
export interface QuantileEstimate {
  /** Interpolated within the bucket; exact for the smallest and the largest sample. */
  readonly micros: number
  readonly lowMicros: number
  readonly highMicros: number
}

const NO_SAMPLES: QuantileEstimate = { micros: 0, lowMicros: 0, highMicros: 0 }

export class LatencyHistogram {
  #counts: Uint32Array | null = null
  #total = 0
  #sumMicros = 0
  #minMicros = Infinity
  #maxMicros = 0

  record(micros: number): void {
    const counts = (this.#counts ??= new Uint32Array(BUCKETS))
    const i = bucketOf(micros)
    counts[i] = (counts[i] ?? 0) + 1
    this.#total++
    this.#sumMicros += micros
    if (micros < this.#minMicros) this.#minMicros = micros
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
    this.#minMicros = Math.min(this.#minMicros, other.#minMicros)
    this.#maxMicros = Math.max(this.#maxMicros, other.#maxMicros)
  }

  /**
   * The nearest-rank quantile q (0–1) as far as the buckets know it: the true sample lies in
   * [lowMicros, highMicros] (its bucket, clamped to the smallest and largest sample), and
   * `micros` is interpolated linearly by rank within that bucket, so it is off by less than the
   * bucket's width (a factor of two above 1 µs). All zeros when empty.
   */
  estimate(q: number): QuantileEstimate {
    const counts = this.#counts
    if (counts === null || this.#total === 0) return NO_SAMPLES
    const rank = Math.min(this.#total, Math.max(1, Math.ceil(q * this.#total)))
    if (rank === 1) return exact(this.#minMicros)
    if (rank === this.#total) return exact(this.#maxMicros)
    let below = 0
    for (let i = 0; i < BUCKETS; i++) {
      const inBucket = counts[i] ?? 0
      if (below + inBucket >= rank) {
        const low = Math.max(this.#minMicros, i === 0 ? 0 : 2 ** (i - 1))
        const high = Math.min(this.#maxMicros, i === BUCKETS - 1 ? Infinity : 2 ** i)
        return { micros: low + ((high - low) * (rank - below - 0.5)) / inBucket, lowMicros: low, highMicros: high }
      }
      below += inBucket
    }
    return exact(this.#maxMicros)
  }

  /** The estimate of quantile q (0–1) in µs; see estimate() for its bounds. */
  quantile(q: number): number {
    return this.estimate(q).micros
  }

  snapshot(): LatencySnapshot {
    const p50 = this.estimate(0.5)
    const p99 = this.estimate(0.99)
    return {
      count: this.#total,
      meanMicros: this.#total === 0 ? 0 : this.#sumMicros / this.#total,
      p50Micros: p50.micros,
      p99Micros: p99.micros,
      p50,
      p99,
      minMicros: this.#total === 0 ? 0 : this.#minMicros,
      maxMicros: this.#maxMicros,
      buckets: this.#counts === null ? [] : Array.from(this.#counts),
    }
  }
}

/** The bucket of a sample: [2^(i-1), 2^i) µs, checked against the bounds (log2 may round across one). */
function bucketOf(micros: number): number {
  if (!(micros >= 1)) return 0
  let i = Math.min(BUCKETS - 1, Math.floor(Math.log2(micros)) + 1)
  if (micros < 2 ** (i - 1)) i--
  else if (i < BUCKETS - 1 && micros >= 2 ** i) i++
  return i
}

function exact(micros: number): QuantileEstimate {
  return { micros, lowMicros: micros, highMicros: micros }
}

export interface LatencySnapshot {
  readonly count: number
  readonly meanMicros: number
  /** The median, interpolated within its bucket (the same as `p50.micros`). */
  readonly p50Micros: number
  /** The 99th percentile, interpolated within its bucket (the same as `p99.micros`). */
  readonly p99Micros: number
  /** The median with the bounds of its bucket: the true median lies between them. */
  readonly p50: QuantileEstimate
  /** The 99th percentile with the bounds of its bucket. */
  readonly p99: QuantileEstimate
  readonly minMicros: number
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
