// The far end of the softroce benchmarks, in its own process (forked by peer-process.mjs), so
// the two stacks do not share an event loop, as two hosts would not. It hosts a softroce
// context (hand-connected QPs, an echo of SENDs, or a ws control-plane listener) and, for the
// baselines, raw node:dgram sockets (a windowed sink that ACKs with tiny datagrams, an echo).
// Requests arrive over IPC as { id, cmd, ...args } and are answered { id, ok } or { id, error }.
import dgram from 'node:dgram'
import net from 'node:net'
import { createContext } from '@rdma-session/core'
import { softroce } from '@rdma-session/provider-softroce'
import { pipelinedWrites } from './write-loop.mjs'

let ctx = null
let region = null
let qps = []
let server = null
const sockets = []
let echoing = false

const SOCKET_BUFFER_BYTES = 4 << 20

function openSocket() {
  return new Promise((resolve) => {
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize: SOCKET_BUFFER_BYTES, sendBufferSize: SOCKET_BUFFER_BYTES, lookup: (host, _o, cb) => cb(null, host, 4) })
    s.bind(0, '127.0.0.1', () => resolve(s))
    sockets.push(s)
  })
}

const handlers = {
  /** A softroce context with a region and `qps` QPs in INIT. */
  async open({ options = {}, regionBytes, qps: specs = [{}] }) {
    ctx = await createContext({ provider: softroce({ port: 0, ...options }) })
    region = ctx.registerMemory(Buffer.alloc(regionBytes), { access: ['local-write', 'remote-read', 'remote-write'] })
    qps = specs.map((s) => ctx.createQp({ caps: { maxSendWr: 1024, maxRecvWr: 1024 }, ...s }))
    for (const q of qps) q.modify({ state: 'INIT', accessFlags: 15, portNum: 1, pkeyIndex: 0 })
    return { endpoint: ctx.endpoint, qps: qps.map((q) => ({ qpn: q.qpn, psn: q.localPsn })), rkey: region.rkey, addr: region.addr, windowBytes: ctx.device.windowBytes }
  },

  connect({ remote, peerQps, pathMtu = 4096, timeout = 14 }) {
    for (const [i, q] of qps.entries()) {
      q.modify({ state: 'RTR', remote, pathMtu, destQpn: peerQps[i].qpn, rqPsn: peerQps[i].psn, maxDestRdAtomic: 16, minRnrTimer: 1 })
      q.modify({ state: 'RTS', sqPsn: q.localPsn, timeout, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 16 })
    }
    return {}
  },

  /**
   * Echoes every SEND on QP `qp` back with the same length, `depth` receives posted; replies are
   * signaled every `signalEvery` (1 = all), like ib_send_lat's server side.
   */
  echo({ qp: index, bytes, depth = 64, signalEvery = 1 }) {
    const qp = qps[index]
    const cq = qp.recvCq
    // The WRs are built once and posted again (as perftest does): receive k goes to slot k.
    const recvWrs = Array.from({ length: depth }, (_, k) => ({ wrId: k, sgList: [region.slice(k * bytes, bytes).toSge()] }))
    for (const wr of recvWrs) qp.postRecv(wr)
    const reply = { wrId: 0, opcode: 'SEND', sgList: [region.slice(depth * bytes, bytes).toSge()], signaled: false }
    const signaledReply = { ...reply, signaled: true }
    let sent = 0
    echoing = true
    void (async () => {
      while (echoing) {
        const wcs = cq.poll(64)
        if (wcs.length === 0) {
          await cq.waitReady()
          continue
        }
        for (const wc of wcs) {
          if (wc.opcode === 'RECV') {
            if (wc.status !== 'SUCCESS') {
              echoing = false
              break
            }
            qp.postSend(++sent % signalEvery === 0 ? signaledReply : reply)
            qp.postRecv(recvWrs[wc.wrId])
          }
        }
      }
    })()
    return {}
  },

  stopEcho() {
    echoing = false
    return {}
  },

  /** A ws control-plane listener with the region exposed as 'data'. */
  async listen({ psk, options = {}, regionBytes }) {
    ctx = await createContext({ provider: softroce({ port: 0, ...options }) })
    region = ctx.registerMemory(Buffer.alloc(regionBytes), { access: ['local-write', 'remote-read', 'remote-write'] })
    ctx.sessions.expose('data', region.region())
    server = await ctx.listen({ port: 0, host: '127.0.0.1', auth: { psk: Buffer.from(psk, 'hex') } })
    return { url: server.url }
  },

  /** Counts datagrams and ACKs every `ackEvery`-th (and any that completes `expect`) with its count. */
  async dgramSink({ ackEvery }) {
    const s = await openSocket()
    const state = { datagrams: 0, bytes: 0 }
    s.on('message', (m, rinfo) => {
      state.datagrams++
      state.bytes += m.length
      if (state.datagrams % ackEvery === 0 || m[0] === 1) {
        const ack = Buffer.allocUnsafe(4)
        ack.writeUInt32LE(state.datagrams >>> 0, 0)
        s.send(ack, rinfo.port, rinfo.address)
      }
    })
    handlers.dgramReset = () => {
      state.datagrams = 0
      state.bytes = 0
      return {}
    }
    return { port: s.address().port }
  },

  /** A TCP sink: counts bytes and answers one byte each time `tcpExpect`'s count has arrived. */
  async tcpSink() {
    let expect = Infinity
    let received = 0
    server = net.createServer((c) => {
      c.setNoDelay(true)
      c.on('data', (b) => {
        received += b.length
        while (received >= expect) {
          received -= expect
          c.write('k')
        }
      })
    })
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    handlers.tcpExpect = ({ bytes }) => {
      expect = bytes
      received = 0
      return {}
    }
    return { port: server.address().port }
  },

  async dgramEcho() {
    const s = await openSocket()
    s.on('message', (m, rinfo) => s.send(m, rinfo.port, rinfo.address))
    return { port: s.address().port }
  },

  /**
   * RDMA WRITEs of `size` bytes on QP 0 to the peer's region (`addr`, `rkey`), `depth` in flight,
   * until `total` bytes completed or `deadlineMs` passed; returns the bytes done and the time.
   */
  writeTo({ addr, rkey, total, size, depth, deadlineMs }) {
    const n = Math.max(1, Math.floor(total / size))
    const slots = Math.max(1, Math.floor(region.length / size))
    return pipelinedWrites({ qp: qps[0], src: region, remoteAddr: addr, rkey, size, n, depth, slots, deadlineMs })
  },

  counters() {
    return ctx.device.counters.snapshot()
  },

  /** The device's batched-I/O counters (null on the node:dgram paths). */
  batchedIoStats() {
    return ctx.device.batchedIo?.stats ?? null
  },

  cpu() {
    const c = process.cpuUsage()
    return { seconds: (c.user + c.system) / 1e6 }
  },

  async close() {
    echoing = false
    for (const s of sockets) s.close()
    await (server instanceof net.Server ? new Promise((resolve) => server.close(resolve)) : server?.close())
    await ctx?.close()
    setImmediate(() => process.disconnect())
    return {}
  },
}

process.on('message', async (m) => {
  try {
    process.send({ id: m.id, ok: await handlers[m.cmd](m) })
  } catch (err) {
    process.send({ id: m.id, error: String(err?.stack ?? err) })
  }
})
process.on('disconnect', () => setTimeout(() => process.exit(0), 100).unref())
