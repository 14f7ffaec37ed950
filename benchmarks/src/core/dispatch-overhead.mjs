// Core dispatch overhead: 8-byte RDMA WRITEs through core (qp.write, one promise per WR)
// vs the same WRs posted straight to the mock provider's SPI and polled from its CQ.
import { createContext, QpState } from '@rdma-session/core'
import { MockFabric, mock } from '@rdma-session/provider-mock'
import { compare, fmt, report } from '../measure.mjs'

const OPS = 20000
const DEPTH = 16 // WRs in flight, the same for both paths

// --- subject: through core
const fabric = new MockFabric()
const a = await createContext({ provider: mock({ fabric }) })
const b = await createContext({ provider: mock({ fabric }) })
const target = b.registerMemory(Buffer.alloc(4096), { access: ['local-write', 'remote-write'] })
// Plaintext, as the SPI baseline below: sessions are encrypted by default, and AES-GCM per
// packet would be measured as dispatch.
const PLAINTEXT = { encryption: 'none' }
const session = await a.sessions.create({ peer: b, params: PLAINTEXT, qps: [{ caps: { maxSendWr: 64 } }] })
const [qp] = session.qps
const src = a.registerMemory(Buffer.alloc(4096))
const slice = src.slice(0, 8)
const region = target.region(0, 8)

async function throughCore() {
  let posted = 0
  const lane = async () => {
    while (posted < OPS) {
      posted++
      await qp.write(slice, region)
    }
  }
  await Promise.all(Array.from({ length: DEPTH }, lane))
}

// --- subject 2: core's raw verbs path (qp.postSend + cq.poll), no promise per WR
const rawSession = await a.sessions.create({ peer: b, params: PLAINTEXT, qps: [{ caps: { maxSendWr: 64 } }] })
const [rawQp] = rawSession.qps
const rawCq = rawQp.sendCq
const rawSge = [slice.toSge()]
async function throughCoreRaw() {
  let posted = 0
  let done = 0
  const post = () => {
    rawQp.postSend({ wrId: posted, opcode: 'RDMA_WRITE', sgList: rawSge, remoteAddr: region.addr, rkey: region.rkey })
    posted++
  }
  while (posted < DEPTH) post()
  while (done < OPS) {
    const wcs = rawCq.poll(64)
    if (wcs.length === 0) {
      await rawCq.waitReady()
      continue
    }
    for (const wc of wcs) {
      if (wc.status !== 'SUCCESS') throw new Error(`core raw write failed: ${wc.status}`)
      done++
      if (posted < OPS) post()
    }
  }
}

// --- baseline: the SPI directly
const provider = mock({ fabric })
const devA = await provider.openDevice()
const devB = await provider.openDevice()
const pdA = devA.allocPd()
const pdB = devB.allocPd()
const mrA = pdA.registerMemory(new Uint8Array(4096), 1)
const mrB = pdB.registerMemory(new Uint8Array(4096), 3)
const cqA = pdA.createCq(256)
const cqB = pdB.createCq(256)
const qos = { serviceLevel: 0, trafficClass: 0, className: 'default', weight: 1, rateLimitBps: 0 }
const init = (cq) => ({ sendCq: cq, recvCq: cq, maxSendWr: 64, maxRecvWr: 64, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0, qos })
const qa = pdA.createQp(init(cqA))
const qb = pdB.createQp(init(cqB))
const connect = (q, dev, peer) => {
  q.modify({ state: QpState.INIT, accessFlags: 15, portNum: 1, pkeyIndex: 0 })
  q.modify({ state: QpState.RTR, remote: { address: dev.info.address, port: dev.info.port }, pathMtu: 1024, destQpn: peer.qpn, rqPsn: 100, maxDestRdAtomic: 16, minRnrTimer: 12 })
  q.modify({ state: QpState.RTS, sqPsn: 100, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 16 })
}
connect(qa, devB, qb)
connect(qb, devA, qa)
let wake = null
cqA.setNotify(() => wake?.())
const sge = [{ addr: mrA.addr, length: 8, lkey: mrA.lkey }]

async function throughSpi() {
  let posted = 0
  let done = 0
  let wrId = 0
  const post = () => {
    qa.postSend({ wrId: ++wrId, opcode: 'RDMA_WRITE', sgList: sge, signaled: true, remoteAddr: mrB.addr, rkey: mrB.rkey })
    posted++
  }
  while (posted < DEPTH) post()
  while (done < OPS) {
    const wcs = cqA.poll(64)
    if (wcs.length === 0) {
      await new Promise((r) => (wake = r))
      continue
    }
    for (const wc of wcs) {
      if (wc.status !== 'SUCCESS') throw new Error(`SPI write failed: ${wc.status}`)
      done++
      if (posted < OPS) post()
    }
  }
}

const raw = await compare({ rounds: 16, baseline: throughSpi, subject: throughCoreRaw })
const promised = await compare({ rounds: 16, baseline: throughSpi, subject: throughCore })
const overhead = (raw.ratio - 1) * 100
const perOp = (ms) => `${fmt((OPS / ms), 1)} k ops/s (${fmt((ms * 1000) / OPS, 2)} µs/op)`
report('core dispatch overhead, 8-byte RDMA WRITE on the mock, 16 in flight', [
  `SPI direct (baseline):            ${perOp(raw.baselineMs)}`,
  `core postSend + cq.poll:          ${perOp(raw.subjectMs)}  ratio ${fmt(raw.ratio, 3)}×`,
  `core qp.write (a promise per WR): ${perOp(promised.subjectMs)}  ratio ${fmt(promised.ratio, 3)}× vs its own baseline run ${perOp(promised.baselineMs)}`,
], { ok: overhead <= 10, text: `dispatch overhead ${fmt(overhead, 1)}% (target ≤ 10%); the promise API costs ${fmt((promised.ratio - 1) * 100, 0)}% more than the SPI` })
await a.close()
await b.close()
