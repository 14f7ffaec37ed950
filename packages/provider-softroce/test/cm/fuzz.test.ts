// A softroce CM listener under a fuzz of 12,000 CM datagrams from many UDP source ports:
// truncated MADs, wrong base/class/class version, methods and attribute IDs, wrong Q_Key and
// P_Key, non-UD opcodes to QP1, bad ICRCs, MADs for connections that do not exist (out of state),
// REQs with bad rdma_cm private data, foreign GIDs, other transports, bad MTUs, unlistened ports,
// and a flood of well-formed REQs that never complete. Meanwhile a real client keeps connecting
// (rping protocol, data verified). Every drop is counted under its predicted reason; the CM's
// connections and the device's QPs stay bounded.
import dgram from 'node:dgram'
import { afterEach, describe, expect, it } from 'vitest'
import { encodeCmMad, type CmMessage, type CmReq } from '../../src/cm/cm-messages.js'
import { addressToGid, encodeCmaHeader, serviceIdOfPort } from '../../src/cm/cma-header.js'
import { encodeUdPacket } from '../../src/ud/ud-packet.js'
import { writeIcrc, type IpContext } from '../../src/wire/icrc.js'
import type { SoftRoceDevice } from '../../src/index.js'
import { seededRandom } from '@rdma-session/core'
import { FAST_CM, openCmPair, type CmPair } from './cm-pair.js'
import { rpingClient, rpingListenOptions, rpingServer } from './rping-peer.js'

const TOTAL = Number(process.env.CM_FUZZ_TOTAL ?? 12_000)
const BATCH = 200
const PORT = 7500
const BACKLOG = 128
const MAX_CONNECTIONS = 512
const GSI_QKEY = 0x80010000

let pair: CmPair | null = null
let afterStop: (() => void) | null = null
afterEach(async () => {
  afterStop?.()
  afterStop = null
  await pair?.close()
  pair = null
})

type Kind =
  | 'truncated' | 'badBaseVersion' | 'notCmClass' | 'badClassVersion' | 'badMethod' | 'badAttribute'
  | 'udBadQkey' | 'udBadPkey' | 'udMalformed' | 'badIcrc' | 'unknownCommId' | 'noListener' | 'badGid'
  | 'badPrivateData' | 'unsupportedTransport' | 'badField' | 'flood'
const KINDS: readonly Kind[] = [
  'truncated', 'badBaseVersion', 'notCmClass', 'badClassVersion', 'badMethod', 'badAttribute', 'udBadQkey', 'udBadPkey', 'udMalformed',
  'badIcrc', 'unknownCommId', 'noListener', 'badGid', 'badPrivateData', 'unsupportedTransport', 'badField', 'flood',
]

