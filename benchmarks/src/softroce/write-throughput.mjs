// softroce RC WRITE throughput, 4 KiB to 4 MiB messages, between this process and a peer process
// on loopback, on each socket path of the stack, against two baselines measured in the same run:
//  - a node `net` TCP transfer of the same bytes (1 MiB writes, the receiver answers when a
//    measurement's bytes have all arrived);
//  - a raw node:dgram blast of the datagrams softroce would send (4112 bytes: BTH, a 4096-byte
//    payload, ICRC), windowed like softroce (as many in flight as its window, the receiver ACKs
//    every 16th with a 4-byte datagram), so the blast does not just overrun the receiver;
//  - a C blast of the same datagrams with the kernel's batched paths (udp-gso-blast.c: UDP GSO
//    and sendmmsg out, UDP_GRO and recvmmsg in, same window and answers), built with cc.
// The paths (both ends alike, chosen by the environment switches when the devices open):
//  - batched: sendmmsg of UDP GSO messages out, UDP_GRO aggregates in (the default), the middle
//    packets of a message framed and sent in runs by the helper (socket/send-run.ts);
//    and the receiver's middle packets checked and placed in receive runs by the helper (socket/receive-run.ts);
//  - batched without receive runs: runs framed by the helper, every received packet handled in
//    JavaScript (RDMA_SESSION_SOFTROCE_RECEIVE_RUNS=off);
//  - batched without runs: the same with every packet framed and received in JavaScript (RDMA_SESSION_SOFTROCE_RUNS=off);
//  - native: the helper's sendmsg per datagram and recvmmsg (RDMA_SESSION_SOFTROCE_BATCH=off);
//  - node:dgram: node's send() and 'message' events (RDMA_SESSION_SOFTROCE_NATIVE_SEND/RECEIVE=off).
// Besides bytes/s it reports CPU seconds per GiB of both processes (and of each end: the
// sender, this process, and the receiver, the peer), the figure that stays put when other work
// shares the machine. QP timeout 16 (268 ms): loopback loses nothing, and on a
// loaded host the default 14 (67 ms) mostly measures spurious go-back-N after a stalled process.
// Each measurement moves 64 MiB (BENCH_SOFTROCE_MIB); BENCH_PATHS=batched,native picks paths,
// (e.g. BENCH_PATHS='batched,batched without runs' for runs against the JavaScript framing),
// BENCH_SIZES=1048576 message sizes (the 1 MiB one is the verdict's).
// Targets (issue 14): WRITE at 1 MiB on the batched path >= 1.0x TCP and >= 0.4x the C blast.
import dgram from 'node:dgram'
import net from 'node:net'
import { createContext } from '@rdma-session/core'
import { nativeHelperStatus, softroce } from '@rdma-session/provider-softroce'
import { fmt, median, report } from '../measure.mjs'
import { buildCBlast, runCBlast } from './c-blast.mjs'
import { connectToPeer, localQps, PeerProcess, withCpu } from './peer-process.mjs'
import { pipelinedWrites } from './write-loop.mjs'

const MiB = 1 << 20
const GiB = 2 ** 30
const TOTAL = Number(process.env.BENCH_SOFTROCE_MIB ?? 64) * MiB
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const SIZES = process.env.BENCH_SIZES?.split(',').map(Number) ?? [4096, 16384, 65536, 256 * 1024, MiB, 4 * MiB]
const DATAGRAM = 12 + 4096 + 4
const ACK_EVERY = 16
const PATHS = {
  batched: {},
  'batched without receive runs': { RDMA_SESSION_SOFTROCE_RECEIVE_RUNS: 'off' },
  'batched without runs': { RDMA_SESSION_SOFTROCE_RUNS: 'off' },
  native: { RDMA_SESSION_SOFTROCE_BATCH: 'off' },
  'node:dgram': { RDMA_SESSION_SOFTROCE_NATIVE_SEND: 'off', RDMA_SESSION_SOFTROCE_NATIVE_RECEIVE: 'off' },
}
const SWITCHES = [...new Set(Object.values(PATHS).flatMap((e) => Object.keys(e)))]
const chosen = (process.env.BENCH_PATHS ?? Object.keys(PATHS).join(',')).split(',').filter((p) => p in PATHS)

