/**
 * rdma_cm's failures in words: an event that ends a connection attempt (REJECTED, UNREACHABLE,
 * CONNECT_ERROR, ADDR_ERROR, ROUTE_ERROR) becomes an error naming the event and its status: a
 * REJ reason for REJECTED (IBTA vol. 1 table 112, Linux `enum ib_cm_rej_reason`), else a negative errno.
 */
import { constants } from 'node:os'
import { ConnectionRefusedError, RdmaError, type ErrorCode } from '@rdma-session/core'

/** REJ reasons by number (what RDMA_CM_EVENT_REJECTED's status is on InfiniBand and RoCE). */
export const REJ_REASONS: Readonly<Record<number, string>> = {
  1: 'no QP', 2: 'no EEC', 3: 'no resources', 4: 'timeout', 5: 'unsupported request', 6: 'invalid comm ID',
  7: 'invalid comm instance', 8: 'invalid service ID (nobody listens on that port)', 9: 'invalid transport type',
  10: 'stale connection', 11: 'RDC does not exist', 12: 'invalid GID', 13: 'invalid LID', 14: 'invalid SL',
  15: 'invalid traffic class', 16: 'invalid hop limit', 17: 'invalid packet rate', 24: 'port CM redirect',
  25: 'port redirect', 26: 'invalid MTU', 27: 'insufficient responder resources', 28: 'consumer defined (the application rejected it)',
  29: 'invalid RNR retry', 31: 'invalid class version', 32: 'invalid flow label', 35: 'vendor option not supported',
}

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([k, v]) => [v, k]))

/** "status 28 (consumer defined …)" for REJECTED, "status -110 (ETIMEDOUT)" otherwise. */
export function describeStatus(event: string, status: number): string {
  if (event === 'RDMA_CM_EVENT_REJECTED') return `status ${status} (${REJ_REASONS[status] ?? 'unknown REJ reason'})`
  const name = ERRNO_NAMES.get(-status) ?? ERRNO_NAMES.get(status)
  return `status ${status}${name === undefined ? '' : ` (${name})`}`
}

/** ERR_RDMA_CM: rdma_cm reported an event that ends the attempt; `event` and `status` say which and why. */
export class RdmaCmError extends RdmaError {
  readonly event: string
  readonly status: number
  constructor(event: string, status: number, message: string, details: Record<string, unknown> = {}) {
    super('ERR_RDMA_CM' as unknown as ErrorCode, message, { event, status, ...details })
    this.event = event
    this.status = status
  }
}

/** The error for a failing event while connecting to `target`: REJECTED is ConnectionRefusedError (as in provider-softroce), the rest RdmaCmError. */
export function cmEventError(event: string, status: number, target: string, privateData: Uint8Array | null): RdmaError {
  const message = `rdma_cm: ${event} ${describeStatus(event, status)} connecting to ${target}`
  if (event === 'RDMA_CM_EVENT_REJECTED') {
    return new ConnectionRefusedError(target, message, { event, status, rejReason: status, rejReasonName: REJ_REASONS[status] ?? null, privateData })
  }
  return new RdmaCmError(event, status, message, { target })
}
