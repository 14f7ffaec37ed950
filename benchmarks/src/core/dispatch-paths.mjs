// The three ways the dispatch-overhead benchmark moves the same 8-byte RDMA WRITEs over one mock
// fabric, kept identical where they can be: the same WR count, DEPTH WRs in flight, a new WR
// posted as each completion is polled, batches of up to POLL_BATCH completions, the same 8-byte
// source and target regions, one promise per wait for completions (none per WR) on the raw paths.
//  - spi:      the provider SPI directly (ProviderQp.postSend / ProviderCq.poll / setNotify)
//  - coreRaw:  core's verbs path (QueuePair.postSend / CompletionQueue.poll / waitReady)
//  - corePromise: core's promise API (qp.write, one promise per WR), DEPTH lanes
//  - spiPromise: the SPI with the minimum a promise per WR needs (a resolver per WR, looked up
//    by wrId as its completion is polled): the baseline the promise API is compared with
import { createContext, QpState } from '@rdma-session/core'
import { MockFabric, mock } from '@rdma-session/provider-mock'
import { nullProvider } from './null-provider.mjs'

export const DEPTH = 16
const POLL_BATCH = 64
const PLAINTEXT = { encryption: 'none' } // AES-GCM per packet would be measured as dispatch
const CAPS = { maxSendWr: 64 }

export async function setupPaths() {
  const fabric = new MockFabric()
  const a = await createContext({ provider: mock({ fabric }) })
  const b = await createContext({ provider: mock({ fabric }) })
  const target = b.registerMemory(Buffer.alloc(4096), { access: ['local-write', 'remote-write'] })
  const src = a.registerMemory(Buffer.alloc(4096))
  const slice = src.slice(0, 8)
  const region = target.region(0, 8)

  // --- core's verbs path: a plain-SGE list made once, as an application that posts in a loop does
  const rawSession = await a.sessions.create({ peer: b, params: PLAINTEXT, qps: [{ caps: CAPS }] })
  const [rawQp] = rawSession.qps
  const rawCq = rawQp.sendCq
  const rawSge = [slice.toSge()]
  const rawWr = { wrId: 0, opcode: 'RDMA_WRITE', sgList: rawSge, signaled: true, remoteAddr: region.addr, rkey: region.rkey }
  async function coreRaw(ops) {
    let posted = 0
    let done = 0
    while (posted < DEPTH) {
      rawWr.wrId = ++posted
      rawQp.postSend(rawWr)
    }
    while (done < ops) {
      const wcs = rawCq.poll(POLL_BATCH)
      if (wcs.length === 0) {
        await rawCq.waitReady()
        continue
      }
      for (let i = 0; i < wcs.length; i++) {
        if (wcs[i].status !== 'SUCCESS') throw new Error(`core raw write failed: ${wcs[i].status}`)
        done++
        if (posted < ops) {
          rawWr.wrId = ++posted
          rawQp.postSend(rawWr)
        }
      }
    }
  }

  // --- core's promise API
  const session = await a.sessions.create({ peer: b, params: PLAINTEXT, qps: [{ caps: CAPS }] })
  const [qp] = session.qps
  async function corePromise(ops) {
    let posted = 0
    const lane = async () => {
      while (posted < ops) {
        posted++
        await qp.write(slice, region)
      }
    }
    const lanes = []
    for (let i = 0; i < DEPTH; i++) lanes.push(lane())
    await Promise.all(lanes)
  }

  // --- the SPI directly, on a second instance of the same provider and the same fabric
  const provider = mock({ fabric })
  const devA = await provider.openDevice()
  const devB = await provider.openDevice()
  const pdA = devA.allocPd()
  const pdB = devB.allocPd()
  const mrA = pdA.registerMemory(new Uint8Array(4096), 1)
  const mrB = pdB.registerMemory(new Uint8Array(4096), 3)
  const qos = { serviceLevel: 0, trafficClass: 0, className: 'default', weight: 1, rateLimitBps: 0 }
  // The same caps as core's QPs (core fills in what the session did not give from the device's defaults).
  const spiQp = (pd, cq) => pd.createQp({ sendCq: cq, recvCq: cq, ...rawQp.caps, qos })
  const connect = (q, dev, peer) => {
    q.modify({ state: QpState.INIT, accessFlags: 15, portNum: 1, pkeyIndex: 0 })
    q.modify({ state: QpState.RTR, remote: { address: dev.info.address, port: dev.info.port }, pathMtu: 1024, destQpn: peer.qpn, rqPsn: 100, maxDestRdAtomic: 16, minRnrTimer: 12 })
    q.modify({ state: QpState.RTS, sqPsn: 100, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 16 })
  }
  const spiPair = () => {
    const cqA = pdA.createCq(256)
    const cqB = pdB.createCq(256)
    const qa = spiQp(pdA, cqA)
    const qb = spiQp(pdB, cqB)
    connect(qa, devB, qb)
    connect(qb, devA, qa)
    // A waiter like core's: one promise per wait, the notify callback wakes it once.
    let wake = null
    cqA.setNotify(() => {
      if (wake === null) return
      const w = wake
      wake = null
      w()
    })
    const waitReady = () => new Promise((resolve) => (wake = resolve))
    return { qa, cqA, waitReady }
  }
  const sge = [{ addr: mrA.addr, length: 8, lkey: mrA.lkey }]
  const wrFor = () => ({ wrId: 0, opcode: 'RDMA_WRITE', sgList: sge, signaled: true, remoteAddr: mrB.addr, rkey: mrB.rkey })

  const s1 = spiPair()
  const spiWr = wrFor()
  async function spi(ops) {
    const { qa, cqA, waitReady } = s1
    let posted = 0
    let done = 0
    while (posted < DEPTH) {
      spiWr.wrId = ++posted
      qa.postSend(spiWr)
    }
    while (done < ops) {
      const wcs = cqA.poll(POLL_BATCH)
      if (wcs.length === 0) {
        await waitReady()
        continue
      }
      for (let i = 0; i < wcs.length; i++) {
        if (wcs[i].status !== 'SUCCESS') throw new Error(`SPI write failed: ${wcs[i].status}`)
        done++
        if (posted < ops) {
          spiWr.wrId = ++posted
          qa.postSend(spiWr)
        }
      }
    }
  }

  // --- the SPI with a promise per WR: DEPTH lanes like corePromise, a resolver per wrId
  const s2 = spiPair()
  const resolvers = new Map()
  let pumping = false
  let nextId = 0
  const pump = async () => {
    pumping = true
    while (resolvers.size > 0) {
      const wcs = s2.cqA.poll(POLL_BATCH)
      if (wcs.length === 0) {
        await s2.waitReady()
        continue
      }
      for (let i = 0; i < wcs.length; i++) {
        const wc = wcs[i]
        const r = resolvers.get(wc.wrId)
        resolvers.delete(wc.wrId)
        if (wc.status === 'SUCCESS') r.resolve(wc)
        else r.reject(new Error(`SPI write failed: ${wc.status}`))
      }
    }
    pumping = false
  }
  const spiWrite = () =>
    new Promise((resolve, reject) => {
      const wr = wrFor()
      wr.wrId = ++nextId
      s2.qa.postSend(wr)
      resolvers.set(wr.wrId, { resolve, reject })
      if (!pumping) pump()
    })
  async function spiPromise(ops) {
    let posted = 0
    const lane = async () => {
      while (posted < ops) {
        posted++
        await spiWrite()
      }
    }
    const lanes = []
    for (let i = 0; i < DEPTH; i++) lanes.push(lane())
    await Promise.all(lanes)
  }

  const close = async () => {
    await a.close()
    await b.close()
  }
  return { spi, coreRaw, corePromise, spiPromise, close }
}

