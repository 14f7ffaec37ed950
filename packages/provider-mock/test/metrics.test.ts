/** Transport counters through the SPI metrics() hooks, and core's Prometheus export of them. */
import { createContext } from '@rdma-session/core'
import { renderPrometheus } from '@rdma-session/core/prometheus'
import { describe, expect, it } from 'vitest'
import { MockFabric, mock } from '../src/index.js'
import { SLOW_ACK_TIMEOUT, completions, connect, pair, queuePair, sge, sleep } from './harness.js'

describe('mock transport counters (SPI metrics hook)', () => {
  it('count packets and bytes on both hosts and on the QPs', async () => {
    const p = await pair(SLOW_ACK_TIMEOUT)
    p.a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(p.a, 0, 1000)], signaled: true, remoteAddr: p.b.mr.addr, rkey: p.b.mr.rkey })
    expect((await completions(p.a.cq, 1))[0]!.status).toBe('SUCCESS')
    const a = p.a.device.metrics().counters
    const b = p.b.device.metrics().counters
    expect(a.packetsSent).toBe(1)
    expect(a.bytesSent).toBe(1000)
    expect(b.packetsReceived).toBe(1)
    expect(b.bytesReceived).toBe(1000)
    expect(b.packetsSent).toBe(1) // the ACK
    expect(a.packetsReceived).toBe(1)
    expect(p.a.qp.metrics().counters).toMatchObject({ packetsSent: 1, bytesSent: 1000, retransmits: 0, timeouts: 0 })
    expect(a.retransmits).toBe(0)
  })

  it('count a retransmission after the ACK timeout on the host and the QP', async () => {
    const p = await pair(SLOW_ACK_TIMEOUT)
    p.fabric.faults.drop({ opcode: 'RDMA_WRITE', count: 1 })
    p.a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(p.a, 0, 16)], signaled: true, remoteAddr: p.b.mr.addr, rkey: p.b.mr.rkey })
    expect((await completions(p.a.cq, 1))[0]!.status).toBe('SUCCESS')
    expect(p.a.device.metrics().counters).toMatchObject({ retransmits: 1, timeouts: 1, packetsSent: 2 })
    expect(p.a.qp.metrics().counters).toMatchObject({ retransmits: 1, timeouts: 1 })
    expect(p.b.device.metrics().counters.retransmits).toBe(0)
  })

  it('count retransmits in wire packets, as softroce does: a 10 KiB WRITE at MTU 1024 resent once counts 10', async () => {
    const p = await pair({ ...SLOW_ACK_TIMEOUT, mtu: 1024 })
    p.fabric.faults.drop({ opcode: 'RDMA_WRITE', count: 1 })
    p.a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(p.a, 0, 10 * 1024)], signaled: true, remoteAddr: p.b.mr.addr, rkey: p.b.mr.rkey })
    expect((await completions(p.a.cq, 1))[0]!.status).toBe('SUCCESS')
    expect(p.a.device.metrics().counters).toMatchObject({ retransmits: 10, timeouts: 1, packetsSent: 2 })
    expect(p.a.qp.metrics().counters).toMatchObject({ retransmits: 10, timeouts: 1 })
  })

  it('count NAKs by kind: the responder sends an RNR NAK, the requester receives it', async () => {
    const p = await pair({ minRnrTimer: 1 })
    p.a.qp.postSend({ wrId: 1, opcode: 'SEND', sgList: [sge(p.a, 0, 8)], signaled: true })
    // Post the receive only once the responder has answered with an RNR NAK (not after a fixed sleep).
    for (let i = 0; i < 500 && (p.b.device.metrics().labeled!.naksSent!.values.RNR ?? 0) === 0; i++) await sleep(2)
    p.b.qp.postRecv({ wrId: 9, sgList: [sge(p.b, 0, 64)] })
    expect((await completions(p.a.cq, 1))[0]!.status).toBe('SUCCESS')
    const sent = p.b.device.metrics().labeled!.naksSent!
    const received = p.a.device.metrics().labeled!.naksReceived!
    expect(sent.label).toBe('kind')
    expect(sent.values.RNR).toBeGreaterThanOrEqual(1)
    expect(received.values.RNR).toBe(sent.values.RNR)
    expect(sent.values.PSN_SEQUENCE_ERROR).toBe(0)
    expect(p.b.qp.metrics().labeled!.naksSent!.values.RNR).toBe(sent.values.RNR)
    // The WR went out again after the RNR wait.
    expect(p.a.qp.metrics().counters.retransmits).toBeGreaterThanOrEqual(1)
  })

  it('count drops by reason on the host that drops: unknown QPN and a QP not ready', async () => {
    const fabric = new MockFabric({ maxAckTimeoutMs: 2 })
    const p = await pair({ fabric, retryCnt: 1 })
    // A QP of B that stays in INIT, and a QP of A connected to it.
    const idle = queuePair(p.b.device, p.b.pd)
    idle.qp.modify({ state: 'INIT', accessFlags: 15, portNum: 1, pkeyIndex: 0 })
    const lonely = queuePair(p.a.device, p.a.pd)
    connectOneWay(lonely, p.b.device.info, idle.qp.qpn)
    lonely.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [{ addr: p.a.mr.addr, length: 8, lkey: p.a.mr.lkey }], signaled: true, remoteAddr: p.b.mr.addr, rkey: p.b.mr.rkey })
    expect((await completions(lonely.cq, 1))[0]!.status).toBe('RETRY_EXC_ERR')
    // A QP of A connected to a QPN that B never created.
    const ghost = queuePair(p.a.device, p.a.pd)
    connectOneWay(ghost, p.b.device.info, (idle.qp.qpn ^ 0x5a5a5a) & 0xffffff)
    ghost.qp.postSend({ wrId: 2, opcode: 'RDMA_WRITE', sgList: [{ addr: p.a.mr.addr, length: 8, lkey: p.a.mr.lkey }], signaled: true, remoteAddr: p.b.mr.addr, rkey: p.b.mr.rkey })
    expect((await completions(ghost.cq, 1))[0]!.status).toBe('RETRY_EXC_ERR')
    const drops = p.b.device.metrics().labeled!.drops!
    expect(drops.label).toBe('reason')
    expect(drops.values.wrongState).toBe(2) // the first try and one retry
    expect(drops.values.unknownQpn).toBe(2)
    expect(drops.values.decryptFailure).toBe(0)
    expect(idle.qp.metrics().labeled!.drops!.values.wrongState).toBe(2)
    expect(p.a.device.metrics().counters.timeouts).toBe(4)
    // Drops on the fabric itself (faults, dead hosts) are not the host's: they stay in fabric.stats.
    expect(Object.keys(drops.values)).not.toContain('fault')
  })

  function connectOneWay(q: ReturnType<typeof queuePair>, remote: { address: string; port: number }, destQpn: number): void {
    q.qp.modify({ state: 'INIT', accessFlags: 15, portNum: 1, pkeyIndex: 0 })
    q.qp.modify({ state: 'RTR', remote, pathMtu: 1024, destQpn, rqPsn: 0, minRnrTimer: 1 })
    q.qp.modify({ state: 'RTS', sqPsn: 0, timeout: 8, retryCnt: 1, rnrRetry: 1 })
  }

  it('reach Prometheus through core and prom-client: renderPrometheus() shows sessions, QPs, retransmits and NAK kinds', async () => {
    const fabric = new MockFabric({ maxAckTimeoutMs: 300 }) // core's IB timeout 14: 67 ms, not 5 (see SLOW_ACK_TIMEOUT)
    const a = await createContext({ provider: mock({ fabric }) })
    const b = await createContext({ provider: mock({ fabric }) })
    try {
      const target = b.registerMemory(Buffer.alloc(65536), { access: ['local-write', 'remote-write', 'remote-read'] })
      b.sessions.expose('t', target.region())
      const session = await a.sessions.create({ peer: b, qps: [{ qos: { class: 'latency', serviceLevel: 3 } }, { qos: { class: 'bulk', weight: 4 } }] })
      const [latency, bulk] = session.qps
      const local = a.registerMemory(Buffer.alloc(65536))
      fabric.faults.drop({ opcode: 'RDMA_WRITE', dstQpn: bulk!.remoteQpn!, count: 1 })
      await bulk!.write(local.slice(0, 4096), session.remoteRegions.get('t')!)
      for (let i = 0; i < 10; i++) await latency!.read(local.slice(0, 64), { ...session.remoteRegions.get('t')!, length: 64 })
      const text = await renderPrometheus(a)
      const line = (re: RegExp) => {
        const m = text.split('\n').find((l) => re.test(l))
        expect(m, `no line matching ${re}`).toBeDefined()
        return Number(m!.split(' ').at(-1))
      }
      const dev = `provider="mock",device="${a.info.name}"`
      expect(line(new RegExp(`^rdma_session_sessions\\{${dev}\\} `))).toBe(1)
      // The lost 4096-byte WRITE is resent once: 4 wire packets at the session's MTU of 1024.
      expect(line(new RegExp(`^rdma_session_device_retransmits_total\\{${dev}\\} `))).toBe(4)
      expect(line(new RegExp(`^rdma_session_qp_wire_retransmits_total\\{.*qpn="${bulk!.qpn}",class="bulk"\\} `))).toBe(4)
      expect(line(new RegExp(`^rdma_session_qp_wire_retransmits_total\\{.*qpn="${latency!.qpn}",class="latency"\\} `))).toBe(0)
      expect(line(new RegExp(`^rdma_session_qp_ops_completed_total\\{.*class="latency"\\} `))).toBe(10)
      expect(line(new RegExp(`^rdma_session_qp_bytes_sent_total\\{.*class="bulk"\\} `))).toBe(4096)
      expect(line(new RegExp(`^rdma_session_qp_latency_microseconds_count\\{.*class="latency"\\} `))).toBe(10)
      expect(line(new RegExp(`^rdma_session_device_naks_received_total\\{${dev},kind="RNR"\\} `))).toBe(0)
      expect(line(new RegExp(`^rdma_session_device_drops_total\\{${dev},reason="unknownQpn"\\} `))).toBe(0)
      // The peer's view: its end of the session, and the packets it received.
      expect(await renderPrometheus(b)).toMatch(new RegExp(`rdma_session_session_qps\\{provider="mock",device="${b.info.name}",session="${session.id}",remote="[^"]+"\\} 2`))
    } finally {
      await a.close()
      await b.close()
    }
  })
})
