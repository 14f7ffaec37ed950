/** The RC attributes a QP uses when modify() does not set them, in one place for every provider and core's sessions. */

/** `rnrRetry` (and `retryCnt` in some stacks) of 7 means "retry forever" after an RNR NAK. */
export const RNR_RETRY_INFINITE = 7

export const QP_DEFAULTS = Object.freeze({
  /** Local ACK timeout encoding: 4.096 µs · 2^14 ≈ 67 ms. */
  timeout: 14,
  /** Retries after a timeout or sequence NAK without progress, then RETRY_EXC_ERR. */
  retryCnt: 7,
  /** Retries after RNR NAKs; 7 = forever. */
  rnrRetry: RNR_RETRY_INFINITE,
  /** RNR NAK timer encoding the responder sends (12 = 0.64 ms). */
  minRnrTimer: 12,
  /** Outstanding RDMA READs and atomics, as requester (maxRdAtomic) and responder (maxDestRdAtomic). */
  maxRdAtomic: 16,
  /** Path MTU a QP has before RTR sets one. */
  pathMtu: 1024,
} as const)
