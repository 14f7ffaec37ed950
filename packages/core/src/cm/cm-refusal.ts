/** rdma_cm refusals both ways: the error a listener's failed check becomes in a REJ, and the error a REJ becomes on the connecting side. */
import { ConnectionRefusedError, ErrorCode, JoinTokenError, RdmaError, isRdmaError } from '../errors.js'
import { CmRefusal, decodeCmPrivateData, encodeCmPrivateData, type CmRefusalCode } from './cm-private-data.js'

/** The refusal for a session-layer error (what a ws join would have answered), as REJ private data. */
export function refusalFor(err: unknown): Uint8Array {
  let code: CmRefusalCode = CmRefusal.NOT_ACCEPTED
  if (isRdmaError(err, 'ERR_SESSION_NOT_FOUND') || isRdmaError(err, 'ERR_SESSION_CLOSED')) code = CmRefusal.SESSION_NOT_FOUND
  else if (isRdmaError(err, 'ERR_REMOTE_MISMATCH')) code = CmRefusal.REMOTE_MISMATCH
  else if (isRdmaError(err, 'ERR_JOIN_TOKEN')) code = err.details.reason === 'expired' ? CmRefusal.TOKEN_EXPIRED : err.details.reason === 'exhausted' ? CmRefusal.TOKEN_EXHAUSTED : CmRefusal.SESSION_NOT_FOUND
  return encodeCmPrivateData({ kind: 'refuse', code })
}

const NAMES: Record<CmRefusalCode, string> = {
  1: 'malformed-private-data',
  2: 'unsupported-version',
  3: 'session-not-found',
  4: 'token-expired',
  5: 'token-exhausted',
  6: 'remote-mismatch',
  7: 'not-accepted',
}

/**
 * A failed rdma_cm connect as the application sees it: an rdma-session listener's refusal (REJ
 * private data) becomes the error a ws join gets for the same cause, with `details.cmRefusal` naming it.
 */
export function errorFromRefusal(err: unknown, target: string, sessionId?: string): unknown {
  if (!isRdmaError(err, 'ERR_CONNECTION_REFUSED')) return err
  const pd = (err as RdmaError).details.privateData
  const d = pd instanceof Uint8Array ? decodeCmPrivateData(pd) : { plain: true as const }
  if (d.plain || !('message' in d) || d.message.kind !== 'refuse') return err
  const code = d.message.code
  const details = { cmRefusal: NAMES[code], target, ...(sessionId === undefined ? {} : { sessionId }) }
  switch (code) {
    case CmRefusal.SESSION_NOT_FOUND:
      return new RdmaError(ErrorCode.SESSION_NOT_FOUND, `${target} knows no session ${sessionId ?? ''} this token opens (a wrong session ID or token get the same answer)`, details)
    case CmRefusal.TOKEN_EXPIRED:
      return new JoinTokenError('expired', `${target} refused the QP: the CM join token expired`, details)
    case CmRefusal.TOKEN_EXHAUSTED:
      return new JoinTokenError('exhausted', `${target} refused the QP: the CM join token's QP budget is spent`, details)
    case CmRefusal.REMOTE_MISMATCH:
      return new RdmaError(ErrorCode.REMOTE_MISMATCH, `${target} refused the QP: it does not come from the session's remote address`, details)
    case CmRefusal.NOT_ACCEPTED:
      return new ConnectionRefusedError(target, `${target} does not accept this connection (sessions disabled, an encrypted session, or a closed listener)`, details)
    default:
      return new ConnectionRefusedError(target, `${target} refused the connection: our private data was ${NAMES[code]}`, details)
  }
}
