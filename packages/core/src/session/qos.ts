/** Per-QP quality of service as users write it, and its normalized form. */
import { InvalidArgumentError } from '../errors.js'
import type { QpQos } from '@rdma-session/provider-interface'
import { parseRate } from './rate.js'

export interface QosSpec {
  /** A class name such as 'latency' or 'bulk'; striping and autoscaling select QPs by it. Default 'default'. */
  readonly class?: string
  /** IB service level 0–15. Default 0. */
  readonly serviceLevel?: number
  /** IP traffic class byte 0–255 (DSCP << 2 | ECN). Default: from the session's encapsulation. */
  readonly trafficClass?: number
  /** Share of the link when QPs compete, 1–1000. Default 1. */
  readonly weight?: number
  /**
   * Bytes per second, or a rate with a unit read by networking convention (b = bit, B = byte):
   * '2Gbps', '500Mbps', '100Mb/s', '80Mbit/s' (bits) or '10MB/s', '10MBps', '64MiB/s' (bytes).
   * Default (and 0): unlimited.
   */
  readonly rateLimit?: number | string
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
    rateLimitBps: spec.rateLimit === undefined ? 0 : parseRate(spec.rateLimit, 'qos.rateLimit'),
  }
}
