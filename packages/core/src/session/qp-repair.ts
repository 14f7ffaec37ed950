/**
 * Handles a failed QP of a session (see QpFailurePolicy): records it, removes our end, makes sure
 * the peer hears of it (the notice is asked again while the peer does not answer, as long as the
 * session lives: a stalled peer must not miss it), then has the initiator add a replacement.
 */
import { ErrorCode, isRdmaError } from '../errors.js'
import type { QueuePair } from '../queue-pair.js'
import type { QpFailure } from './qp-failures.js'
import type { QpSpec } from './records.js'
import type { Session } from './session.js'

/** What repair needs from the session manager. */
export interface RepairHost {
  removeQp(session: Session, qp: QueuePair, notifyPeer: boolean): Promise<void>
  addQpsTo(session: Session, specs: readonly QpSpec[]): Promise<QueuePair[]>
  /** Asks the peer to drop its end of `qp`, which failed for `reason`; rejects as the request does. */
  tellPeer(session: Session, qp: QueuePair, reason: string): Promise<void>
  /** The spec to replace `qp` with, or undefined when it is not ours to replace (a joiner's QP, one we did not create). */
  replacementSpec(qp: QueuePair): QpSpec | undefined
}

/**
 * Repairs a session after `qp` failed: seen here (`local`: the peer is told) or by the peer
 * (`peer`: it told us). Resolves when done: removed, peer told, replacement added or given up.
 */
export async function repairFailedQp(host: RepairHost, session: Session, qp: QueuePair, reason: string, detectedBy: 'local' | 'peer'): Promise<void> {
  if (session.closed || !session.has(qp)) return
  const spec = session.initiator && session.qpFailurePolicy === 'replace' ? host.replacementSpec(qp) : undefined
  const failure = session.noteFailure({
    qpn: qp.qpn, remoteQpn: qp.remoteQpn, class: qp.qos.className, reason, detectedBy, action: spec === undefined ? 'removing' : 'replacing', at: Date.now(),
  })
  await host.removeQp(session, qp, false)
  if (detectedBy === 'local' && qp.remoteQpn !== null) await tellPeer(host, session, qp, reason)
  if (spec === undefined || session.closed) {
    failure.action = 'removed'
    return
  }
  // The peer has answered (or reported the failure itself): it is responsive, so the add-qps
  // round trip is not left to time out against a stalled peer that might act on it later.
  try {
    const [fresh] = await host.addQpsTo(session, [spec])
    session.noteReplaced(failure, fresh!)
  } catch (err) {
    failure.action = 'removed'
    failure.replaceError = err instanceof Error ? err.message : String(err)
  }
}

/** Tells the peer until it answers (any answer: it may have dropped its end already) or the session ends. */
async function tellPeer(host: RepairHost, session: Session, qp: QueuePair, reason: string): Promise<void> {
  while (!session.closed) {
    try {
      await host.tellPeer(session, qp, reason)
      return
    } catch (err) {
      if (!isRdmaError(err, ErrorCode.TIMEOUT)) return
    }
  }
}
