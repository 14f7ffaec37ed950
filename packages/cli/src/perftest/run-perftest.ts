/**
 * One perftest run on softroce, in the order perftest's programs (write_bw.c, read_bw.c,
 * send_bw.c, atomic_bw.c, write_lat.c, read_lat.c, send_lat.c, atomic_lat.c) make their
 * exchanges, so that either end can be the real ib_<verb>_<bw|lat>: versions, system data and
 * MTU; the QP keys handshakes before and after the QPs connect; the run; the BW report exchange
 * and the closing handshake where the test has them. Prints what perftest prints.
 */
import type { PathMtu } from '@rdma-session/core'
import type { CmConnection } from '@rdma-session/provider-softroce'
import { deviceCounters, type SoftroceFactory } from '../oob/softroce.js'
import { udpSocketDrops } from '../oob/udp-socket-drops.js'
import { PerftestEndpoint, type EndpointOptions } from './endpoint.js'
import type { PerftestExchange } from './exchange.js'
import { openExchange } from './open-exchange.js'
import { guardFor } from './guard.js'
import { negotiate } from './negotiate.js'
import { connectTestQps, disconnectAll } from './rdma-cm.js'
import { runBwClient, runReadAtomicLat, runSendBwServer, runSendLat, runWriteLat, setRecvWqes, type AtomicType } from './loops.js'
import { RESULT_LINE, addressLines, banner, bwFigures, bwHeader, bwLine, bwWindowFigures, latFigures, latHeader, latLine, type LatFigures, type TestKind, type Verb } from './report.js'
import { bwReportFieldSizes, decodeBwReport, encodeBwReport, PerftestExchangeError, type BwReport, type PerftestDest } from './wire.js'

export interface PerftestOptions {
  readonly verb: Verb
  readonly kind: TestKind
  /** Connect to perftest's server here; without it, be the server. */
  readonly host?: string
  /** -R: connect through rdma_cm (the exchange too: SENDs on an rdma_cm control QP), IPv4 as perftest. */
  readonly rdmaCm?: boolean
  readonly tcpPort: number
  readonly ibDev?: string
  readonly ibPort: number
  readonly size: number
  /** -a: sizes 2 … 2^23. */
  readonly allSizes: boolean
  readonly iters: number
  /** -D (write/read/atomic BW): run this long instead of -n; the first and last `margin` seconds are not counted (-f). */
  readonly duration?: { readonly seconds: number; readonly margin: number }
  readonly qps: number
  readonly txDepth: number
  readonly rxDepth: number
  /** -m; default 1024 (what kernel rxe has on a 1500-byte link). */
  readonly mtu?: PathMtu
  /** -x, printed as perftest prints it (softroce has one GID and always sends it). */
  readonly gidIndex: number
  readonly sl: number
  readonly qpTimeout: number
  /** --report_gbits. */
  readonly gbits: boolean
  readonly atomicType: AtomicType
  readonly address?: string
  readonly rocePort: number
  readonly remoteRocePort?: number
  /** How long a setup exchange may wait for the peer (ms). */
  readonly exchangeTimeoutMs: number
  readonly softroce?: SoftroceFactory
  readonly out: (text: string) => void
  /** The server is accepting on this TCP port. */
  readonly onListening?: (port: number) => void
  /** -R: the CM's counters when the run ends, failed or not (--stats prints them). */
  readonly onCmStats?: (cm: Record<string, unknown>) => void
  /** softroce's device counters when the run ends, failed or not, with the kernel's drops at its UDP socket (--stats prints them). */
  readonly onCounters?: (counters: Record<string, unknown> | null) => void
}

export interface PerftestResult {
  readonly local: readonly PerftestDest[]
  readonly remote: readonly PerftestDest[]
  readonly peerVersion: string
  readonly mtu: number
  /** BW tests: this side's figures per size (the client's; a SEND receiver's own). */
  readonly bw: readonly BwReport[]
  /** BW tests on the server: the client's figures it reported. */
  readonly peerBw: readonly BwReport[]
  readonly lat: readonly LatFigures[]
  readonly counters?: Record<string, unknown>
  /** -R: softroce's CM counters (MADs sent, received, dropped by reason). */
  readonly cm?: Record<string, unknown>
}

const MAX_SIZE = 1 << 23

/** The sizes of a run: -s, or with -a 2^1 … 2^23 (atomics: always 8 bytes). */
export function runSizes(o: Pick<PerftestOptions, 'verb' | 'size' | 'allSizes'>): number[] {
  if (o.verb === 'atomic') return [8]
  return o.allSizes ? Array.from({ length: 23 }, (_, i) => 2 ** (i + 1)) : [o.size]
}

/** What perftest's my_dest holds before set_up_connection: the handshakes around the rdma_cm connections send it. */
const ZERO_DEST: PerftestDest = { lid: 0, outReads: 0, qpn: 0, psn: 0, rkey: 0, vaddr: 0, gid: new Uint8Array(16), srqn: 0 }

