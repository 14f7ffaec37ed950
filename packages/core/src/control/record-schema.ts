/** Schemas (valibot) for the session records that travel on the control plane: every request, reply and error record is checked before use. */
import * as v from 'valibot'
import { PATH_MTUS } from '@rdma-session/provider-interface'
import { MAX_QPS_PER_REQUEST } from '../session/session-manager.js'

const SAFE_NAME = /^[A-Za-z0-9_.:@/+-]{1,64}$/
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype'])

/** Transport extension names (DeviceInfo.extensions) an endpoint record may carry, and how many. */
export const EXTENSION_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/
export const MAX_EXTENSIONS = 16

export const uint = (max: number) => v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(max))
export const text = (max: number) => v.pipe(v.string(), v.maxLength(max))
export const sessionIdSchema = v.pipe(v.string(), v.regex(/^[0-9a-f]{32}$/, 'a session ID is 32 hex digits'))

/** An object used as a map (regions): bounded, with safe key names. */
const boundedMap = <T extends v.GenericSchema>(value: T, maxEntries: number) =>
  v.pipe(
    v.record(v.pipe(v.string(), v.regex(SAFE_NAME), v.check((k) => !FORBIDDEN_KEYS.has(k), 'reserved key')), value),
    v.check((r) => Object.keys(r).length <= maxEntries, `at most ${maxEntries} entries`),
  )

export const endpointSchema = v.strictObject({
  address: v.pipe(v.string(), v.regex(/^[0-9A-Za-z.:%_-]{1,64}$/, 'an address is an IPv4/IPv6 literal or host name')),
  port: uint(65535),
  sourcePort: v.optional(v.pipe(uint(65535), v.minValue(1))),
  extensions: v.optional(v.pipe(v.array(v.pipe(v.string(), v.regex(EXTENSION_NAME, 'an extension name is 1-32 lowercase letters, digits and dashes'))), v.maxLength(MAX_EXTENSIONS))),
})

const qosSchema = v.strictObject({
  class: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(64))),
  serviceLevel: v.optional(uint(15)),
  trafficClass: v.optional(uint(255)),
  weight: v.optional(v.pipe(uint(1000), v.minValue(1))),
  rateLimit: v.optional(v.union([v.pipe(v.number(), v.minValue(0), v.maxValue(1e15)), text(32)])),
})

const capsSchema = v.strictObject({
  maxSendWr: v.optional(uint(1 << 20)),
  maxRecvWr: v.optional(uint(1 << 20)),
  maxSendSge: v.optional(uint(1024)),
  maxRecvSge: v.optional(uint(1024)),
  maxInlineData: v.optional(uint(1 << 16)),
})

const qpSpecSchema = v.strictObject({ qos: v.optional(qosSchema), caps: v.optional(capsSchema) })
const qpOfferSchema = v.strictObject({ spec: qpSpecSchema, qpn: uint(0xffffff), psn: uint(0xffffff) })
const qpAnswerSchema = v.strictObject({ qpn: uint(0xffffff), psn: uint(0xffffff) })
const qpOffers = v.pipe(v.array(qpOfferSchema), v.minLength(1), v.maxLength(MAX_QPS_PER_REQUEST))
const qpAnswers = v.pipe(v.array(qpAnswerSchema), v.maxLength(MAX_QPS_PER_REQUEST))

const mtuSchema = v.picklist(PATH_MTUS)
export const paramsSchema = v.strictObject({
  encryption: v.strictObject({ suite: v.picklist(['aes-256-gcm', 'none']), required: v.boolean() }),
  encapsulation: v.strictObject({ mtu: mtuSchema, udpSourcePort: uint(65535), dscp: uint(63), ecn: uint(3), hopLimit: v.pipe(uint(255), v.minValue(1)) }),
})

const regionSchema = v.strictObject({ addr: uint(Number.MAX_SAFE_INTEGER), rkey: uint(0xffffffff), length: uint(Number.MAX_SAFE_INTEGER) })
const regionsSchema = boundedMap(regionSchema, 64)

const base = { sessionId: sessionIdSchema, from: endpointSchema }

/** Requests one session manager sends another. There is no `secret` field: on the control plane both sides derive it. */
export const peerRequestSchema = v.variant('type', [
  v.strictObject({ type: v.literal('open-session'), ...base, params: paramsSchema, maxMtu: mtuSchema, qps: qpOffers, regions: regionsSchema }),
  v.strictObject({ type: v.literal('add-qps'), ...base, qps: qpOffers }),
  v.strictObject({ type: v.literal('remove-qp'), ...base, qpn: uint(0xffffff), failure: v.optional(text(256)) }),
  v.strictObject({ type: v.literal('close-session'), ...base, reason: text(256) }),
  v.strictObject({ type: v.literal('rekey'), ...base, epoch: uint(0xffffffff) }),
  v.strictObject({ type: v.literal('join-session'), ...base, token: text(1024) }),
])

export const peerReplySchema = v.variant('type', [
  v.strictObject({ type: v.literal('open-session'), from: endpointSchema, mtu: mtuSchema, encryption: v.picklist(['aes-256-gcm', 'none']), qps: qpAnswers, regions: regionsSchema }),
  v.strictObject({ type: v.literal('add-qps'), qps: qpAnswers }),
  v.strictObject({ type: v.literal('ack') }),
  v.strictObject({ type: v.literal('join-session'), from: endpointSchema, params: paramsSchema, epoch: uint(0xffffffff), regions: regionsSchema }),
])

const detailValue = v.union([v.string(), v.number(), v.boolean(), v.null()])
export const errorRecordSchema = v.strictObject({
  code: v.pipe(v.string(), v.regex(/^ERR_[A-Z_]{1,40}$/)),
  message: text(2048),
  details: v.optional(v.pipe(v.record(v.pipe(v.string(), v.maxLength(64), v.check((k) => !FORBIDDEN_KEYS.has(k))), detailValue), v.check((r) => Object.keys(r).length <= 32))),
})

/** An error record with only the details the schema allows (primitive values), so replies always validate. */
export function wireErrorDetails(details: Record<string, unknown> | undefined): Record<string, string | number | boolean | null> | undefined {
  if (details === undefined) return undefined
  const out: Record<string, string | number | boolean | null> = {}
  let n = 0
  for (const [k, val] of Object.entries(details)) {
    if (n >= 32 || k.length > 64 || FORBIDDEN_KEYS.has(k)) continue
    if (val === null || typeof val === 'boolean' || (typeof val === 'number' && Number.isFinite(val))) out[k] = val
    else if (typeof val === 'string') out[k] = val.slice(0, 512)
    else continue
    n++
  }
  return out
}
