/**
 * One rdma_cm connection of provider-verbs: its rdma_cm_id (a handle on the manager's channel)
 * and its QP, a core QueuePair in RTS. Ends by `disconnect()` (DREQ; the QP goes to ERR first, so
 * posted work flushes) or by the peer's DREQ (RDMA_CM_EVENT_DISCONNECTED: the QP goes to ERR and
 * rdma_disconnect answers with the DREP); either way the id is destroyed and `disconnected`
 * resolves. The QP stays the application's to close.
 */
import { CmConnectionShell, cmQpToError, type QueuePair } from '@rdma-session/core'
import type { CmAddress, CmEvent, CmRouter } from './cm-channel.js'

export type VerbsCmState = 'ESTABLISHED' | 'DISCONNECTING' | 'CLOSED'

/** Why a connection ended (the shape of provider-softroce's CmDisconnectInfo). */
export interface CmDisconnectInfo {
  /** 'local': we disconnected; 'remote': the peer's DREQ (or the device went away); 'closed': the manager was closed. */
  readonly by: 'local' | 'remote' | 'closed'
  /** rdma_cm's DREQ carries none through librdmacm: always empty. */
  readonly privateData: Uint8Array
}

const EMPTY = new Uint8Array(0)

export class VerbsCmConnection extends CmConnectionShell<CmDisconnectInfo> {
  /** The rdma_cm_id's handle on the manager's channel. */
  readonly handle: number
  readonly qp: QueuePair
  /** The peer's private data: the REQ's (passive side; rdma_cm gives 56 bytes, zero-padded), the REP's (active side; 196 bytes). */
  readonly privateData: Uint8Array
  state: VerbsCmState = 'ESTABLISHED'
  readonly #router: CmRouter
  readonly #onClosed: (c: VerbsCmConnection) => void

  /** @internal made by the manager once the connection is established */
  constructor(router: CmRouter, role: 'active' | 'passive', handle: number, qp: QueuePair, privateData: Uint8Array, local: CmAddress, remote: CmAddress, onClosed: (c: VerbsCmConnection) => void) {
    super(role, local, remote)
    this.#router = router
    this.handle = handle
    this.qp = qp
    this.privateData = privateData
    this.#onClosed = onClosed
    router.handle(handle, (e) => this.#onEvent(e))
  }

  /** Sends a DREQ and resolves once the peer's DREP (or rdma_cm's timeout) ended the connection. Idempotent. */
  async disconnect(): Promise<void> {
    if (this.state === 'ESTABLISHED') {
      this.state = 'DISCONNECTING'
      cmQpToError(this.qp)
      const err = this.#router.channel.disconnect(this.handle)
      if (err !== 0) this.#end('local')
    }
    await this.disconnected
  }

  #onEvent(e: CmEvent): void {
    if (e.name !== 'RDMA_CM_EVENT_DISCONNECTED' && e.name !== 'RDMA_CM_EVENT_DEVICE_REMOVAL') return
    if (this.state === 'ESTABLISHED') {
      // The peer's DREQ: flush our QP, answer with the DREP.
      cmQpToError(this.qp)
      this.#router.channel.disconnect(this.handle)
      return this.#end('remote')
    }
    if (this.state === 'DISCONNECTING') this.#end('local')
  }

  /** @internal the manager is closing: forget the connection without a DREQ exchange (destroying the id sends a DREQ). */
  close(): void {
    if (this.state === 'CLOSED') return
    cmQpToError(this.qp)
    this.#end('closed')
  }

  #end(by: CmDisconnectInfo['by']): void {
    if (this.state === 'CLOSED') return
    this.state = 'CLOSED'
    this.#router.destroy(this.handle)
    this.#onClosed(this)
    this.resolveDisconnected({ by, privateData: EMPTY })
  }
}
