/**
 * The argument checks and small constants both rdma_cm connection managers (provider-softroce's
 * CM over QP1, provider-verbs' librdmacm binding) apply to listen/connect and to a request's answer.
 */
import { AccessFlag } from '../constants.js'
import { InvalidArgumentError } from '../errors.js'

/** The QP access flags a CM connection's QP gets unless the caller says otherwise: every remote operation. */
export const CM_ALL_ACCESS = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ | AccessFlag.REMOTE_ATOMIC

const EMPTY = new Uint8Array(0)

/** An rdma_cm port (or another 16-bit port), `min`..65535; else InvalidArgumentError naming `what`. */
export function checkCmPort(what: string, port: unknown, min = 1): number {
  if (!Number.isInteger(port) || (port as number) < min || (port as number) > 0xffff) throw new InvalidArgumentError(`${what} must be ${min}..65535, got ${String(port)}`)
  return port as number
}

/** A listener's backlog: absent, or a positive integer. */
export function checkCmBacklog(backlog: unknown): void {
  if (backlog !== undefined && !(Number.isInteger(backlog) && (backlog as number) >= 1)) throw new InvalidArgumentError(`backlog must be a positive integer, got ${String(backlog)}`)
}

/** Private data for a REQ, REP or REJ: absent (an empty array), or a Uint8Array of at most `max` bytes. */
export function checkCmPrivateData(what: string, data: Uint8Array | undefined, max: number): Uint8Array {
  if (data === undefined) return EMPTY
  if (!(data instanceof Uint8Array)) throw new InvalidArgumentError(`${what} must be a Uint8Array`)
  if (data.length > max) throw new InvalidArgumentError(`rdma_cm ${what} is at most ${max} bytes, got ${data.length}`)
  return data
}

/** The peer as errors name it: `rdma-cm://host:port` (an IPv6 host in brackets). */
export function cmTarget(host: string, port: number): string {
  return `rdma-cm://${host.includes(':') ? `[${host}]` : host}:${port}`
}