/**
 * The same loop (DEPTH WRs in flight, a new WR per completion polled) over a provider that moves
 * nothing, through core and on its SPI: synchronous, so CPU time is the loop's own, and the
 * difference per WR is what core itself costs.
 */
export async function setupNullPaths() {
  const provider = nullProvider()
  const ctx = await createContext({ provider })
  const qp = ctx.createQp({ caps: CAPS })
  qp.modify({ state: QpState.INIT, accessFlags: 15, portNum: 1, pkeyIndex: 0 })
  qp.modify({ state: QpState.RTR, remote: { address: '127.0.0.2', port: 4791 }, pathMtu: 1024, destQpn: 7, rqPsn: 0 })
  qp.modify({ state: QpState.RTS, sqPsn: qp.localPsn, timeout: 14, retryCnt: 7, rnrRetry: 7 })
  const mr = ctx.registerMemory(Buffer.alloc(64))
  const sge = mr.slice(0, 8).toSge()
  const loop = (post, poll) => (ops) => {
    const wr = { wrId: 0, opcode: 'RDMA_WRITE', sgList: [sge], signaled: true, remoteAddr: 0x10000, rkey: 1 }
    let posted = 0
    let done = 0
    while (done < ops) {
      while (posted - done < DEPTH && posted < ops) {
        wr.wrId = ++posted
        post(wr)
      }
      const wcs = poll(POLL_BATCH)
      for (let i = 0; i < wcs.length; i++) {
        if (wcs[i].status !== 'SUCCESS') throw new Error(`null write failed: ${wcs[i].status}`)
        done++
      }
    }
  }
  const device = await provider.openDevice()
  const pd = device.allocPd()
  const cq = pd.createCq(256)
  const spiQp = pd.createQp({ sendCq: cq, recvCq: cq, ...qp.caps, qos: qp.qos })
  spiQp.modify({ state: QpState.RTS })
  return {
    spi: loop((wr) => spiQp.postSend(wr), (max) => cq.poll(max)),
    core: loop((wr) => qp.postSend(wr), (max) => qp.sendCq.poll(max)),
    close: () => ctx.close(),
  }
}
