/**
 * What a perftest run asks of its out-of-band exchange, whichever carries it: the TCP connection
 * (PerftestChannel) or, with -R, SENDs on an rdma_cm control QP (PerftestCmChannel). The client
 * sends first and then receives, the server receives and then sends, so both sides must make the
 * same exchanges in the same order.
 */
import type { PerftestDest } from './wire.js'

export interface PerftestExchange {
  readonly client: boolean
  /** Sends `mine`, receives the peer's `n` bytes (`untimed`: no deadline, the peer is running a test). */
  xchg(mine: Buffer, n: number, what: string, untimed?: boolean): Promise<Buffer>
  /**
   * ctx_hand_shake: our QP keys for the peer's. `beforeReply` runs on the server between
   * receiving and answering (what must be ready before the client goes on).
   */
  handshake(mine: PerftestDest, untimed?: boolean, beforeReply?: () => void): Promise<PerftestDest>
  /** ctx_close_connection. */
  closeConnection(mine: PerftestDest, untimed?: boolean): Promise<void>
  /** Ends the exchange without a closing handshake (ib_write_lat has none). */
  finish(): void
  /** The exchange ended in order (closeConnection or finish). */
  readonly finished: boolean
  /** Drops the exchange after a failure: nothing more to say to the peer. */
  destroy(): void
  /** Calls `gone` when the peer's side of the exchange goes away; returns how to stop watching. */
  onGone(gone: () => void): () => void
}
