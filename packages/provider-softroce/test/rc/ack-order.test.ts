/**
 * A reply posted while a coalesced ACK is due goes on the wire before that ACK: in a ping-pong
 * the reply is what the other side waits for, the ACK is not (and still leaves in the same turn).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { RcOpcode } from '../../src/wire/opcodes.js'
import { connect, openPair, register, type Pair } from './harness.js'

let pair: Pair | null = null
afterEach(async () => {
  await pair?.close()
  pair = null
})

describe('ACK and reply order', () => {
  it('the echo of a signaled SEND leaves before the ACK of that SEND', async () => {
    const sentByB: number[] = []
    pair = await openPair({}, { impairment: { match: (p) => (sentByB.push(p[0]!), false) } })
    const { qa, qb } = connect(pair)
    const ma = register(pair.a, 4096)
    const mb = register(pair.b, 4096)
    for (let round = 0; round < 5; round++) {
      // b echoes as soon as the SEND completes on its receive queue
      const echoed = qb.recv(mb.slice(0, 8)).then(() => qb.send(mb.slice(8, 8)))
      const back = qa.recv(ma.slice(0, 8))
      sentByB.length = 0
      await qa.send(ma.slice(8, 8))
      await back
      await echoed
      expect(sentByB.slice(0, 2), `round ${round}: b sent ${sentByB.map((o) => o.toString(16)).join(',')}`).toEqual([RcOpcode.SEND_ONLY, RcOpcode.ACKNOWLEDGE])
    }
  })
})