export async function runPerftest(o: PerftestOptions): Promise<PerftestResult> {
  const client = o.host !== undefined
  const x = await openExchange(o)
  const channel = x.channel
  let ep: PerftestEndpoint | null = null
  const tests: CmConnection[] = []
  try {
    const { peer, cycleBuffer, cacheLine, mtu } = await negotiate(channel, o.mtu ?? 1024)
    const sizes = runSizes(o)
    const lat = o.kind === 'lat'
    const epOptions: EndpointOptions = {
      address: x.address, rocePort: o.rocePort, ...(o.remoteRocePort === undefined ? {} : { remoteRocePort: o.remoteRocePort }),
      ...(o.ibDev === undefined ? {} : { ibDev: o.ibDev }), ibPort: o.ibPort, ...(o.softroce === undefined ? {} : { softroce: o.softroce }),
      qps: o.qps, txDepth: lat ? Math.max(o.txDepth, 16) : o.txDepth, rxDepth: o.rxDepth, maxSize: Math.max(...sizes, o.allSizes ? MAX_SIZE : 0),
      cycleBuffer, cacheLine, sl: o.sl, qpTimeout: o.qpTimeout, viaCm: x.cm !== undefined,
    }
    ep = x.cm === undefined ? await PerftestEndpoint.open(epOptions) : await PerftestEndpoint.onContext(x.cm.ctx, epOptions)
    const e = ep
    if (x.cm !== undefined) {
      // create_rdma_cm_connection: the test QPs are rdma_cm's, connected before set_up_connection.
      const conns = await connectTestQps(x.cm.manager, x.cm.control, { ...(o.host === undefined ? {} : { host: o.host }), port: o.tcpPort, qps: o.qps, zero: ZERO_DEST, qp: e.cmQpOptions(mtu) })
      tests.push(...conns)
      for (const c of conns) e.adopt(c.qp!)
    }
    const local = e.qps.map((_, i) => e.dest(i))
    o.out(banner({
      verb: o.verb, kind: o.kind, device: e.deviceName, qps: o.qps, txDepth: o.txDepth, mtu,
      gidIndex: o.gidIndex, outReads: local[0]!.outReads, atomicType: o.atomicType, ...(o.verb === 'send' ? { rxDepth: o.rxDepth } : {}),
      ...(x.cm === undefined ? {} : { rdmaCm: client ? 'client' : 'server' }),
    }))
    const remote: PerftestDest[] = []
    const shakeAll = async (): Promise<void> => {
      for (let i = 0; i < o.qps; i++) remote[i] = await channel.handshake(local[i]!)
    }
    const printAddresses = async (): Promise<void> => {
      for (const d of local) o.out(addressLines('local', d, o.verb))
      for (let i = 0; i < o.qps; i++) {
        remote[i] = await channel.handshake(local[i]!)
        o.out(addressLines('remote', remote[i]!, o.verb))
      }
    }
    const gidCheck = (): void => {
      if (x.cm !== undefined) return // perftest checks GID types only without rdma_cm
      const v4 = (g: Uint8Array): boolean => Buffer.from(g.subarray(0, 12)).equals(Buffer.from('00000000000000000000ffff', 'hex'))
      if (v4(local[0]!.gid) !== v4(remote[0]!.gid)) throw new PerftestExchangeError('Found Incompatibility issue with GID types: one side sent an IPv4 GID, the other an IPv6 one. Please Try to use a different IP version.', 'ERR_PERFTEST_GID_TYPE')
    }
    const result = { local, remote, peerVersion: peer.text, mtu, bw: [] as BwReport[], peerBw: [] as BwReport[], lat: [] as LatFigures[] }

    const guard = guardFor(channel)
    try {
      if (o.kind === 'bw' && o.verb !== 'send') {
        await shakeAll()
        gidCheck()
        e.connect(remote, mtu, client)
        await printAddresses()
        await channel.handshake(local[0]!) // after RTR
        o.out(bwHeader(o.gbits))
        const wide = peer.value >= 5.33
        if (!client) {
          await channel.handshake(local[0]!, true) // the client has run
          const r = decodeBwReport(await exchangeReport(channel, null, wide))
          result.peerBw.push(r)
          o.out(bwLine(r, o.gbits))
          await channel.closeConnection(local[0]!, true)
          o.out(RESULT_LINE)
        } else {
          const timing = o.duration === undefined ? undefined : { marginUs: o.duration.margin * 1e6, sampleUs: (o.duration.seconds - 2 * o.duration.margin) * 1e6 }
          for (const size of sizes) {
            const { posted, completed, sample } = await runBwClient(e, remote, o.verb, size, o.iters, o.atomicType, guard, timing)
            const r = sample === undefined ? bwFigures(size, posted, completed, o.gbits) : bwWindowFigures(size, sample.iters, sample.windowUs, o.gbits)
            result.bw.push(r)
            o.out(bwLine(r, o.gbits))
          }
          o.out(RESULT_LINE)
          await channel.handshake(local[0]!, true)
          await exchangeReport(channel, result.bw[result.bw.length - 1]!, wide)
          await channel.closeConnection(local[0]!, true)
        }
      } else if (o.kind === 'bw') {
        // send_bw.c
        await shakeAll()
        gidCheck()
        e.connect(remote, mtu, client)
        await channel.handshake(local[0]!)
        await printAddresses()
        o.out(bwHeader(o.gbits))
        for (const size of sizes) {
          const postedRecvs = client ? [] : setRecvWqes(e, size, o.iters)
          await channel.handshake(local[0]!, true)
          let r: BwReport
          if (client) {
            const { posted, completed } = await runBwClient(e, remote, 'send', size, o.iters, o.atomicType, guard)
            r = bwFigures(size, posted, completed, o.gbits)
          } else {
            const { first, last } = await runSendBwServer(e, size, o.iters, postedRecvs, guard)
            r = bwWindowFigures(size, o.iters * o.qps, last - first, o.gbits)
          }
          result.bw.push(r)
          o.out(bwLine(r, o.gbits))
          if (o.allSizes) await channel.handshake(local[0]!, true)
        }
        o.out(RESULT_LINE)
        await channel.closeConnection(local[0]!, true)
      } else if (o.verb === 'send') {
        // send_lat.c
        await shakeAll()
        gidCheck()
        e.connect(remote, mtu, true)
        await channel.handshake(local[0]!)
        await printAddresses()
        o.out(latHeader())
        for (const size of sizes) {
          const postedRecvs = setRecvWqes(e, size, o.iters)
          await channel.handshake(local[0]!, true)
          const posted = await runSendLat(e, size, o.iters, client, postedRecvs, guard)
          const f = latFigures(size, posted, 2)
          result.lat.push(f)
          o.out(latLine(f))
        }
        o.out(RESULT_LINE)
        await channel.closeConnection(local[0]!, true)
      } else {
        // write_lat.c, read_lat.c, atomic_lat.c
        await channel.handshake(local[0]!)
        await shakeAll()
        gidCheck()
        e.connect(remote, mtu, true)
        await printAddresses()
        await channel.handshake(local[0]!) // after RTR
        if (o.verb !== 'write' && !client) {
          // Only the client posts READs/atomics: the server waits for it to finish.
          await channel.closeConnection(local[0]!, true)
          o.out(RESULT_LINE)
        } else {
          o.out(latHeader())
          for (const size of sizes) {
            const posted = o.verb === 'write'
              ? await runWriteLat(e, remote[0]!, size, o.iters, !client, guard)
              : await runReadAtomicLat(e, remote[0]!, o.verb, size, o.iters, o.atomicType, guard)
            const f = latFigures(size, posted, o.verb === 'write' ? 2 : 1)
            result.lat.push(f)
            o.out(latLine(f))
          }
          o.out(RESULT_LINE)
          if (o.verb !== 'write') await channel.closeConnection(local[0]!, true)
          else channel.finish() // ib_write_lat ends without a closing handshake
        }
      }
    } finally {
      guard.dispose()
    }
    if (x.cm !== undefined) await disconnectAll(x.cm.control, tests)
    const counters = deviceCounters(e.ctx)
    return { ...result, ...(counters === undefined ? {} : { counters }), ...(x.cm === undefined ? {} : { cm: { ...x.cm.manager.snapshot() } }) }
  } finally {
    if (!channel.finished) channel.destroy() // a failure: nothing more to say to the peer
    if (x.cm !== undefined) o.onCmStats?.({ ...x.cm.manager.snapshot() })
    if (o.onCounters !== undefined) {
      const counters = ep === null ? undefined : deviceCounters(ep.ctx)
      o.onCounters(counters === undefined ? null : { ...counters, kernelSocketDrops: udpSocketDrops(o.rocePort) })
    }
    x.cm?.manager.close()
    if (ep !== null) await ep.close()
    else await x.cm?.ctx.close()
  }
}

/**
 * xchg_bw_reports: each field its own exchange. The server sends zeros (it measured nothing; the
 * real one sends an uninitialized struct, so a client does not read what it gets back).
 */
async function exchangeReport(channel: PerftestExchange, mine: BwReport | null, wide: boolean): Promise<Buffer[]> {
  const fields = encodeBwReport(mine ?? { size: 0, iters: 0, bwPeak: 0, bwAvg: 0, msgRate: 0 }, wide)
  const sizes = bwReportFieldSizes(wide)
  const theirs: Buffer[] = []
  for (const [i, f] of fields.entries()) theirs.push(await channel.xchg(f, sizes[i]!, 'the peer\'s report', true))
  return theirs
}
