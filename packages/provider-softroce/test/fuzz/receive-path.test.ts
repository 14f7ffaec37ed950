/**
 * Fuzz of the receive path: 100,000 random and mutated packets, with valid ICRCs (so the parser
 * and the RC engine see them), sent over a real UDP socket on loopback to a live device whose
 * fuzz QPs are in RTS and connected to the fuzzing peer (fuzz-peer.ts keeps them in sequence,
 * answers their requests, and mutates a share of everything). Checks: no crash; nothing written
 * outside the registered regions (canaries around every region, which are slices of one buffer)
 * nor into regions without remote access; no canary byte ever sent; every datagram either handed
 * to a QP or counted under exactly the drop reason its stage predicts (the counters add up); every
 * WR posted on a fuzz QP completes exactly once; and afterwards the device's real QP pair (and a
 * recycled fuzz QP) still move data byte-exact. A fuzz QP that a packet drives into ERR (fatal NAK,
 * as the IB spec requires for invalid requests and remote access errors) is flushed, reset and
 * reconnected, and counted. RDMA_FUZZ_PACKETS and RDMA_FUZZ_SEED change the run.
 * It runs twice: one datagram per send, and with consecutive datagrams of one size sent as UDP
 * GSO messages (the device's UDP_GRO socket reads them as aggregates and splits them: every
 * segment, mutated ones included, must be accounted for the same way).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createContext, type Context, type MemoryRegion, type QueuePair } from '@rdma-session/core'
import { DROP_REASONS, softroce, type SoftRoceDevice } from '../../src/index.js'
import type { SoftRoceQp } from '../../src/rc/queue-pair.js'
import { openRoceSocket, type RoceSocket } from '../../src/socket/roce-socket.js'
import { loadSockoptAddon, type RoceBatchAddon, type RoceSockoptAddon } from '../../src/socket/sockopt-addon.js'
import { GSO_MAX_BYTES, GSO_MAX_SEGMENTS } from '../../src/socket/send-batch.js'
import { Rand } from '../wire/random-packets.js'
import { FuzzPeer, type Stage } from './fuzz-peer.js'

const PACKETS = Number(process.env.RDMA_FUZZ_PACKETS ?? 100_000)
const SEED = Number(process.env.RDMA_FUZZ_SEED ?? 1)
const BATCH = 64
const FUZZ_QPS = 4
const PMTU = 256
const TIMERS = { ackTimeoutMinMs: 20, ackTimeoutMaxMs: 40, rnrDelayMaxMs: 5 }
/** Tiled around every region; must never change and never appear in a datagram from the device. */
const MAGIC = Buffer.from('c44a2d9b17e35fa6', 'hex')
const GUARD = 256

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const ALL = 15

let cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {})
  cleanup = []
})

/** Regions as slices of one buffer, each between canary guards. */
function carve(ctx: Context, layout: { name: string; size: number; access: Parameters<Context['registerMemory']>[1] }[], r: Rand): { backing: Buffer; regions: Record<string, MemoryRegion>; guardsIntact: () => boolean } {
  const total = layout.reduce((s, l) => s + l.size + GUARD, GUARD)
  const backing = Buffer.alloc(total)
  for (let o = 0; o < total; o += MAGIC.length) MAGIC.copy(backing, o)
  const guards: [number, number][] = []
  const regions: Record<string, MemoryRegion> = {}
  let o = 0
  for (const l of layout) {
    guards.push([o, o + GUARD])
    o += GUARD
    backing.set(r.bytes(l.size), o)
    regions[l.name] = ctx.registerMemory(backing.subarray(o, o + l.size), l.access)
    o += l.size
  }
  guards.push([o, total])
  const tiled = Buffer.alloc(total)
  for (let t = 0; t < total; t += MAGIC.length) MAGIC.copy(tiled, t)
  return { backing, regions, guardsIntact: () => guards.every(([s, e]) => backing.subarray(s, e).equals(tiled.subarray(s, e))) }
}

