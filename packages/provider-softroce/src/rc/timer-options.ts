/** The timer settings of a softroce device (bounds of the IB timer encodings in @rdma-session/rc-engine, ACK delay); tests shorten them. */

/** Timer settings a device applies to all its QPs; tests shorten them. */
export interface RcTimerOptions {
  /** Lower bound of the local ACK timeout in ms (default 1). */
  readonly ackTimeoutMinMs?: number
  /** Upper bound of the local ACK timeout in ms (default 10 000). */
  readonly ackTimeoutMaxMs?: number
  /** Upper bound of the RNR wait in ms (default 1000). */
  readonly rnrDelayMaxMs?: number
  /**
   * How long the responder may hold the ACK of packets that did not ask for one (AckReq clear:
   * unsignaled WRs), in ms (default 1). ACKs that were asked for go out at the end of the
   * current receive batch.
   */
  readonly ackDelayMs?: number
}

export interface RcTimers {
  readonly ackTimeoutMinMs: number
  readonly ackTimeoutMaxMs: number
  readonly rnrDelayMaxMs: number
  readonly ackDelayMs: number
}

export function resolveTimers(o: RcTimerOptions = {}): RcTimers {
  return {
    ackTimeoutMinMs: o.ackTimeoutMinMs ?? 1,
    ackTimeoutMaxMs: o.ackTimeoutMaxMs ?? 10_000,
    rnrDelayMaxMs: o.rnrDelayMaxMs ?? 1000,
    ackDelayMs: o.ackDelayMs ?? 1,
  }
}
