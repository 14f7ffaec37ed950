/**
 * A softroce completion queue: core's CompletionRing. Completions are added only from
 * socket, timer or flush callbacks, never inside a post call; the notify callback runs in a
 * later macrotask (setImmediate), once per batch. Completions of latency-class QPs added
 * while a received packet is handled (`push(wc, true)`) are notified in a microtask at the
 * end of that socket callback instead: still never inside a post call, but before the rest of
 * the read batch and before the send scheduler's next turn. On the native receive path one
 * callback takes a batch of up to 32 datagrams; while the device has latency-class QPs the
 * others' datagrams in it are only copied aside for later (see the device's receive path). A
 * completion that does not fit is lost and every QP using the CQ goes to ERR with a 'fatal'
 * event (reason 'cq-overflow').
 */
import { CompletionRing } from '@rdma-session/provider-interface'

export type { CompletionProducer } from '@rdma-session/provider-interface'

export class SoftRoceCq extends CompletionRing {
  readonly #onDestroy: (cq: SoftRoceCq) => void

  constructor(depth: number, onDestroy: (cq: SoftRoceCq) => void) {
    super(depth)
    this.#onDestroy = onDestroy
  }

  protected onDestroyed(): void {
    this.#onDestroy(this)
  }
}
