/** A session's operating parameters (encryption and encapsulation): normalized once, then frozen. */
import { PATH_MTUS, type PathMtu } from '../constants.js'
import { InvalidArgumentError } from '../errors.js'

export type EncryptionSuite = 'aes-256-gcm'

export interface EncryptionSpec {
  readonly suite: EncryptionSuite
  /** When false, a provider that cannot encrypt gives a plaintext session instead of ERR_ENCRYPTION_UNSUPPORTED. Default true. */
  readonly required?: boolean
}

export interface EncapsulationSpec {
  /** Path MTU 256–4096; the session uses the smallest both sides support. Default 1024. */
  readonly mtu?: PathMtu
  /** UDP source port; 0 (default) gives each QP its own, for ECMP entropy. */
  readonly udpSourcePort?: number
  readonly dscp?: number
  readonly ecn?: number
  readonly hopLimit?: number
}

export interface SessionParamsSpec {
  readonly encryption?: 'none' | EncryptionSuite | EncryptionSpec
  readonly encapsulation?: EncapsulationSpec
}

export interface SessionParams {
  readonly encryption: { readonly suite: EncryptionSuite | 'none'; readonly required: boolean }
  readonly encapsulation: Required<EncapsulationSpec>
}

function intIn(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}, got ${String(v)}`, { attribute: name })
  return v
}

export function normalizeParams(spec: SessionParamsSpec = {}): SessionParams {
  const enc = spec.encryption ?? 'none'
  let encryption: SessionParams['encryption']
  if (enc === 'none') encryption = { suite: 'none', required: false }
  else if (enc === 'aes-256-gcm') encryption = { suite: enc, required: true }
  else if (typeof enc === 'object' && enc !== null && enc.suite === 'aes-256-gcm') encryption = { suite: enc.suite, required: enc.required ?? true }
  else throw new InvalidArgumentError(`unknown encryption ${JSON.stringify(enc)}; use 'none' or 'aes-256-gcm'`)
  const e = spec.encapsulation ?? {}
  const mtu = e.mtu ?? 1024
  if (!(PATH_MTUS as readonly number[]).includes(mtu)) throw new InvalidArgumentError(`encapsulation.mtu must be one of ${PATH_MTUS.join(', ')}, got ${String(mtu)}`)
  return Object.freeze({
    encryption: Object.freeze(encryption),
    encapsulation: Object.freeze({
      mtu,
      udpSourcePort: intIn('encapsulation.udpSourcePort', e.udpSourcePort ?? 0, 0, 65535),
      dscp: intIn('encapsulation.dscp', e.dscp ?? 0, 0, 63),
      ecn: intIn('encapsulation.ecn', e.ecn ?? 0, 0, 3),
      hopLimit: intIn('encapsulation.hopLimit', e.hopLimit ?? 64, 1, 255),
    }),
  })
}

/** The same parameters with the MTU lowered to what both sides support. */
export function withMtu(params: SessionParams, mtu: PathMtu): SessionParams {
  return Object.freeze({ ...params, encapsulation: Object.freeze({ ...params.encapsulation, mtu }) })
}

export function withoutEncryption(params: SessionParams): SessionParams {
  return Object.freeze({ ...params, encryption: Object.freeze({ suite: 'none' as const, required: false }) })
}
