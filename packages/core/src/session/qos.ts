/** Per-QP quality of service as users write it, and its normalized form. */
import { InvalidArgumentError } from '../errors.js'
import type { QpQos } from '../spi.js'

export interface QosSpec {
  /** A class name such as 'latency' or 'bulk'; striping and autoscaling select QPs by it. Default 'default'. */
  readonly class?: string
  /** IB service level 0–15. Default 0. */
  readonly serviceLevel?: number
  /** IP traffic class byte 0–255 (DSCP << 2 | ECN). Default: from the session's encapsulation. */
  readonly trafficClass?: number
  /** Share of the link when QPs compete, 1–1000. Default 1. */
  readonly weight?: number
  /** Bytes per second, or a string like '2Gbps', '500Mbps', '10MB/s'. Default unlimited. */
  readonly rateLimit?: number | string
}

const RATE_UNITS: Record<string, number> = {
  bps: 1 / 8, kbps: 1e3 / 8, mbps: 1e6 / 8, gbps: 1e9 / 8,
  'b/s': 1, 'kb/s': 1e3, 'mb/s': 1e6, 'gb/s': 1e9,
}

/** Parses '2Gbps', '500 Mbps', '10MB/s' or a number of bytes per second. */
export function parseRate(rate: number | string): number {
  if (typeof rate === 'number') {
    if (!Number.isFinite(rate) || rate < 0) throw new InvalidArgumentError(`rate limit must be a non-negative number of bytes per second, got ${rate}`)
    return rate
  }
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z/]+)\s*$/.exec(rate)
  const unit = m?.[2]
  const factor = unit === undefined ? undefined : (RATE_UNITS[unit.toLowerCase()] ?? (unit === 'B/s' ? 1 : undefined))
  if (m === null || factor === undefined) {
    throw new InvalidArgumentError(`cannot read rate '${rate}'; write it like '2Gbps', '500Mbps' or '10MB/s'`)
  }
  return Number(m[1]) * factor
}

function intIn(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) throw new InvalidArgumentError(`qos.${name} must be an integer from ${min} to ${max}, got ${String(v)}`, { attribute: name })
  return v
}

export function normalizeQos(spec: QosSpec = {}, defaultTrafficClass = 0): QpQos {
  const className = spec.class ?? 'default'
  if (typeof className !== 'string' || className.length === 0 || className.length > 64) throw new InvalidArgumentError('qos.class must be a non-empty string of at most 64 characters')
  return {
    className,
    serviceLevel: intIn('serviceLevel', spec.serviceLevel ?? 0, 0, 15),
    trafficClass: intIn('trafficClass', spec.trafficClass ?? defaultTrafficClass, 0, 255),
    weight: intIn('weight', spec.weight ?? 1, 1, 1000),
    rateLimitBps: spec.rateLimit === undefined ? 0 : parseRate(spec.rateLimit),
  }
}