/** A local context and a peer process, both opened with `env` set (the switches are read when a device opens). */
async function openPath(env) {
  const saved = Object.fromEntries(SWITCHES.map((k) => [k, process.env[k]]))
  for (const k of SWITCHES) delete process.env[k]
  Object.assign(process.env, env)
  try {
    const peer = new PeerProcess() // forked now: inherits the switches
    const ctx = await createContext({ provider: softroce({ port: 0 }) })
    const opened = await peer.call('open', { regionBytes: 8 * MiB, qps: [{}] })
    const [qp] = localQps(ctx, 1)
    await connectToPeer(peer, ctx, [qp], opened, { timeout: 16 })
    const src = ctx.registerMemory(Buffer.alloc(8 * MiB, 7))
    return { peer, ctx, qp, src, opened, io: ctx.device.diagnostics.batchedIo }
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}

/** RDMA WRITEs of `size`, enough in flight to fill the window, polled from the CQ; bytes/s. */
async function writes(p, size) {
  const { qp, src, opened } = p
  const n = Math.max(1, Math.floor(TOTAL / size))
  const depth = Math.max(2, Math.min(256, Math.ceil((4 * MiB) / size)))
  const slots = Math.max(1, Math.floor((8 * MiB) / size))
  const { bytes, ms } = await pipelinedWrites({ qp, src, remoteAddr: opened.addr, rkey: opened.rkey, size, n, depth, slots })
  return bytes / (ms / 1000)
}

// ---- baseline: windowed raw datagram blast; bytes/s the receiver acknowledged
// send() to an IP literal answered synchronously, as softroce's socket does (no dns.lookup round)
const literal = (host, _o, cb) => cb(null, host, 4)
async function blaster(peer, windowPackets) {
  const { port: sinkPort } = await peer.call('dgramSink', { ackEvery: ACK_EVERY })
  const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20, lookup: literal })
  await new Promise((r) => sock.bind(0, '127.0.0.1', r))
  const run = async () => {
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
        sock.off('message', onAck)
        clearTimeout(stall)
        resolve()
      }
      const pump = () => {
        while (sent < n && sent - acked < windowPackets) {
          sent++
          sock.send(sent === n ? last : payload, sinkPort, '127.0.0.1')
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
      sock.on('message', onAck)
      pump()
    })
    return { bytesPerSecond: (acked * 4096) / ((tAck - t0) / 1000), lost: n - acked }
  }
  return { run, close: () => sock.close() }
}

// ---- baseline: node net TCP, 1 MiB writes with backpressure; bytes/s until the sink's answer
async function tcp(peer) {
  const { port } = await peer.call('tcpSink')
  const sock = net.connect(port, '127.0.0.1')
  sock.setNoDelay(true)
  await new Promise((resolve, reject) => sock.once('connect', resolve).once('error', reject))
  const chunk = Buffer.alloc(MiB, 7)
  let answered = null
  sock.on('data', () => answered?.())
  const run = async () => {
    await peer.call('tcpExpect', { bytes: TOTAL })
    const got = new Promise((resolve) => {
      answered = resolve
    })
    const t0 = performance.now()
    for (let sent = 0; sent < TOTAL; sent += MiB) {
      if (!sock.write(chunk)) await new Promise((resolve) => sock.once('drain', resolve))
    }
    await got
    return TOTAL / ((performance.now() - t0) / 1000)
  }
  return { run, close: () => sock.destroy() }
}

const paths = new Map()
for (const name of chosen) paths.set(name, await openPath(PATHS[name]))
const first = paths.values().next().value
const windowPackets = Math.floor(first.ctx.device.windowBytes / 4096)
const blast = await blaster(first.peer, windowPackets)
const stream = await tcp(first.peer)

