/** Encrypted QPs: AES-256-GCM on every packet, key mismatches, nonces, and rekey with a grace period. */
import { randomBytes } from 'node:crypto'
import { isRdmaError } from '@rdma-session/core'
import { describe, expect, it } from 'vitest'
import type { RecordedPacket } from '../src/index.js'
import { completions, pair, sge, until } from './harness.js'

const SECRET = Buffer.from('THE SECRET PLAINTEXT THAT MUST NOT APPEAR ON THE WIRE')

const contains = (haystack: Uint8Array, needle: Uint8Array): boolean => Buffer.from(haystack).includes(Buffer.from(needle))

describe('encryption', () => {
  it('every opcode works encrypted, and no recorded payload carries the plaintext', async () => {
    const { fabric, a, b } = await pair({ encryption: true })
    fabric.record()
    a.buf.set(SECRET, 0)
    b.buf.set(SECRET, 4096)
    b.qp.postRecv({ wrId: 1, sgList: [sge(b, 1000, 100)] })
    b.qp.postRecv({ wrId: 2, sgList: [sge(b, 1200, 100)] })
    a.qp.postSend({ wrId: 1, opcode: 'SEND', sgList: [sge(a, 0, SECRET.length)], signaled: true })
    a.qp.postSend({ wrId: 2, opcode: 'SEND_WITH_IMM', sgList: [sge(a, 0, SECRET.length)], signaled: true, imm: 3 })
    a.qp.postSend({ wrId: 3, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, SECRET.length)], signaled: true, remoteAddr: b.mr.addr + 2000, rkey: b.mr.rkey })
    a.qp.postSend({ wrId: 4, opcode: 'RDMA_READ', sgList: [sge(a, 3000, SECRET.length)], signaled: true, remoteAddr: b.mr.addr + 4096, rkey: b.mr.rkey })
    a.qp.postSend({ wrId: 5, opcode: 'ATOMIC_FETCH_AND_ADD', sgList: [sge(a, 5000, 8)], signaled: true, remoteAddr: b.mr.addr + 4096, rkey: b.mr.rkey, compareAdd: 0x0101010101010101n })
    expect((await completions(a.cq, 5)).map((w) => w.status)).toEqual(Array(5).fill('SUCCESS'))
    expect((await completions(b.cq, 2)).map((w) => [w.wrId, w.byteLen, w.imm])).toEqual([
      [1, SECRET.length, undefined],
      [2, SECRET.length, 3],
    ])
    expect(Buffer.from(b.buf.subarray(1000, 1000 + SECRET.length)).equals(SECRET)).toBe(true)
    expect(Buffer.from(b.buf.subarray(2000, 2000 + SECRET.length)).equals(SECRET)).toBe(true)
    expect(Buffer.from(a.buf.subarray(3000, 3000 + SECRET.length)).equals(SECRET)).toBe(true)
    expect(Buffer.from(a.buf.subarray(5000, 5008)).equals(SECRET.subarray(0, 8))).toBe(true)

    const recorded = fabric.recorded
    expect(recorded.length).toBeGreaterThanOrEqual(10)
    expect(recorded.every((r) => r.encrypted && r.nonce?.length === 12)).toBe(true)
    expect(recorded.filter((r) => contains(r.payload, SECRET.subarray(0, 16)))).toEqual([])
    const write = recorded.find((r) => r.opcode === 'RDMA_WRITE')!
    expect(write.payload.length).toBe(SECRET.length + 16)
    const readResponse = recorded.find((r) => r.opcode === 'READ_RESPONSE')!
    expect(readResponse.payload.length).toBe(SECRET.length + 16)
    const ack = recorded.find((r) => r.opcode === 'ACK')!
    expect(ack.payload.length, 'even ACKs carry a tag').toBe(16)
  })

  it('nonces never repeat under one key, retransmissions included', async () => {
    const { fabric, a, b } = await pair({ encryption: true, fabricOptions: { seed: 11 } })
    fabric.record()
    fabric.faults.drop({ probability: 0.2 })
    for (let i = 0; i < 100; i++) a.qp.postSend({ wrId: i, opcode: 'RDMA_WRITE', sgList: [sge(a, i, 32)], signaled: true, remoteAddr: b.mr.addr + i * 32, rkey: b.mr.rkey })
    expect((await completions(a.cq, 100)).every((w) => w.status === 'SUCCESS')).toBe(true)
    const fromA = fabric.recorded.filter((r) => r.srcQpn === a.qp.qpn)
    expect(fromA.length).toBeGreaterThan(100) // some retransmissions
    const nonces = new Set(fromA.map((r) => Buffer.from(r.nonce!).toString('hex')))
    expect(nonces.size).toBe(fromA.length)
  })

  it('a wrong key: the receiver drops and counts every packet, memory stays untouched, the sender ends with RETRY_EXC_ERR', async () => {
    const { fabric, a, b } = await pair({ encryption: { aTx: randomBytes(32), aRx: randomBytes(32), bRx: randomBytes(32) }, retryCnt: 2 })
    a.buf.set(SECRET, 0)
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, SECRET.length)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    expect(await completions(a.cq, 1)).toMatchObject([{ wrId: 1, status: 'RETRY_EXC_ERR' }])
    expect(fabric.stats.dropped.decryptFailure).toBe(3)
    expect(fabric.stats.delivered).toBe(0)
    expect(b.buf.every((x) => x === 0)).toBe(true)
  })

  it('plaintext to an encrypted QP is dropped as an encryption mismatch', async () => {
    const { fabric, a, b } = await pair({ encryption: true, retryCnt: 1 })
    // Reconnect A without encryption.
    a.qp.modify({ state: 'RESET' })
    a.qp.modify({ state: 'INIT', accessFlags: 15 })
    a.qp.modify({ state: 'RTR', remote: { address: b.device.info.address, port: 4791 }, pathMtu: 1024, destQpn: b.qp.qpn, rqPsn: b.psn })
    a.qp.modify({ state: 'RTS', sqPsn: a.psn, timeout: 8, retryCnt: 1 })
    expect(a.qp.query().encrypted).toBe(false)
    a.qp.postSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 8)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    expect(await completions(a.cq, 1)).toMatchObject([{ status: 'RETRY_EXC_ERR' }])
    expect(fabric.stats.dropped.encryptionMismatch).toBe(2)
  })

  it('rekey (RTS -> RTS with a higher epoch): packets in flight under the old key are still accepted during the grace period', async () => {
    // A 2 s ACK timeout: no retransmission in this test (with 50 ms, a host stalled past the 15 ms delay and the timeout
    // delivered the delayed writes and retransmitted them under epoch 1 in the same timer phase, before the ACKs came back).
    const { fabric, a, b } = await pair({ encryption: true, timeout: 20, fabricOptions: { maxAckTimeoutMs: 2000 } })
    fabric.record()
    fabric.faults.delay(15, { kind: 'request' })
    for (let i = 0; i < 20; i++) {
      a.buf[i] = i + 1
      a.qp.postSend({ wrId: i, opcode: 'RDMA_WRITE', sgList: [sge(a, i, 1)], signaled: true, remoteAddr: b.mr.addr + i, rkey: b.mr.rkey })
    }
    // The 20 writes are on the wire, sealed under epoch 0 (a fixed 3 ms could end before the scheduler sent them).
    const writes0 = (): number => fabric.recorded.filter((r) => r.opcode === 'RDMA_WRITE').length
    await until(() => writes0() >= 20, () => ({ writes: writes0(), stats: fabric.stats }))
    fabric.faults.clear()
    const k1 = { ab: randomBytes(32), ba: randomBytes(32) }
    a.qp.modify({ state: 'RTS', encryption: { suite: 'aes-256-gcm', txKey: k1.ab, rxKey: k1.ba, epoch: 1 } })
    b.qp.modify({ state: 'RTS', encryption: { suite: 'aes-256-gcm', txKey: k1.ba, rxKey: k1.ab, epoch: 1 } })
    expect(a.qp.snapshot().encryptionEpoch).toBe(1)
    const wcs = await completions(a.cq, 20)
    expect(wcs.every((w) => w.status === 'SUCCESS')).toBe(true)
    expect([...b.buf.subarray(0, 20)]).toEqual([...Array(20).keys()].map((i) => i + 1))
    const writes = fabric.recorded.filter((r: RecordedPacket) => r.opcode === 'RDMA_WRITE')
    expect(writes.map((w) => w.epoch)).toEqual(Array(20).fill(0))
    expect(fabric.recorded.filter((r) => r.opcode === 'ACK').every((r) => r.epoch === 1)).toBe(true)
    expect(fabric.stats.dropped.unknownEpoch).toBe(0)
    // New traffic uses the new key.
    a.qp.postSend({ wrId: 99, opcode: 'RDMA_WRITE', sgList: [sge(a, 0, 1)], signaled: true, remoteAddr: b.mr.addr, rkey: b.mr.rkey })
    await completions(a.cq, 1)
    expect(fabric.recorded.at(-2)).toMatchObject({ opcode: 'RDMA_WRITE', epoch: 1 })
  })

  it('without a grace period the old-epoch packets are dropped, then retransmitted under the new key: still no data lost', async () => {
    const { fabric, a, b } = await pair({ encryption: true, timeout: 10, fabricOptions: { rekeyGraceMs: 0 } })
    fabric.faults.delay(10, { kind: 'request', count: 5 })
    for (let i = 0; i < 5; i++) {
      a.buf[i] = 50 + i
      a.qp.postSend({ wrId: i, opcode: 'RDMA_WRITE', sgList: [sge(a, i, 1)], signaled: true, remoteAddr: b.mr.addr + i, rkey: b.mr.rkey })
    }
    await until(() => fabric.stats.sent >= 5, () => fabric.stats) // the 5 writes are on the wire under epoch 0
    const k1 = { ab: randomBytes(32), ba: randomBytes(32) }
    a.qp.modify({ state: 'RTS', encryption: { suite: 'aes-256-gcm', txKey: k1.ab, rxKey: k1.ba, epoch: 5 } })
    b.qp.modify({ state: 'RTS', encryption: { suite: 'aes-256-gcm', txKey: k1.ba, rxKey: k1.ab, epoch: 5 } })
    expect((await completions(a.cq, 5)).every((w) => w.status === 'SUCCESS')).toBe(true)
    expect([...b.buf.subarray(0, 5)]).toEqual([50, 51, 52, 53, 54])
    // The delayed originals arrive after the retransmissions did the job.
    await until(() => fabric.stats.dropped.unknownEpoch >= 5, () => fabric.stats)
    expect(fabric.stats.dropped.unknownEpoch).toBe(5)
  })

  it('a rekey must raise the epoch and cannot turn encryption off or on', async () => {
    const enc = await pair({ encryption: { aTx: randomBytes(32), aRx: randomBytes(32), epoch: 3 } })
    const key = randomBytes(32)
    const attempt = (fn: () => void): string => {
      try {
        fn()
        return 'ok'
      } catch (err) {
        return isRdmaError(err) ? err.code : String(err)
      }
    }
    expect(attempt(() => enc.a.qp.modify({ state: 'RTS', encryption: { suite: 'aes-256-gcm', txKey: key, rxKey: key, epoch: 3 } }))).toBe('ERR_QP_ATTR')
    expect(attempt(() => enc.a.qp.modify({ state: 'RTS', encryption: null }))).toBe('ERR_QP_ATTR')
    const plain = await pair()
    expect(attempt(() => plain.a.qp.modify({ state: 'RTS', encryption: { suite: 'aes-256-gcm', txKey: key, rxKey: key, epoch: 1 } }))).toBe('ERR_QP_ATTR')
    expect(enc.a.qp.snapshot().encryptionEpoch).toBe(3)
  })
})