describe('CM fuzz at a listener that keeps serving a real client', () => {
  it(`${TOTAL} malformed, hostile and out-of-state CM datagrams: counted by reason, state bounded, real clients served`, async () => {
    pair = await openCmPair({ ...FAST_CM, maxRetries: 2 }, '127.0.0.1', { maxConnections: MAX_CONNECTIONS })
    const p = pair
    const db = p.b.device as SoftRoceDevice
    const da = p.a.device as SoftRoceDevice
    const rand = seededRandom(0x15c0ffee)
    const int = (n: number): number => Math.floor(rand() * n)
    const u32 = (): number => (int(0x10000) * 0x10000 + int(0x10000)) >>> 0

    // ---- the real service: rping server sessions, one after another
    const { options, state } = rpingListenOptions(p.b, PORT, 4096)
    const listener = p.cmB.listen({ ...options, backlog: BACKLOG })
    let stop = false
    const served: number[] = []
    const serving = (async () => {
      while (!stop) {
        const r = await Promise.race([rpingServer(listener, state), new Promise<null>((res) => { const t = setInterval(() => { if (stop) { clearInterval(t); res(null) } }, 20) })])
        if (r === null) break
        served.push(r.pings)
      }
    })()
    const clients: { ok: boolean; detail?: string }[] = []
    const clientLoop = (async () => {
      while (!stop) {
        try {
          const r = await rpingClient(p.a, p.cmA, { host: '127.0.0.1', port: PORT, count: 2, size: 256 })
          clients.push({ ok: r.verified === 2 })
        } catch (err) {
          clients.push({ ok: false, detail: String(err) })
          // never spin on an error that comes back without waiting
          await new Promise((r) => setTimeout(r, 10))
        }
      }
    })()

    // ---- the fuzzer: 8 sockets (source ports), datagrams signed with a valid ICRC unless badIcrc
    const sockets = await Promise.all(Array.from({ length: 8 }, () => new Promise<dgram.Socket>((res) => {
      const s = dgram.createSocket('udp4')
      s.bind(0, '127.0.0.1', () => res(s))
    })))
    const ipOf = (s: dgram.Socket): IpContext => ({ family: 4, src: '127.0.0.1', dst: '127.0.0.1', srcPort: s.address().port, dstPort: db.info.port, ipId: 0, df: true })
    const req = (o: Partial<CmReq> = {}): CmReq => ({
      type: 'REQ', localCommId: u32() || 1, serviceId: serviceIdOfPort(PORT), localCaGuid: BigInt(u32()) << 32n | BigInt(u32()), localQkey: 0, localQpn: int(0xffffff) + 2,
      responderResources: 1, initiatorDepth: 1, remoteCmResponseTimeout: 31, transportType: 0, endToEndFlowControl: false, startingPsn: int(0xffffff),
      localCmResponseTimeout: 31, retryCount: 7, pkey: 0xffff, pathMtu: 3, rnrRetryCount: 7, maxCmRetries: 15, srq: false,
      primary: { localLid: 0xffff, remoteLid: 0xffff, localGid: addressToGid(4, '127.0.0.1'), remoteGid: addressToGid(4, '127.0.0.1'), flowLabel: 0, packetRate: 0, trafficClass: 0, hopLimit: 64, sl: 0, subnetLocal: false, localAckTimeout: 14 },
      privateData: encodeCmaHeader({ family: 4, srcPort: 1024 + int(60000), srcAddress: '127.0.0.1', dstAddress: '127.0.0.1' }),
      ...o,
    })
    const stray = (): CmMessage => {
      const E = new Uint8Array(0)
      const ids = { localCommId: u32(), remoteCommId: u32() || 1 }
      switch (int(6)) {
        case 0: return { type: 'RTU', ...ids, privateData: E }
        case 1: return { type: 'DREQ', ...ids, remoteQpn: int(0xffffff), privateData: E }
        case 2: return { type: 'DREP', ...ids, privateData: E }
        case 3: return { type: 'MRA', ...ids, messageMraed: int(3), serviceTimeout: 31, privateData: E }
        case 4: return { type: 'REJ', ...ids, messageRejected: int(3), reason: int(40), ari: E, privateData: E }
        default: return { type: 'REP', ...ids, localQkey: 0, localQpn: int(0xffffff), startingPsn: 0, responderResources: 1, initiatorDepth: 1, targetAckDelay: 0, failoverAccepted: 0, endToEndFlowControl: false, rnrRetryCount: 7, srq: false, localCaGuid: 1n, privateData: E }
      }
    }
    const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!
    const not = (bad: number, max: number): number => {
      let v = int(max)
      while (v === bad) v = int(max)
      return v
    }
    function forge(kind: Kind, s: dgram.Socket): Buffer {
      let mad: Buffer = encodeCmMad(kind === 'flood' || kind.startsWith('ud') || kind === 'badIcrc' ? req() : stray(), BigInt(u32()))
      let qkey = GSI_QKEY
      let pkey = 0xffff
      switch (kind) {
        case 'truncated': mad = mad.subarray(0, int(256)); break
        case 'badBaseVersion': mad[0] = not(1, 256); break
        case 'notCmClass': mad[1] = not(7, 256); break
        case 'badClassVersion': mad[2] = not(2, 256); break
        case 'badMethod': mad[3] = pick([0x01, 0x02, 0x81, 0x83, 0x13, int(256)].filter((m) => m !== 0x03)); break
        case 'badAttribute': mad.writeUInt16BE(pick([0x0000, 0x0001, 0x0017, 0x0018, 0x0019, 0x001a, 0x0100 + int(0xfe00)]), 16); break
        case 'udBadQkey': qkey = pick([0, 0x80010001, (u32() | 1) >>> 0]); break
        case 'udBadPkey': pkey = pick([0x0001, 0x7ffe, 0x8001]); break
        case 'noListener': mad = encodeCmMad(req({ serviceId: pick([serviceIdOfPort(PORT + 1), 0x0000000001110000n | BigInt(PORT), BigInt(u32())]) }), 1n); break
        case 'badGid': mad = encodeCmMad(req({ primary: { ...req().primary, localGid: addressToGid(4, `10.${int(256)}.${int(256)}.${int(256)}`) } }), 1n); break
        case 'badPrivateData': {
          const pd = Buffer.from(encodeCmaHeader({ family: 4, srcPort: 1, srcAddress: '127.0.0.1', dstAddress: pick(['127.0.0.1', '127.0.0.9']) }))
          if (pd.readUInt32BE(32) === 0x7f000001) pick([() => (pd[0] = 1 + int(255)), () => (pd[1] = pick([0x00, 0x50, 0x60 + 1, 0xf0]))])()
          mad = encodeCmMad(req({ privateData: pick([pd, pd.subarray(0, int(36))]) }), 1n)
          break
        }
        case 'unsupportedTransport': mad = encodeCmMad(req({ transportType: pick([1, 2, 3]) }), 1n); break
        case 'badField':
          mad = pick([() => encodeCmMad(req({ pathMtu: pick([0, 6, 15]) }), 1n), () => {
            const rej = encodeCmMad({ type: 'REJ', localCommId: 1, remoteCommId: 1, messageRejected: 0, reason: 1, ari: new Uint8Array(0), privateData: new Uint8Array(0) }, 1n)
            rej[24 + 9] = (73 + int(55)) << 1
            return rej
          }, () => { const r = encodeCmMad(req(), 1n); r.writeUInt32BE(0, 24); return r }])()
          break
        default: break
      }
      if (kind === 'udMalformed') {
        const rc = Buffer.alloc(12 + 16 + 4)
        rc[0] = pick([0x04, 0x11, 0x0a, 0x66, 0xff])
        rc[2] = 0xff
        rc[3] = 0xff
        rc.writeUInt32BE(1, 4)
        writeIcrc(rc, rc.length - 4, ipOf(s))
        return rc
      }
      const d = encodeUdPacket({ destQpn: 1, psn: int(0xffffff), pkey, qkey, srcQpn: 1, solicited: false, payload: mad })
      writeIcrc(d, d.length - 4, ipOf(s))
      if (kind === 'badIcrc') d[d.length - 1 - int(4)]! ^= 1 << int(8)
      return d
    }

    const counts = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>
    const aSentBase = da.counters.packetsSent
    const bRecvBase = db.counters.packetsReceived
    let sent = 0
    let maxConns = 0
    let maxQps = 0
    const delivered = async (): Promise<void> => {
      const deadline = performance.now() + 10_000
      while (db.counters.packetsReceived - bRecvBase !== sent + da.counters.packetsSent - aSentBase) {
        if (performance.now() > deadline) throw new Error(`listener received ${db.counters.packetsReceived - bRecvBase}, expected ${sent} fuzz + ${da.counters.packetsSent - aSentBase} from the real client`)
        await new Promise((r) => setTimeout(r, 1))
      }
    }
    afterStop = () => {
      stop = true
    }
    while (sent < TOTAL) {
      for (let i = 0; i < BATCH; i++) {
        const kind = rand() < 0.1 ? 'flood' : pick(KINDS)
        counts[kind]++
        const s = pick(sockets)
        s.send(forge(kind, s), db.info.port, '127.0.0.1')
        sent++
      }
      await delivered()
      maxConns = Math.max(maxConns, p.cmB.connectionCount)
      maxQps = Math.max(maxQps, p.b.handles.qps)
      await new Promise((r) => setTimeout(r, 5))
    }
    // A few more real sessions after the storm, then stop.
    const before = clients.length
    await expect.poll(() => clients.length, { timeout: 30_000 }).toBeGreaterThanOrEqual(before + 2)
    stop = true
    await clientLoop
    await serving
    for (const s of sockets) s.close()

    const cm = p.cmB.snapshot()
    console.info(`[cm-fuzz] ${sent} datagrams: ${JSON.stringify(counts)}; drops ${JSON.stringify(cm.drops)}; evictions ${cm.backlogEvictions}; device badIcrc ${db.counters.drops.badIcrc}; max connections ${maxConns}, max QPs ${maxQps}; real sessions ${clients.length} (${served.length} served)`)
    // every category counted under its reason
    for (const k of KINDS) {
      if (k === 'flood' || k === 'unknownCommId') continue
      const got = k === 'badIcrc' ? db.counters.drops.badIcrc : cm.drops[k]
      expect(got, k).toBe(counts[k])
    }
    // Out-of-state MADs: the forged ones, plus at most one late duplicate per real session (a DREQ
    // resent after its connection's TIMEWAIT ended).
    expect(cm.drops.unknownCommId).toBeGreaterThanOrEqual(counts.unknownCommId)
    expect(cm.drops.unknownCommId).toBeLessThanOrEqual(counts.unknownCommId + clients.length)
    expect(cm.drops.wrongSource + cm.drops.tooManyConnections).toBe(0)
    // the flood went through the backlog: evictions, never more than BACKLOG half-open at once
    expect(cm.backlogEvictions).toBeGreaterThan(counts.flood - BACKLOG * 4)
    expect(maxConns).toBeLessThanOrEqual(MAX_CONNECTIONS)
    expect(maxQps).toBeLessThanOrEqual(2 * BACKLOG + 16)
    // the real client never failed and kept getting served
    expect(clients.filter((c) => !c.ok), JSON.stringify(clients.filter((c) => !c.ok).slice(0, 3))).toEqual([])
    expect(clients.length).toBeGreaterThanOrEqual(5)
    // (the session in progress when the loops stop may not be counted on the server side yet)
    expect(served.length).toBeGreaterThanOrEqual(clients.length - 1)
  }, 180_000)
})
