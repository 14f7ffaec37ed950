/**
 * Handles a failed QP of a session (see QpFailurePolicy): records it, removes the pair at both
 * ends (telling the peer when we saw the failure), and has the initiator add a replacement.
 */
import type { QueuePair } from '../queue-pair.js'
import type { QpFailure } from './qp-failures.js'
import type { QpSpec } from './records.js'
import type { Session } from './session.js'

/** What repair needs from the session manager. */
export interface RepairHost {
  removeQp(session: Session, qp: QueuePair, notifyPeer: boolean, failure?: string): Promise<void>
  addQpsTo(session: Session, specs: readonly QpSpec[]): Promise<QueuePair[]>
  /** The spec to replace `qp` with, or undefined when it is not ours to replace (a joiner's QP, one we did not create). */
  replacementSpec(qp: QueuePair): QpSpec | undefined
}

/** Resolves once the failed QP is removed; a replacement, if any, follows on its own. */
export async function repairFailedQp(host: RepairHost, session: Session, qp: QueuePair, reason: string, detectedBy: 'local' | 'peer'): Promise<void> {
  if (session.closed || !session.has(qp)) return
  const spec = session.initiator && session.qpFailurePolicy === 'replace' ? host.replacementSpec(qp) : undefined
  const failure = session.noteFailure({
    qpn: qp.qpn, remoteQpn: qp.remoteQpn, class: qp.qos.className, reason, detectedBy, action: spec === undefined ? 'removing' : 'replacing', at: Date.now(),
  })
  // Tell the peer only what we saw ourselves: a failure it reported needs no answer but the removal.
  const removed = host.removeQp(session, qp, detectedBy === 'local', reason)
  if (spec === undefined) {
    await removed
    failure.action = 'removed'
    return
  }
  void removed.then(() => replace(host, session, failure, spec))
}

async function replace(host: RepairHost, session: Session, failure: QpFailure, spec: QpSpec): Promise<void> {
  try {
    session.assertOpen()
    const [fresh] = await host.addQpsTo(session, [spec])
    session.noteReplaced(failure, fresh!)
  } catch (err) {
    failure.action = 'removed'
    failure.replaceError = err instanceof Error ? err.message : String(err)
  }
}
