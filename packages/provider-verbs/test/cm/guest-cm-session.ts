/**
 * The guest side of ../cm-session-guest.test.ts, bundled on the host (tsup) and run in the rxe-vm
 * guest with --tap: core sessions over rdma_cm (`ctx.listen({ cm })`, `ctx.connect('rdma-cm://…')`)
 * on provider-verbs' hook, rxe2, IPv4 (GID 1) then IPv6 (GID 2). Per family:
 *   session        two verbs contexts in the guest: a session of 3 QPs (DSCP 26, ECN 1), every QP
 *                  checked (SEND and WRITE both ways), two wrong joins refused, one QP added by ID
 *                  and token, closed by the connecting side; then the same (default traffic class)
 *                  closed by the listening side
 *   plain          a plain rdma_cm peer (ctx.connectQp) to ctx.listen({ cm: { prepare } }): the
 *                  listener's prepare hook posts the receive its first SEND lands in
 *   cross-listen   verbs listens, provider-softroce on the host connects (the test starts
 *                  ./softroce-session-child.ts when it sees CM-SESSION-LISTENING); verbs closes
 *   cross-connect  softroce listens on the host, verbs connects once the child says so over TCP
 *                  (port 7590 + family in the guest); verbs closes
 * Each part prints `GUEST-RESULT <json>` (./guest-parts.ts).
 */
import { once } from 'node:events'
import { createServer } from 'node:net'
import { createContext, type CoreCmConnection, type QueuePair } from '@rdma-session/core'
import { verbs } from '../../dist/index.js'
import { part } from './guest-parts.js'
import { connectSide, listenSide, within } from './session-exchange.js'

const N = 3
const urlOf = (host: string, port: number): string => `rdma-cm://${host.includes(':') ? `[${host}]` : host}:${port}`

/** Resolves when the host's child connects to `port` and says go. */
async function goSignal(me: string, port: number, marker: string): Promise<void> {
  const server = createServer()
  const go = new Promise<void>((resolve) => server.on('connection', (s) => {
    s.on('data', (d: Buffer) => d.toString().includes('go') && resolve())
    s.on('error', () => {})
  }))
  server.listen(port, me)
  await once(server, 'listening')
  console.log(marker)
  try {
    await within(go, 120_000, 'the host child listening')
  } finally {
    server.close()
  }
}

async function family(fam: 4 | 6): Promise<void> {
  const me = fam === 4 ? '10.77.0.2' : 'fd77::2'
  const host = fam === 4 ? '10.77.0.1' : 'fd77::1'
  const provider = (): ReturnType<typeof verbs> => verbs({ device: 'rxe2', gidIndex: fam === 4 ? 1 : 2 })
  const a = await createContext({ provider: provider() })
  await part(`session-v${fam}`, async () => {
    const b = await createContext({ provider: provider() })
    try {
      const server = await b.listen({ cm: { port: 7550 + fam } })
      const [listen, connect] = await Promise.all([listenSide(b, server, 'listener', N + 1, 'remote'), connectSide(a, urlOf(me, 7550 + fam), 'connector', N, 'local', 0, { encryption: 'none', encapsulation: { dscp: 26, ecn: 1 } })])
      const server2 = await b.listen({ cm: { port: 7560 + fam } })
      const [listen2, connect2] = await Promise.all([listenSide(b, server2, 'listener', N + 1, 'local'), connectSide(a, urlOf(me, 7560 + fam), 'connector', N, 'remote')])
      return { listen, connect, listen2, connect2, sessionsLeft: a.sessions.list().length + b.sessions.list().length }
    } finally {
      await b.close()
    }
  })
  await part(`plain-v${fam}`, async () => {
    const b = await createContext({ provider: provider() })
    try {
      const rx = b.registerMemory(Buffer.alloc(64), { access: ['local-write'] })
      const received: Promise<{ byteLen: number }>[] = []
      const server = await b.listen({ cm: { port: 7545 + fam, prepare: (qp: QueuePair) => void received.push(qp.recv(rx.slice(0, 64))) } })
      const accepted = once(server, 'connection') as Promise<[CoreCmConnection]>
      const conn = await a.connectQp(urlOf(me, 7545 + fam), { privateData: Buffer.from('plain peer') })
      await conn.qp!.send(Buffer.from('first send'))
      const [lone] = await within(accepted, 30_000, 'the lone connection')
      const wc = await within(received[0] ?? Promise.reject(new Error('the listener\'s prepare hook did not run')), 30_000, 'the first SEND')
      const text = Buffer.from(rx.bytes.subarray(0, wc.byteLen)).toString()
      const peerData = Buffer.from(lone.privateData.subarray(0, 10)).toString()
      await conn.disconnect()
      const ended = await within(lone.disconnected, 30_000, 'the DREQ')
      await Promise.all([conn.qp!.close(), lone.qp!.close()])
      server.close()
      rx.deregister()
      return { prepared: received.length, text, peerData, endedBy: ended.by, sessions: b.sessions.list().length }
    } finally {
      await b.close()
    }
  })
  await part(`cross-listen-v${fam}`, async () => {
    const server = await a.listen({ cm: { port: 7570 + fam } })
    const listening = listenSide(a, server, 'verbs', N + 1, 'local')
    console.log(`CM-SESSION-LISTENING-v${fam}`)
    return { listen: await listening }
  })
  await part(`cross-connect-v${fam}`, async () => {
    await goSignal(me, 7590 + fam, `CM-SESSION-CONNECT-v${fam}`)
    return { connect: await connectSide(a, urlOf(host, 7580 + fam), 'verbs', N, 'local') }
  })
  await a.close()
}

await family(4)
await family(6)
console.log('CM-SESSION-GUEST-DONE')
// A part that timed out may leave work pending: end here.
process.exit(0)
