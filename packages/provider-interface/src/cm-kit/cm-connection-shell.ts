/**
 * What every rdma_cm connection of both connection managers has, whatever speaks the CM
 * protocol beneath: its role, both rdma_cm addresses, the `disconnected` promise, and the move of
 * its QP to ERR when it ends (so posted work flushes).
 */
import type { CmAddress } from '../cm-spi.js'
import { QpState } from '../constants.js'
import { CM_ALL_ACCESS, cmTarget } from './cm-checks.js'

/** The QP operations a CM needs (core's QueuePair has them). */
export interface CmKitQp {
  readonly state: QpState
  modify(attrs: { readonly state: QpState; readonly accessFlags?: number; readonly portNum?: number; readonly pkeyIndex?: number }): void
  close(): Promise<void>
}

export class CmConnectionShell<Ending> {
  readonly role: 'active' | 'passive'
  /** Our rdma_cm address and port. */
  local: CmAddress
  /** The peer's rdma_cm address and port. */
  remote: CmAddress
  /** Resolves once the connection has ended, however it ended. */
  readonly disconnected: Promise<Ending>
  readonly #ended: (ending: Ending) => void

  constructor(role: 'active' | 'passive', local: CmAddress, remote: CmAddress) {
    this.role = role
    this.local = local
    this.remote = remote
    let ended!: (ending: Ending) => void
    this.disconnected = new Promise((resolve) => (ended = resolve))
    this.#ended = ended
  }

  /** Resolves `disconnected` (the first call wins). */
  protected resolveDisconnected(ending: Ending): void {
    this.#ended(ending)
  }

  /** The peer as errors name it. */
  protected get target(): string {
    return cmTarget(this.remote.address, this.remote.port)
  }
}

/** Moves a connection's QP to ERR unless it is in RESET or ERR already, or closed (then there is nothing to flush). */
export function cmQpToError(qp: CmKitQp | null): void {
  if (qp === null) return
  try {
    if (qp.state !== QpState.ERR && qp.state !== QpState.RESET) qp.modify({ state: QpState.ERR })
  } catch {
    // the application closed the QP already
  }
}

/**
 * A CM connection's QP in INIT: made by `create`, given the access flags (default CM_ALL_ACCESS),
 * port and P_Key index, then `prepare` (post receives before the REQ/REP leaves). Closed again when
 * any step throws.
 */
export function createCmQp<Q extends CmKitQp>(
  create: () => Q,
  setup: { readonly accessFlags?: number; readonly prepare?: (qp: Q) => void },
  path: { readonly portNum: number; readonly pkeyIndex: number },
): Q {
  const qp = create()
  try {
    qp.modify({ state: QpState.INIT, accessFlags: setup.accessFlags ?? CM_ALL_ACCESS, portNum: path.portNum, pkeyIndex: path.pkeyIndex })
    setup.prepare?.(qp)
  } catch (err) {
    void qp.close().catch(() => {})
    throw err
  }
  return qp
}
