/**
 * A WRITE from A to B while an on-host attacker sends forged packets at A from B's address (another
 * port): used by the tests of responses for PSNs never sent and of hostile SACK NAKs.
 */
import dgram from 'node:dgram'
import { psnAdd } from '@rdma-session/rc-engine'
import { connect, pattern, register, sleep, type ConnectOptions, type Pair } from './harness.js'

/** A UDP socket on the peer's address (127.0.0.1), which passes the QP's source check. */
export async function onPeerAddress(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4')
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r))
  return s
}

export interface AttackedWriteOptions {
  readonly size: number
  readonly mtu: ConnectOptions['mtu']
  /** A's first PSN: with nothing else sent by A's device, psnA + packetsSent bounds what it sent. */
  readonly psnA: number
  /** A's rate limit (bytes/s), so the WRITE is in flight long enough to attack. */
  readonly rate: number
  readonly seed: number
  /** Keep the transport extensions B announced (selective repeat) on the address-only binding. */
  readonly keepExtensions?: boolean
}

/**
 * Runs the WRITE, calling `forge(qpn, frontier)` every 5 ms until it settles and sending what it
 * returns; `frontier` is one past the last PSN A sent. Throws the WRITE's error if it failed;
 * `exact` says whether B held every byte when it completed.
 */
export async function attackedWrite(p: Pair, attacker: dgram.Socket, o: AttackedWriteOptions, forge: (qpn: number, frontier: number) => Buffer[]): Promise<{ exact: boolean; forged: number }> {
  // Address-only binding (as toward rxe): the forger on another port of B's address reaches qa, so
  // what stops its packets is the check under test, not the source binding.
  const { qa } = connect(p, { mtu: o.mtu, psnA: o.psnA, qos: { rateLimit: o.rate }, addressOnly: true, keepExtensions: o.keepExtensions ?? false })
  const ma = register(p.a, o.size)
  const mb = register(p.b, o.size)
  const data = pattern(o.size, o.seed)
  ma.bytes.set(data)
  let exact = false
  let done = false
  // Settles either way (a failed WRITE is reported after the attack loop, never unhandled).
  const write = qa.write(ma.slice(0, o.size), mb.region(0, o.size)).then(
    () => {
      exact = Buffer.from(mb.bytes).equals(data)
      return null
    },
    (err: unknown) => err,
  )
  void write.finally(() => {
    done = true
  })
  let forged = 0
  while (!done) {
    for (const pkt of forge(qa.qpn, psnAdd(o.psnA, p.da.counters.packetsSent))) {
      attacker.send(pkt, p.da.info.port, '127.0.0.1')
      forged++
    }
    await sleep(5)
  }
  const failed = await write
  if (failed !== null) throw failed
  return { exact, forged }
}
