/** A session's operating parameters (encryption and encapsulation): normalized once, then frozen. */
import { PATH_MTUS, type PathMtu } from '@rdma-session/provider-interface'
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

/**
 * Encryption a session asks for. Default (undefined): 'aes-256-gcm', required — sessions are
 * encrypted unless the application says otherwise. 'preferred': encrypted when both ends can,
 * plaintext otherwise (e.g. a provider without AEAD). 'none': plaintext RoCEv2, what kernel rxe
 * and RoCE NICs speak.
 */
export type EncryptionChoice = 'none' | 'preferred' | EncryptionSuite | EncryptionSpec

export interface SessionParamsSpec {
  readonly encryption?: EncryptionChoice
  readonly encapsulation?: EncapsulationSpec
}

export interface SessionParams {
  readonly encryption: { readonly suite: EncryptionSuite | 'none'; readonly required: boolean }
  readonly encapsulation: Required<EncapsulationSpec>
}

/** What a session gets when the application does not say: encrypted, or ERR_ENCRYPTION_UNSUPPORTED. */
export const DEFAULT_ENCRYPTION = 'aes-256-gcm' as const

function intIn(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}, got ${String(v)}`, { attribute: name })
  return v
}

export function normalizeParams(spec: SessionParamsSpec = {}): SessionParams {
  const enc = spec.encryption ?? DEFAULT_ENCRYPTION
  let encryption: SessionParams['encryption']
  if (enc === 'none') encryption = { suite: 'none', required: false }
  else if (enc === 'aes-256-gcm') encryption = { suite: enc, required: true }
  else if (enc === 'preferred') encryption = { suite: 'aes-256-gcm', required: false }
  else if (typeof enc === 'object' && enc !== null && enc.suite === 'aes-256-gcm') encryption = { suite: enc.suite, required: enc.required ?? true }
  else throw new InvalidArgumentError(`unknown encryption ${JSON.stringify(enc)}; use 'aes-256-gcm' (the default), 'preferred' or 'none'`)
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
