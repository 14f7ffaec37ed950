#!/usr/bin/env node
// Runs inside the rxe guest: 8-byte RDMA WRITE latency and 64 KiB RDMA WRITE bandwidth through
// provider-verbs, and perftest's ib_write_lat / ib_write_bw on the same rxe device in the same
// run, then the ratios (targets: latency <= 1.3x, bandwidth >= 0.8x).
//   node bench/write-bench.mjs [--device rxe0] [--gid 1] [--lat-iters 1000] [--bw-iters 2000]
// Prints a table and one `GUEST-RESULT {...}` line. Started by bench/run-in-guest.mjs on the host.
import { spawn } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { createContext } from '@rdma-session/core'
import { verbs } from '../dist/index.js'

const { values: o } = parseArgs({
  options: {
    device: { type: 'string', default: 'rxe0' },
    gid: { type: 'string', default: '1' },
    'lat-iters': { type: 'string', default: '1000' },
    'bw-iters': { type: 'string', default: '2000' },
    'tx-depth': { type: 'string', default: '128' },
  },
})
const LAT_ITERS = Number(o['lat-iters'])
const BW_ITERS = Number(o['bw-iters'])
const TX_DEPTH = Number(o['tx-depth'])
const BW_SIZE = 65536
const SIGNAL_EVERY = 64 // like perftest's --cq-mod (100): most WRs unsignaled
const MIB = 1048576 // perftest's MB/sec is 2^20 bytes per second

function run(cmd, args) {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    c.stdout.on('data', (d) => (out += d))
    c.stderr.on('data', (d) => (out += d))
    c.on('close', (code) => resolve({ code, out }))
  })
}

