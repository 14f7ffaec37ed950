/**
 * A responder that is closed right after its receive completion still ACKs what it executed, as
 * kernel rxe does: otherwise the requester (rc_pingpong's last SEND) retries into RETRY_EXC_ERR.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { connect, openPair, register, type Pair } from './harness.js'

let pair: Pair | null = null
afterEach(async () => {
  await pair?.close()
  pair = null
})

describe('ACK owed at close', () => {
  for (const how of ['qp.close()', 'ctx.close()'] as const) {
    it(`the receiver's ${how} right after the receive completion: the sender's SEND still completes with SUCCESS`, async () => {
      // One retry: a missing ACK shows as RETRY_EXC_ERR after two timeouts. The timeout is long (0.5-1 s) so that a
      // stall of this process between a SEND and its ACK (both ends run here; 30 ms was within reach of a loaded
      // host) cannot time the SEND out before B has read it and ACKed, which would count a retransmission.
      pair = await openPair({ timers: { ackTimeoutMinMs: 500, ackTimeoutMaxMs: 1000, rnrDelayMaxMs: 5 } })
      const { qa, qb } = connect(pair, { retryCnt: 1 })
      const mb = register(pair.b, 4096)
      const ma = register(pair.a, 4096)
      for (let i = 0; i < 20; i++) {
        const got = qb.recv(mb.slice(0, 64))
        const sent = qa.send(ma.slice(0, 64))
        await got
        if (i === 19) {
          // close in the same turn as the completion, before the coalesced ACK's setImmediate
          if (how === 'qp.close()') await qb.close()
          else await pair.b.close()
        }
        await expect(sent).resolves.toMatchObject({ status: 'SUCCESS' })
      }
      expect(pair.da.counters.retransmits).toBe(0)
      expect(pair.db.counters.acksSent).toBeGreaterThanOrEqual(20)
    })
  }
})
