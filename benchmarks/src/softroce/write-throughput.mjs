// softroce RC WRITE throughput, 4 KiB to 4 MiB messages, against the ceiling of the same
// loopback path: a raw node:dgram blast of the datagrams softroce would send (4112 bytes: BTH,
// a 4096-byte payload, ICRC), windowed like softroce (as many in flight as its window, the
// receiver ACKs every 16th with a 4-byte datagram), so the blast does not just overrun the
// receiver. Both run between this process and a peer process; rounds alternate blast and WRITEs.
// Besides bytes/s it reports CPU seconds per GiB of both processes, the figure that stays put
// when other work shares the machine. QP timeout 16 (268 ms): loopback loses nothing, and on a
// loaded host the default 14 (67 ms) mostly measures spurious go-back-N after a stalled process.
// Each measurement moves 64 MiB (about 150 ms): with 16 MiB (40 ms) the ramp of each transfer
// (the first window, V8 still tiering up the WRITE sizes run once before) weighed on the
// result and the 1 MiB ratio moved between 0.65x and 0.78x from run to run.
// Target: WRITE throughput at 1 MiB >= 0.7x the blast.
import dgram from 'node:dgram'
import { createContext } from '@rdma-session/core'
import { softroce } from '@rdma-session/provider-softroce'
import { fmt, median, report } from '../measure.mjs'
import { connectToPeer, localQps, PeerProcess, withCpu } from './peer-process.mjs'

const MiB = 1 << 20
const TOTAL = Number(process.env.BENCH_SOFTROCE_MIB ?? 64) * MiB
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const SIZES = [4096, 16384, 65536, 256 * 1024, MiB, 4 * MiB]
const DATAGRAM = 12 + 4096 + 4
const ACK_EVERY = 16

const peer = new PeerProcess()
const ctx = await createContext({ provider: softroce({ port: 0 }) })
const opened = await peer.call('open', { regionBytes: 8 * MiB, qps: [{}] })
const [qp] = localQps(ctx, 1)
await connectToPeer(peer, ctx, [qp], opened, { timeout: 16 })
const src = ctx.registerMemory(Buffer.alloc(8 * MiB, 7))
const windowPackets = Math.floor(ctx.device.windowBytes / 4096)
const { port: sinkPort } = await peer.call('dgramSink', { ackEvery: ACK_EVERY })

// ---- baseline: windowed raw datagram blast; bytes/s the receiver acknowledged
// send() to an IP literal answered synchronously, as softroce's socket does (no dns.lookup round)
const literal = (host, _o, cb) => cb(null, host, 4)
const blaster = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20, lookup: literal })
await new Promise((r) => blaster.bind(0, '127.0.0.1', r))
async function blast() {
  await peer.call('dgramReset')
  const n = Math.ceil(TOTAL / 4096)
  const payload = Buffer.alloc(DATAGRAM, 0)
  const last = Buffer.alloc(DATAGRAM, 0)
  last[0] = 1
  let sent = 0
  let acked = 0
  const t0 = performance.now()
  let tAck = t0
  await new Promise((resolve) => {
    let stall = null
    const finish = () => {
      blaster.off('message', onAck)
      clearTimeout(stall)
      resolve()
    }
    const pump = () => {
      while (sent < n && sent - acked < windowPackets) {
        sent++
        blaster.send(sent === n ? last : payload, sinkPort, '127.0.0.1')
      }
    }
    const onAck = (m) => {
      acked = Math.max(acked, m.readUInt32LE(0))
      tAck = performance.now()
      if (acked >= n) return finish()
      clearTimeout(stall)
      // a datagram lost in the kernel would hold the window forever: count what arrived
      stall = setTimeout(finish, 200)
      pump()
    }
    blaster.on('message', onAck)
    pump()
  })
  return { bytesPerSecond: (acked * 4096) / ((tAck - t0) / 1000), lost: n - acked }
}

