/**
 * A completion queue: core's CompletionRing (completions only from fabric, timer or flush
 * callbacks, notify in a later macrotask once per batch, depth enforced with 'cq-overflow'
 * making every QP using it fatal), owned by a PD.
 */
import { CompletionRing } from '@rdma-session/provider-interface'

export type { CompletionProducer } from '@rdma-session/provider-interface'

/** What a CQ needs from its owner (the PD). */
export interface CqOwner {
  forgetCq(cq: MockCq): void
}

export class MockCq extends CompletionRing {
  constructor(
    readonly owner: CqOwner,
    depth: number,
  ) {
    super(depth)
  }

  protected onDestroyed(): void {
    this.owner.forgetCq(this)
  }
}