function connectPair(a: QueuePair, b: QueuePair, ea: { address: string; port: number }, eb: { address: string; port: number }, mtu: 256 | 1024): void {
  for (const q of [a, b]) q.modify({ state: 'INIT', accessFlags: ALL, portNum: 1, pkeyIndex: 0 })
  a.modify({ state: 'RTR', remote: eb, pathMtu: mtu, destQpn: b.qpn, rqPsn: b.localPsn, maxDestRdAtomic: 16, minRnrTimer: 1 })
  b.modify({ state: 'RTR', remote: ea, pathMtu: mtu, destQpn: a.qpn, rqPsn: a.localPsn, maxDestRdAtomic: 16, minRnrTimer: 1 })
  for (const q of [a, b]) q.modify({ state: 'RTS', sqPsn: q.localPsn, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 16 })
}

/** Sends `datagrams` (in order) as UDP GSO messages: runs of one size, plus a shorter last one. */
function sendAggregated(socket: RoceSocket, port: number, datagrams: Buffer[]): number {
  const state = loadSockoptAddon()
  if (!state.loaded) throw new Error('the GSO fuzz needs the native helper')
  const addon = state.addon as Required<RoceSockoptAddon> & RoceBatchAddon
  const to = addon.makeSockaddr(4, '127.0.0.1', port)
  let messages = 0
  for (let i = 0; i < datagrams.length;) {
    const size = datagrams[i]!.length
    let end = i + 1
    let bytes = size
    while (end < datagrams.length && end - i < GSO_MAX_SEGMENTS && datagrams[end]!.length <= size && bytes + datagrams[end]!.length <= GSO_MAX_BYTES) {
      bytes += datagrams[end]!.length
      if (datagrams[end++]!.length < size) break
    }
    const r = addon.sendBatch(socket.fd!, datagrams, i, Int32Array.of(end - i), Int32Array.of(end - i > 1 ? size : 0), 0, 1, to, -1, -1)
    if (r !== 1) throw new Error(`sendBatch: ${r}`)
    messages++
    i = end
  }
  return messages
}