const cBlast = buildCBlast()
const cBlastRun = () => {
  const r = runCBlast(cBlast.bin, { size: DATAGRAM, datagrams: Math.ceil(TOTAL / 4096), window: windowPackets, ackEvery: ACK_EVERY })
  const gib = (r.datagrams * 4096) / GiB
  return { rate: (r.datagrams * 4096) / r.seconds, send: r.senderCpu / gib, receive: r.receiverCpu / gib, lost: r.lost }
}

const samples = { blast: { rate: [], cpu: [], lost: [] }, tcp: { rate: [], cpu: [] }, c: { rate: [], send: [], receive: [], lost: [] } }
for (const name of paths.keys()) for (const s of SIZES) samples[`${name} ${s}`] = { rate: [], cpu: [], send: [], receive: [] }
const counterBefore = new Map([...paths].map(([n, p]) => [n, p.ctx.device.counters.snapshot()]))
// warm-up: every path and size once, then ROUNDS interleaved rounds
await blast.run()
await stream.run()
if (cBlast.bin !== undefined) cBlastRun()
for (const p of paths.values()) for (const s of SIZES) await writes(p, s)
for (let r = 0; r < ROUNDS; r++) {
  const b = await withCpu(first.peer, blast.run)
  samples.blast.rate.push(b.result.bytesPerSecond)
  samples.blast.cpu.push(b.cpuSeconds / (TOTAL / GiB))
  samples.blast.lost.push(b.result.lost)
  const t = await withCpu(first.peer, stream.run)
  samples.tcp.rate.push(t.result)
  samples.tcp.cpu.push(t.cpuSeconds / (TOTAL / GiB))
  if (cBlast.bin !== undefined) {
    const c = cBlastRun()
    for (const k of ['rate', 'send', 'receive', 'lost']) samples.c[k].push(c[k])
  }
  for (const [name, p] of paths) {
    for (const s of SIZES) {
      const w = await withCpu(p.peer, () => writes(p, s))
      const gib = (Math.max(1, Math.floor(TOTAL / s)) * s) / GiB
      const into = samples[`${name} ${s}`]
      into.rate.push(w.result)
      into.cpu.push(w.cpuSeconds / gib)
      into.send.push(w.localSeconds / gib)
      into.receive.push(w.peerSeconds / gib)
    }
  }
}

