/** The RC QP state machine: which transitions exist and which attributes each one requires or allows. */
import { PATH_MTUS, QpState } from './constants.js'
import { QpAttributeError, QpStateError } from './errors.js'
import type { QpModifyAttrs } from './spi.js'

type AttrName = Exclude<keyof QpModifyAttrs, 'state'>

interface TransitionRule {
  readonly required: readonly AttrName[]
  readonly optional: readonly AttrName[]
}

const INIT_ATTRS: readonly AttrName[] = ['accessFlags', 'portNum', 'pkeyIndex']
const RTR_REQUIRED: readonly AttrName[] = ['remote', 'pathMtu', 'destQpn', 'rqPsn']
const RTR_OPTIONAL: readonly AttrName[] = ['maxDestRdAtomic', 'minRnrTimer', 'encapsulation', 'encryption', 'accessFlags', 'pkeyIndex']
const RTS_OPTIONAL: readonly AttrName[] = ['timeout', 'retryCnt', 'rnrRetry', 'maxRdAtomic', 'accessFlags', 'minRnrTimer']
const NONE: readonly AttrName[] = []

const rule = (required: readonly AttrName[], optional: readonly AttrName[]): TransitionRule => ({ required, optional })

/** Allowed transitions for RC QPs, after the table in the IB spec (ch. 10.3) and libibverbs' qp_state_table. */
const TRANSITIONS: Readonly<Record<QpState, Partial<Record<QpState, TransitionRule>>>> = {
  RESET: { RESET: rule(NONE, NONE), INIT: rule(['accessFlags'], ['portNum', 'pkeyIndex']), ERR: rule(NONE, NONE) },
  INIT: { RESET: rule(NONE, NONE), INIT: rule(NONE, INIT_ATTRS), RTR: rule(RTR_REQUIRED, RTR_OPTIONAL), ERR: rule(NONE, NONE) },
  RTR: { RESET: rule(NONE, NONE), RTS: rule(['sqPsn'], RTS_OPTIONAL), ERR: rule(NONE, NONE) },
  RTS: { RESET: rule(NONE, NONE), RTS: rule(NONE, ['accessFlags', 'minRnrTimer', 'encryption']), SQD: rule(NONE, NONE), ERR: rule(NONE, NONE) },
  SQD: { RESET: rule(NONE, NONE), RTS: rule(NONE, ['accessFlags', 'minRnrTimer', 'encryption']), SQD: rule(NONE, ['accessFlags', 'timeout', 'retryCnt', 'rnrRetry']), ERR: rule(NONE, NONE) },
  SQE: { RESET: rule(NONE, NONE), RTS: rule(NONE, ['accessFlags', 'minRnrTimer']), ERR: rule(NONE, NONE) },
  ERR: { RESET: rule(NONE, NONE), ERR: rule(NONE, NONE) },
}

function inRange(attr: AttrName, value: unknown, min: number, max: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new QpAttributeError(attr, `must be an integer from ${min} to ${max}, got ${String(value)}`)
  }
}