/** perftest server and client on the same device, over TCP on localhost. */
async function perftest(tool, args, port) {
  const common = ['-d', o.device, '-x', o.gid, '-p', String(port), ...args]
  const server = run(tool, common)
  await sleep(1500)
  const client = await run(tool, [...common, '127.0.0.1'])
  const s = await server
  return { client, server: s }
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

async function connectedPair(pollMode) {
  const provider = verbs({ device: o.device, gidIndex: Number(o.gid), pollMode })
  const a = await createContext({ provider })
  const b = await createContext({ provider })
  const access = { access: ['local-write', 'remote-write', 'remote-read'] }
  const mra = a.registerMemory(Buffer.alloc(BW_SIZE * 2), access)
  const mrb = b.registerMemory(Buffer.alloc(BW_SIZE * 2), access)
  const caps = { maxSendWr: TX_DEPTH, maxRecvWr: 16, maxInlineData: 64 }
  const qa = a.createQp({ caps }), qb = b.createQp({ caps })
  const mtu = a.capabilities.maxMtu
  qa.modify({ state: 'INIT', accessFlags: 0b111 }); qb.modify({ state: 'INIT', accessFlags: 0b111 })
  qa.modify({ state: 'RTR', remote: b.endpoint, pathMtu: mtu, destQpn: qb.qpn, rqPsn: qb.localPsn })
  qb.modify({ state: 'RTR', remote: a.endpoint, pathMtu: mtu, destQpn: qa.qpn, rqPsn: qa.localPsn })
  qa.modify({ state: 'RTS', sqPsn: qa.localPsn }); qb.modify({ state: 'RTS', sqPsn: qb.localPsn })
  return { a, b, mra, mrb, qa, qb }
}

/**
 * Ping-pong like ib_write_lat: each side WRITEs 8 bytes (inline, as perftest does up to 220 bytes)
 * to the other and spins on its own memory; latency is half the round trip. The clock is read once
 * per batch of BATCH round trips: in the TCG guest one clock read costs 10-30 µs (no usable TSC),
 * far more than perftest's rdtsc, so per-iteration timing would measure the clock.
 */
const BATCH = 25
async function verbsLatency() {
  const { a, b, mra, mrb, qa, qb } = await connectedPair(true)
  const pa = qa.provider, pb = qb.provider, ca = qa.sendCq.provider, cb = qb.sendCq.provider
  const ba = mra.bytes, bb = mrb.bytes
  const ia = new Uint8Array(8), ib = new Uint8Array(8)
  const toB = { wrId: 1, opcode: 'RDMA_WRITE', sgList: [], signaled: true, remoteAddr: mrb.addr, rkey: mrb.rkey, inlineData: ia }
  const toA = { wrId: 2, opcode: 'RDMA_WRITE', sgList: [], signaled: true, remoteAddr: mra.addr + 8, rkey: mra.rkey, inlineData: ib }
  const round = (i) => {
    const v = (i & 0x7f) + 1
    ia[7] = v
    pa.postSend(toB)
    while (Atomics.load(bb, 7) !== v) ca.poll(16)
    ib[7] = v
    pb.postSend(toA)
    while (Atomics.load(ba, 15) !== v) cb.poll(16)
    if ((i & 15) === 0) { ca.poll(16); cb.poll(16) }
  }
  for (let i = 0; i < 200; i++) round(i)
  const batches = []
  const t0 = performance.now()
  for (let i = 0; i < LAT_ITERS; i += BATCH) {
    const tb = performance.now()
    for (let j = 0; j < BATCH; j++) round(i + j)
    batches.push(((performance.now() - tb) * 1000) / BATCH / 2)
  }
  const avg = ((performance.now() - t0) * 1000) / (Math.ceil(LAT_ITERS / BATCH) * BATCH) / 2
  await sleep(20)
  ca.poll(256); cb.poll(256)
  await a.close(); await b.close()
  return { typical: median(batches), avg, min: Math.min(...batches) }
}

/** Streams 64 KiB WRITEs with up to TX_DEPTH outstanding, one in SIGNAL_EVERY signaled, like ib_write_bw. */
async function verbsBandwidth() {
  const { a, b, mra, mrb, qa } = await connectedPair(true)
  const p = qa.provider, cq = qa.sendCq.provider
  const sge = [mra.slice(0, BW_SIZE).toSge()]
  let posted = 0, completed = 0, inflight = 0
  const t0 = performance.now()
  while (completed < BW_ITERS) {
    while (inflight + SIGNAL_EVERY <= TX_DEPTH && posted < BW_ITERS) {
      for (let k = 0; k < SIGNAL_EVERY && posted < BW_ITERS; k++) {
        const last = k === SIGNAL_EVERY - 1 || posted === BW_ITERS - 1
        p.postSend({ wrId: posted, opcode: 'RDMA_WRITE', sgList: sge, signaled: last, remoteAddr: mrb.addr, rkey: mrb.rkey })
        posted++
        inflight++
      }
    }
    for (const wc of cq.poll(16)) {
      if (wc.status !== 'SUCCESS') throw new Error(`WRITE completed with ${wc.status}`)
      const batch = wc.wrId % SIGNAL_EVERY + 1
      completed += batch
      inflight -= batch
    }
  }
  const s = (performance.now() - t0) / 1000
  await a.close(); await b.close()
  return { mibPerSec: (BW_ITERS * BW_SIZE) / s / MIB, seconds: s }
}

function parseLat(out) {
  // #bytes #iterations t_min t_max t_typical t_avg t_stdev 99% 99.9%
  const line = out.split('\n').find((l) => /^\s*8\s+\d+\s+[\d.]+/.test(l))
  if (!line) throw new Error(`no ib_write_lat result:\n${out}`)
  const f = line.trim().split(/\s+/).map(Number)
  return { min: f[2], typical: f[4], avg: f[5] }
}

function parseBw(out) {
  // #bytes #iterations BW peak[MB/sec] BW average[MB/sec] MsgRate[Mpps]
  const line = out.split('\n').find((l) => /^\s*65536\s+\d+\s+[\d.]+/.test(l))
  if (!line) throw new Error(`no ib_write_bw result:\n${out}`)
  const f = line.trim().split(/\s+/).map(Number)
  return { mibPerSec: f[3] }
}

const t0 = Date.now()
const lat = await perftest('ib_write_lat', ['-s', '8', '-n', String(LAT_ITERS)], 18515)
const pLat = parseLat(lat.client.out)
const vLat = await verbsLatency()
const bw = await perftest('ib_write_bw', ['-s', String(BW_SIZE), '-n', String(BW_ITERS), '-t', String(TX_DEPTH)], 18516)
const pBw = parseBw(bw.client.out)
const vBw = await verbsBandwidth()

const r2 = (x) => Math.round(x * 100) / 100
const result = {
  part: 'bench',
  device: o.device,
  latency: { bytes: 8, iterations: LAT_ITERS, perftestUs: { typical: pLat.typical, avg: pLat.avg, min: pLat.min }, verbsUs: { typical: r2(vLat.typical), avg: r2(vLat.avg), min: r2(vLat.min) }, ratioTypical: r2(vLat.typical / pLat.typical), ratioAvg: r2(vLat.avg / pLat.avg), target: '<= 1.3' },
  bandwidth: { bytes: BW_SIZE, iterations: BW_ITERS, txDepth: TX_DEPTH, perftestMiBps: pBw.mibPerSec, verbsMiBps: r2(vBw.mibPerSec), ratio: r2(vBw.mibPerSec / pBw.mibPerSec), target: '>= 0.8' },
  ms: Date.now() - t0,
}
console.log('')
console.log(`8 B RDMA WRITE latency (µs, half round trip), ${LAT_ITERS} iterations on ${o.device}`)
console.log(`  ib_write_lat     typical ${pLat.typical}  avg ${pLat.avg}  min ${pLat.min}`)
console.log(`  provider-verbs   typical ${r2(vLat.typical)}  avg ${r2(vLat.avg)}  min ${r2(vLat.min)}   (median/min of ${BATCH}-round-trip batch means)`)
console.log(`  ratio            typical ${result.latency.ratioTypical}x  avg ${result.latency.ratioAvg}x  (target <= 1.3x)`)
console.log(`64 KiB RDMA WRITE bandwidth (MiB/s), ${BW_ITERS} iterations, tx depth ${TX_DEPTH}`)
console.log(`  ib_write_bw      ${pBw.mibPerSec}`)
console.log(`  provider-verbs   ${r2(vBw.mibPerSec)}`)
console.log(`  ratio            ${result.bandwidth.ratio}x  (target >= 0.8x)`)
console.log(`GUEST-RESULT ${JSON.stringify(result)}`)