// ---- subject: RDMA WRITEs of `size`, enough in flight to fill the window, polled from the CQ
const cq = qp.sendCq
async function writes(size) {
  const n = Math.max(1, Math.floor(TOTAL / size))
  const depth = Math.max(2, Math.min(256, Math.ceil((4 * MiB) / size)))
  const slots = Math.max(1, Math.floor((8 * MiB) / size))
  let posted = 0
  let done = 0
  const post = () => {
    const off = (posted % slots) * size
    qp.postSend({ wrId: posted, opcode: 'RDMA_WRITE', sgList: [src.slice(off, size).toSge()], remoteAddr: opened.addr + off, rkey: opened.rkey })
    posted++
  }
  const t0 = performance.now()
  while (posted < Math.min(n, depth)) post()
  while (done < n) {
    const wcs = cq.poll(64)
    if (wcs.length === 0) {
      await cq.waitReady()
      continue
    }
    for (const wc of wcs) {
      if (wc.status !== 'SUCCESS') throw new Error(`WRITE failed: ${wc.status}`)
      done++
      if (posted < n) post()
    }
  }
  return (n * size) / ((performance.now() - t0) / 1000)
}

const before = ctx.device.counters.snapshot()
await blast()
for (const s of SIZES) await writes(s)
const GiB = 2 ** 30
const base = []
const baseCpu = []
const lost = []
const subject = new Map(SIZES.map((s) => [s, { rate: [], cpu: [] }]))
for (let r = 0; r < ROUNDS; r++) {
  const b = await withCpu(peer, blast)
  base.push(b.result.bytesPerSecond)
  baseCpu.push(b.cpuSeconds / (TOTAL / GiB))
  lost.push(b.result.lost)
  for (const s of SIZES) {
    const w = await withCpu(peer, () => writes(s))
    subject.get(s).rate.push(w.result)
    subject.get(s).cpu.push(w.cpuSeconds / ((Math.max(1, Math.floor(TOTAL / s)) * s) / GiB))
  }
}
const baseline = median(base)
const baselineCpu = median(baseCpu)
const mb = (x) => `${fmt(x / 1e6, 0)} MB/s`
const label = (s) => (s >= MiB ? `${s / MiB} MiB` : `${s / 1024} KiB`)
const at1M = median(subject.get(MiB).rate) / baseline
const after = ctx.device.counters.snapshot()
const peerDrops = Object.fromEntries(Object.entries((await peer.call('counters')).drops).filter(([, v]) => v > 0))
report('softroce RC WRITE throughput vs a windowed raw node:dgram blast (loopback, peer in another process)', [
  `baseline: ${DATAGRAM}-byte datagrams, ${windowPackets} in flight, ACK every ${ACK_EVERY}: ${mb(baseline)}, ${fmt(baselineCpu)} CPU s/GiB (median of ${ROUNDS}; datagrams lost in the kernel per round: ${lost.join(', ')})`,
  ...SIZES.map((s) => {
    const { rate, cpu } = subject.get(s)
    return `WRITE ${label(s).padStart(7)}: ${mb(median(rate)).padStart(9)}  ${fmt(median(rate) / baseline)}x   ${fmt(median(cpu))} CPU s/GiB (${fmt(median(cpu) / baselineCpu)}x the blast's)`
  }),
  `${fmt(TOTAL / MiB, 0)} MiB per measurement; window ${ctx.device.windowBytes / 1024} KiB; during the run: ${after.retransmits - before.retransmits} packets retransmitted after ${after.timeouts - before.timeouts} ACK timeouts and ${after.seqNaksReceived - before.seqNaksReceived} sequence NAKs; the peer dropped ${JSON.stringify(peerDrops)}`,
], { ok: at1M >= 0.7, text: `WRITE at 1 MiB reaches ${fmt(at1M)}x the datagram ceiling (target >= 0.7x)` })

blaster.close()
await ctx.close()
await peer.close()