describe('receive-path fuzz', () => {
  for (const mode of ['datagrams', 'GSO'] as const) it(`${PACKETS} random and mutated packets${mode === 'GSO' ? ' in UDP GSO messages (GRO aggregates)' : ''}: no crash, no write outside registered ranges, every drop counted`, async () => {
    const r = new Rand(SEED)
    const d = await createContext({ provider: softroce({ port: 0, timers: TIMERS }) })
    cleanup.push(() => d.close())
    const p = await createContext({ provider: softroce({ port: 0, timers: TIMERS }) })
    cleanup.push(() => p.close())
    const dd = d.device as SoftRoceDevice
    const pd = p.device as SoftRoceDevice
    const sockets: RoceSocket[] = [
      await openRoceSocket({ family: 4, address: '127.0.0.1', port: 0 }),
      await openRoceSocket({ family: 4, address: '127.0.0.2', port: 0 }),
    ]
    cleanup.push(async () => {
      for (const s of sockets) s.socket.close()
    })
    const [peerSocket, offPathSocket] = sockets as [RoceSocket, RoceSocket]

    const mem = carve(d, [
      { name: 'rw', size: 64 * 1024, access: { access: ['local-write', 'remote-read', 'remote-write'] } },
      { name: 'ro', size: 16 * 1024, access: { access: ['remote-read'] } },
      { name: 'atomic', size: 4096, access: { access: ['local-write', 'remote-atomic'] } },
      { name: 'local', size: 64 * 1024, access: { access: ['local-write'] } },
      { name: 'sealed', size: 16 * 1024, access: { access: ['local-write'] } },
      { name: 'real', size: 256 * 1024, access: { access: ['local-write', 'remote-read', 'remote-write'] } },
    ], r)
    const { rw, ro, atomic, local, sealed, real } = mem.regions as Record<string, MemoryRegion>
    const roBefore = Buffer.from(ro!.bytes)
    const sealedBefore = Buffer.from(sealed!.bytes)
    const pMem = p.registerMemory(Buffer.alloc(1 << 20), { access: ['local-write', 'remote-read', 'remote-write'] })

    // The real pair: d0 on the device under test, p0 on the other stack.
    const d0 = d.createQp({ caps: { maxSendWr: 64, maxRecvWr: 64 } })
    const p0 = p.createQp({ caps: { maxSendWr: 64, maxRecvWr: 64 } })
    // d0 is bound to the other stack's address only (as toward rxe or a NIC), so the fuzzing peer on
    // that address (another port) reaches it too; a port-bound QP would drop all of it as wrongSource.
    connectPair(d0, p0, d.endpoint, { address: p.endpoint.address, port: p.endpoint.port }, 1024)
    const realErrors: string[] = []
    d0.onError = (e) => realErrors.push(e.message)

    // Fuzz QPs, connected to the fuzzing peer.
    const peerEndpoint = { address: '127.0.0.1', port: peerSocket.port }
    const fuzzQps = Array.from({ length: FUZZ_QPS }, () => d.createQp({ caps: { maxSendWr: 16, maxRecvWr: 16 } }))
    const errReasons = new Map<string, number>()
    const peer = new FuzzPeer({
      rand: r,
      pmtu: PMTU,
      ipPeer: { family: 4, src: '127.0.0.1', dst: '127.0.0.1', srcPort: peerSocket.port, dstPort: dd.info.port, ipId: 0, df: true },
      ipOffPath: { family: 4, src: '127.0.0.2', dst: '127.0.0.1', srcPort: offPathSocket.port, dstPort: dd.info.port, ipId: 0, df: true },
      rw: rw!.region(),
      ro: ro!.region(),
      atomic: atomic!.region(),
      targets: { regions: [rw!.region(), ro!.region(), atomic!.region(), local!.region(), sealed!.region()], qpns: [...fuzzQps.map((q) => q.qpn), d0.qpn] },
      deviceQpns: () => new Set([d0.qpn, ...fuzzQps.map((q) => q.qpn)]),
      realQpns: [d0.qpn],
      canary: MAGIC,
    })
    peerSocket.socket.on('message', (m) => peer.observe(m))
    offPathSocket.socket.on('message', () => {
      throw new Error('the device answered an off-path packet')
    })
    const connectFuzz = (q: QueuePair): void => {
      const rqPsn = r.bits(24)
      q.modify({ state: 'INIT', accessFlags: ALL, portNum: 1, pkeyIndex: 0 })
      q.modify({ state: 'RTR', remote: peerEndpoint, pathMtu: PMTU, destQpn: 2 + r.int(0xfffffd), rqPsn, maxDestRdAtomic: 16, minRnrTimer: 1 })
      q.modify({ state: 'RTS', sqPsn: r.bits(24), timeout: 14, retryCnt: 3, rnrRetry: 2, maxRdAtomic: 16 })
      peer.connect(q.qpn, q.query().destQpn!, rqPsn)
    }
    for (const q of fuzzQps) {
      connectFuzz(q)
      q.onError = (e) => {
        const reason = e.message.replace(/\d+/g, 'N')
        errReasons.set(reason, (errReasons.get(reason) ?? 0) + 1)
      }
    }

    // Every datagram handed to a QP that the QP did not drop is 'accepted', and so is every packet
    // of a receive run (the helper checked and placed it; socket/receive-run.ts).
    let accepted = 0
    let inRuns = 0
    for (const q of [d0, ...fuzzQps]) {
      const sq = dd.qp(q.qpn) as SoftRoceQp
      const receive = sq.receivePacket.bind(sq)
      sq.receivePacket = (pkt) => {
        const dropped = receive(pkt)
        if (dropped === null) accepted++
        return dropped
      }
      const applyRun = sq.applyReceiveRun.bind(sq)
      sq.applyReceiveRun = (packets, bytes, ackRequests, ended) => {
        accepted += packets
        inRuns += packets
        applyRun(packets, bytes, ackRequests, ended)
      }
    }

    // The device's own work on the fuzz QPs: a few requests to the peer and receives, all tracked.
    let nextWr = 1
    const posted = new Map<number, 'send' | 'recv'>()
    const completions = new Map<number, number>()
    const statuses = new Map<string, number>()
    const slot = (len: number): number => r.int(local!.length - len)
    const maintain = (): void => {
      for (const q of fuzzQps) {
        for (const wc of q.sendCq.poll(64)) {
          completions.set(wc.wrId, (completions.get(wc.wrId) ?? 0) + 1)
          const key = `${posted.get(wc.wrId)} ${wc.status}`
          statuses.set(key, (statuses.get(key) ?? 0) + 1)
        }
        if (q.state !== 'RTS') continue
        while (q.outstanding.send < 2) {
          const wrId = nextWr++
          posted.set(wrId, 'send')
          const k = r.int(5)
          const len = r.int(3 * PMTU)
          const remoteAddr = r.int(2 ** 40)
          if (k === 0) q.postSend({ wrId, opcode: 'RDMA_READ', sgList: [local!.slice(slot(len), len)], remoteAddr, rkey: r.u32() })
          else if (k === 1) q.postSend({ wrId, opcode: 'RDMA_WRITE', sgList: [local!.slice(slot(len), len)], remoteAddr, rkey: r.u32() })
          else if (k === 2) q.postSend({ wrId, opcode: 'SEND', sgList: [local!.slice(slot(len), len)] })
          else q.postSend({ wrId, opcode: k === 3 ? 'ATOMIC_FETCH_AND_ADD' : 'ATOMIC_CMP_AND_SWP', sgList: [local!.slice(8 * r.int(local!.length / 8), 8)], remoteAddr: remoteAddr * 8, rkey: r.u32(), compareAdd: r.u64(), swap: r.u64() })
        }
        while (q.outstanding.recv < 8) {
          const wrId = nextWr++
          posted.set(wrId, 'recv')
          const len = r.int(8) === 0 ? 64 : 4 * PMTU
          q.postRecv({ wrId, sgList: [local!.slice(slot(len), len)] })
        }
      }
    }
    let recycled = 0
    const recycle = (): void => {
      for (const q of fuzzQps) {
        if (q.state !== 'ERR' || q.outstanding.send + q.outstanding.recv > 0) continue
        q.modify({ state: 'RESET' })
        connectFuzz(q)
        recycled++
      }
    }

    /** Real-pair traffic both ways (or p0 -> d0 only while fuzzing), byte-exact. */
    const realTransfer = async (bothWays: boolean): Promise<void> => {
      const data = r.bytes(64 * 1024)
      pMem.bytes.set(data, 0)
      const off = 8 * r.int((real!.length - data.length) / 8)
      await p0.write(pMem.slice(0, data.length), real!.region(off, data.length))
      expect(Buffer.from(real!.bytes.subarray(off, off + data.length)).equals(data), 'WRITE landed').toBe(true)
      await p0.read(pMem.slice(65536, data.length), real!.region(off, data.length))
      expect(Buffer.from(pMem.bytes.subarray(65536, 65536 + data.length)).equals(data), 'READ returned it').toBe(true)
      const recv = d0.recv(real!.slice(0, 4096))
      await p0.send(pMem.slice(0, 4096))
      await recv
      expect(Buffer.from(real!.bytes.subarray(0, 4096)).equals(data.subarray(0, 4096)), 'SEND delivered').toBe(true)
      if (!bothWays) return
      real!.bytes.set(data, off)
      await d0.write(real!.slice(off, data.length), pMem.region(200_000, data.length))
      await d0.read(real!.slice(0, data.length), pMem.region(200_000, data.length))
      expect(Buffer.from(real!.bytes.subarray(0, data.length)).equals(data)).toBe(true)
      const back = p0.recv(pMem.slice(400_000, 4096))
      await d0.send(real!.slice(0, 4096))
      await back
      expect(Buffer.from(pMem.bytes.subarray(400_000, 404_096)).equals(data.subarray(0, 4096))).toBe(true)
    }

    const stages: Record<Stage, number> = { short: 0, badIcrc: 0, unknownQpn: 0, wrongSource: 0, qp: 0 }
    const kinds = new Map<string, number>()
    const mutations = new Map<string, number>()
    const recvBase = dd.counters.packetsReceived
    const peerSentBase = pd.counters.packetsSent
    let sent = 0
    let gsoMessages = 0
    /** Waits until the device has taken every datagram sent to it (fuzz and real peer). */
    const delivered = async (): Promise<void> => {
      const deadline = performance.now() + 5000
      while (dd.counters.packetsReceived - recvBase !== sent + pd.counters.packetsSent - peerSentBase) {
        if (performance.now() > deadline) {
          throw new Error(`the device received ${dd.counters.packetsReceived - recvBase} datagrams, ${sent} were fuzz and ${pd.counters.packetsSent - peerSentBase} from the peer: datagrams lost in the kernel cannot be accounted for`)
        }
        await new Promise((resolve) => setImmediate(resolve))
      }
    }

    maintain()
    const t0 = performance.now()
    while (sent < PACKETS) {
      const outbox: { socket: RoceSocket; datagrams: Buffer[] }[] = []
      for (let i = 0; i < BATCH && sent < PACKETS; i++) {
        const f = peer.next()
        stages[f.stage]++
        kinds.set(f.kind, (kinds.get(f.kind) ?? 0) + 1)
        for (const m of f.mutations) mutations.set(m, (mutations.get(m) ?? 0) + 1)
        const socket = f.via === 'peer' ? peerSocket : offPathSocket
        if (mode === 'datagrams') socket.socket.send(f.datagram, dd.info.port, '127.0.0.1')
        else if (outbox.at(-1)?.socket === socket) outbox.at(-1)!.datagrams.push(f.datagram)
        else outbox.push({ socket, datagrams: [f.datagram] })
        sent++
      }
      for (const o of outbox) gsoMessages += sendAggregated(o.socket, dd.info.port, o.datagrams)
      await delivered()
      await new Promise((resolve) => setImmediate(resolve))
      maintain()
      recycle()
      if (sent % (BATCH * 160) === 0) {
        await realTransfer(false)
        await delivered()
      }
    }
    await sleep(100)
    await delivered()
    const seconds = (performance.now() - t0) / 1000
    const c = dd.counters.snapshot()
    const drops = dd.counters.totalDrops

    console.info([
      `[fuzz] ${sent} datagrams in ${seconds.toFixed(1)} s (seed ${SEED}); kinds ${JSON.stringify(Object.fromEntries(kinds))}`,
      `[fuzz] mutations ${JSON.stringify(Object.fromEntries(mutations))}`,
      `[fuzz] predicted stages ${JSON.stringify(stages)}`,
      `[fuzz] device: received ${c.packetsReceived - recvBase} (fuzz ${sent} + real peer ${pd.counters.packetsSent - peerSentBase}), accepted by a QP ${accepted} (${inRuns} in receive runs), dropped ${drops}: ${JSON.stringify(c.drops)}; NAKs sent ${JSON.stringify(dd.counters.naksSentByKind)}; duplicates answered ${c.duplicatesAnswered}; IPv4 IDs solved ${c.ipv4IdSolved}`,
      `[fuzz] ${mode}: ${gsoMessages} GSO messages sent; device read ${JSON.stringify(dd.batchedIo?.stats)}`,
      `[fuzz] fuzz QPs driven to ERR and reconnected: ${recycled}; reasons ${JSON.stringify(Object.fromEntries([...errReasons].sort((x, y) => y[1] - x[1]).slice(0, 12)))}`,
      `[fuzz] device WR completions on fuzz QPs: ${JSON.stringify(Object.fromEntries(statuses))}; datagrams the peer got from the device: ${peer.received}`,
    ].join('\n'))

    if (mode === 'GSO') {
      expect(dd.batchedIo!.receive).toBe('gro')
      expect(dd.batchedIo!.stats.aggregates, 'GRO aggregates read').toBeGreaterThan(PACKETS / 50)
    }
    // Every datagram is accounted for: handed to a QP, or dropped under exactly one reason.
    expect(c.packetsReceived - recvBase).toBe(sent + pd.counters.packetsSent - peerSentBase)
    expect(accepted + drops).toBe(c.packetsReceived)
    expect(c.drops.badIcrc).toBe(stages.badIcrc)
    expect(c.drops.unknownQpn).toBe(stages.unknownQpn)
    expect(c.drops.wrongSource).toBe(stages.wrongSource)
    expect(c.drops.malformed).toBeGreaterThanOrEqual(stages.short)
    for (const reason of DROP_REASONS) expect(Number.isInteger(c.drops[reason])).toBe(true)
    // The fuzz went deep: many packets parsed and executed, and every drop stage was hit.
    expect(accepted).toBeGreaterThan(PACKETS / 5)
    expect(Math.min(c.drops.badPsn, c.drops.malformed, c.drops.wrongState, c.drops.accessViolation)).toBeGreaterThan(0)

    // Memory: no byte outside a region changed, regions without remote write did not change,
    // and no canary byte left the device.
    expect(mem.guardsIntact(), 'canary guards around every region intact').toBe(true)
    expect(Buffer.from(ro!.bytes).equals(roBefore), 'read-only region unchanged').toBe(true)
    expect(Buffer.from(sealed!.bytes).equals(sealedBefore), 'local-only region unchanged').toBe(true)
    expect(peer.leaks, 'datagrams carrying canary bytes').toBe(0)

    // Every WR posted on a fuzz QP completes exactly once (the rest flush when the QPs enter ERR).
    for (const q of fuzzQps) if (q.state !== 'ERR') q.modify({ state: 'ERR' })
    for (const deadline = performance.now() + 2000; ;) {
      for (const q of fuzzQps) for (const wc of q.sendCq.poll(256)) completions.set(wc.wrId, (completions.get(wc.wrId) ?? 0) + 1)
      if (fuzzQps.every((q) => q.outstanding.send + q.outstanding.recv + q.outstanding.backlog === 0) || performance.now() > deadline) break
      await sleep(10)
    }
    for (const q of fuzzQps) expect(q.outstanding, `QP ${q.qpn} in ${q.state}: every WR completed`).toEqual({ send: 0, recv: 0, backlog: 0 })
    expect(completions.size).toBe(posted.size)
    expect([...completions.values()].every((n) => n === 1), 'exactly one completion per WR').toBe(true)

    // The real pair still works both ways, never went to ERR; a recycled fuzz QP works with a real peer.
    await realTransfer(true)
    expect(realErrors).toEqual([])
    expect(d0.state).toBe('RTS')
    const fq = fuzzQps[0]!
    fq.modify({ state: 'RESET' })
    const pq = p.createQp({ caps: { maxSendWr: 16, maxRecvWr: 16 } })
    connectPair(fq, pq, d.endpoint, p.endpoint, 256)
    const data = r.bytes(10_000)
    pMem.bytes.set(data, 0)
    await pq.write(pMem.slice(0, data.length), rw!.region(0, data.length))
    expect(Buffer.from(rw!.bytes.subarray(0, data.length)).equals(data)).toBe(true)
    await fq.read(local!.slice(0, data.length), pMem.region(0, data.length))
    expect(Buffer.from(local!.bytes.subarray(0, data.length)).equals(data)).toBe(true)
    expect(mem.guardsIntact()).toBe(true)
  }, 300_000)
})