const mb = (x) => `${fmt(x / 1e6, 0)} MB/s`
const label = (s) => (s >= MiB ? `${s / MiB} MiB` : `${s / 1024} KiB`)
const tcpRate = median(samples.tcp.rate)
const blastRate = median(samples.blast.rate)
const cRate = cBlast.bin === undefined ? NaN : median(samples.c.rate)
const lines = [
  `node net TCP, 1 MiB writes: ${mb(tcpRate)}, ${fmt(median(samples.tcp.cpu))} CPU s/GiB (both processes)`,
  `raw dgram blast, ${DATAGRAM}-byte datagrams, ${windowPackets} in flight, ACK every ${ACK_EVERY}: ${mb(blastRate)}, ${fmt(median(samples.blast.cpu))} CPU s/GiB (lost in the kernel per round: ${samples.blast.lost.join(', ')})`,
  cBlast.bin === undefined
    ? `C UDP GSO+GRO blast: not built (${cBlast.skipped})`
    : `C UDP GSO+GRO blast, ${DATAGRAM}-byte datagrams, same window and answers: ${mb(cRate)}, CPU s/GiB sender ${fmt(median(samples.c.send))} receiver ${fmt(median(samples.c.receive))} (lost per round: ${samples.c.lost.join(', ')})`,
]
for (const [name, p] of paths) {
  const io = `${p.io === undefined ? 'node:dgram both ways' : `send ${p.io.send}, receive ${p.io.receive}`}; ICRCs by ${nativeHelperStatus().icrcEngine}`
  lines.push(`path ${name} (${io}):`)
  for (const s of SIZES) {
    const { rate, cpu, send, receive } = samples[`${name} ${s}`]
    lines.push(`  WRITE ${label(s).padStart(7)}: ${mb(median(rate)).padStart(10)}  ${fmt(median(rate) / tcpRate)}x TCP  ${fmt(median(rate) / cRate)}x C blast  ${fmt(median(rate) / blastRate)}x dgram blast  CPU s/GiB ${fmt(median(cpu))} (sender ${fmt(median(send))}, receiver ${fmt(median(receive))})`)
  }
  const c0 = counterBefore.get(name)
  const c1 = p.ctx.device.counters.snapshot()
  const peerDrops = Object.fromEntries(Object.entries((await p.peer.call('counters')).drops).filter(([, v]) => v > 0))
  const st = p.ctx.device.batchedIo?.stats
  if (st !== undefined && st.calls > 0) lines.push(`  this side's socket: ${fmt(st.batched / st.calls, 1)} datagrams per sendmmsg, ${fmt(st.gsoSegments / Math.max(1, st.gsoMessages), 1)} per GSO message, ${st.single} sent alone, ${st.runPackets} in ${st.runs} runs framed by the helper; ${fmt(st.datagrams / Math.max(1, st.reads), 1)} datagrams per recvmmsg, ${st.aggregates} GRO aggregates`)
  const peerIo = await p.peer.call('batchedIoStats')
  if (peerIo !== null) lines.push(`  the receiver's socket: ${fmt(peerIo.datagrams / Math.max(1, peerIo.reads), 1)} datagrams per recvmmsg, ${peerIo.aggregates} GRO aggregates, ${peerIo.receiveRunPackets} packets in ${peerIo.receiveRuns} receive runs placed by the helper`)
  lines.push(`  ${c1.retransmits - c0.retransmits} packets retransmitted after ${c1.timeouts - c0.timeouts} ACK timeouts and ${c1.seqNaksReceived - c0.seqNaksReceived} sequence NAKs; the peer dropped ${JSON.stringify(peerDrops)}`)
}
/** The verdict's size: 1 MiB, or the largest measured when BENCH_SIZES leaves it out. */
const VERDICT = SIZES.includes(MiB) ? MiB : Math.max(...SIZES)
const ratio = (name) => (paths.has(name) ? median(samples[`${name} ${VERDICT}`].rate) : NaN)
if (paths.has('batched') && paths.has('batched without receive runs')) lines.push(`receive runs placed by the helper / every received packet in JavaScript at ${label(VERDICT)}: ${fmt(ratio('batched') / ratio('batched without receive runs'))}x`)
if (paths.has('batched') && paths.has('batched without runs')) lines.push(`runs framed by the helper / every packet framed in JavaScript at ${label(VERDICT)}: ${fmt(ratio('batched') / ratio('batched without runs'))}x`)
if (paths.has('batched') && paths.has('native')) lines.push(`batched / native at ${label(VERDICT)}: ${fmt(ratio('batched') / ratio('native'))}x; batched / node:dgram: ${fmt(ratio('batched') / ratio('node:dgram'))}x`)
lines.push(`${fmt(TOTAL / MiB, 0)} MiB per measurement, median of ${ROUNDS} rounds; window ${first.ctx.device.windowBytes / 1024} KiB`)
const at1M = ratio(chosen[0]) / tcpRate
const atC = ratio(chosen[0]) / cRate
report('softroce RC WRITE throughput per socket path vs node TCP, a C UDP GSO+GRO blast and a raw dgram blast (loopback, peer in another process)', lines,
  { ok: at1M >= 1.0 && atC >= 0.4, text: `WRITE at ${label(VERDICT)} on the ${chosen[0]} path reaches ${fmt(at1M)}x node TCP (target >= 1.0x), ${fmt(atC)}x the C UDP GSO+GRO blast (target >= 0.4x) and ${fmt(ratio(chosen[0]) / blastRate)}x the dgram blast` })

blast.close()
stream.close()
for (const p of paths.values()) {
  await p.ctx.close()
  await p.peer.close()
}