/** Checks each attribute's value range. */
function checkValues(attrs: QpModifyAttrs): void {
  const a = attrs as unknown as Record<string, unknown>
  if (a.accessFlags !== undefined) inRange('accessFlags', a.accessFlags, 0, 15)
  if (a.portNum !== undefined) inRange('portNum', a.portNum, 1, 255)
  if (a.pkeyIndex !== undefined) inRange('pkeyIndex', a.pkeyIndex, 0, 0xffff)
  if (a.pathMtu !== undefined && !(PATH_MTUS as readonly unknown[]).includes(a.pathMtu)) {
    throw new QpAttributeError('pathMtu', `must be one of ${PATH_MTUS.join(', ')}, got ${String(a.pathMtu)}`)
  }
  if (a.destQpn !== undefined) inRange('destQpn', a.destQpn, 1, 0xffffff)
  if (a.rqPsn !== undefined) inRange('rqPsn', a.rqPsn, 0, 0xffffff)
  if (a.sqPsn !== undefined) inRange('sqPsn', a.sqPsn, 0, 0xffffff)
  if (a.maxDestRdAtomic !== undefined) inRange('maxDestRdAtomic', a.maxDestRdAtomic, 0, 255)
  if (a.maxRdAtomic !== undefined) inRange('maxRdAtomic', a.maxRdAtomic, 0, 255)
  if (a.minRnrTimer !== undefined) inRange('minRnrTimer', a.minRnrTimer, 0, 31)
  if (a.timeout !== undefined) inRange('timeout', a.timeout, 0, 31)
  if (a.retryCnt !== undefined) inRange('retryCnt', a.retryCnt, 0, 7)
  if (a.rnrRetry !== undefined) inRange('rnrRetry', a.rnrRetry, 0, 7)
  if (a.remote !== undefined) {
    const r = a.remote as { address?: unknown; port?: unknown; sourcePort?: unknown; extensions?: unknown } | null
    if (r === null || typeof r !== 'object' || typeof r.address !== 'string' || r.address.length === 0) {
      throw new QpAttributeError('remote', 'must be { address, port } with a non-empty address')
    }
    inRange('remote', r.port, 1, 65535)
    if (r.sourcePort !== undefined) inRange('remote', r.sourcePort, 1, 65535)
    if (r.extensions !== undefined && (!Array.isArray(r.extensions) || r.extensions.length > 16 || !r.extensions.every((x) => typeof x === 'string' && x.length > 0 && x.length <= 32))) {
      throw new QpAttributeError('remote', 'extensions must be a list of at most 16 extension names')
    }
  }
  if (a.encapsulation !== undefined) {
    const e = a.encapsulation as Record<string, unknown>
    inRange('encapsulation', e.udpSourcePort, 0, 65535)
    inRange('encapsulation', e.dscp, 0, 63)
    inRange('encapsulation', e.ecn, 0, 3)
    inRange('encapsulation', e.hopLimit, 1, 255)
  }
  if (a.encryption !== undefined && a.encryption !== null) {
    const e = a.encryption as Record<string, unknown>
    if (e.suite !== 'aes-256-gcm') throw new QpAttributeError('encryption', `unknown suite '${String(e.suite)}'; only aes-256-gcm`)
    for (const k of ['txKey', 'rxKey'] as const) {
      const key = e[k]
      if (!(key instanceof Uint8Array) || key.length !== 32) throw new QpAttributeError('encryption', `${k} must be 32 bytes`)
    }
  }
}

/**
 * Throws QpStateError for a transition that does not exist and QpAttributeError
 * naming the attribute that is missing, not allowed in this transition, or out of range.
 */
export function checkQpTransition(from: QpState, attrs: QpModifyAttrs): void {
  const to = attrs.state
  if (!(to in TRANSITIONS)) throw new QpAttributeError('state', `unknown QP state '${String(to)}'`)
  const r = TRANSITIONS[from][to]
  if (r === undefined) {
    const allowed = Object.keys(TRANSITIONS[from]).join(', ')
    throw new QpStateError(`invalid QP transition ${from} -> ${to}; from ${from} a QP can go to ${allowed}`, { from, to })
  }
  for (const name of r.required) {
    if (attrs[name] === undefined) throw new QpAttributeError(name, `required for ${from} -> ${to}`, { from, to })
  }
  for (const name of Object.keys(attrs) as (keyof QpModifyAttrs)[]) {
    if (name === 'state' || attrs[name] === undefined) continue
    if (!r.required.includes(name) && !r.optional.includes(name)) {
      throw new QpAttributeError(name, `not allowed in ${from} -> ${to}`, { from, to })
    }
  }
  checkValues(attrs)
}

/**
 * True when a QP in this state accepts send WRs: RTS executes them, SQD/SQE hold
 * them until the QP is back in RTS, ERR completes them with WR_FLUSH_ERR.
 */
export function canPostSend(state: QpState): boolean {
  return state === QpState.RTS || state === QpState.SQD || state === QpState.SQE || state === QpState.ERR
}

/** True when a QP in this state accepts receive WRs (they wait until RTR). */
export function canPostRecv(state: QpState): boolean {
  return state !== QpState.RESET
}
