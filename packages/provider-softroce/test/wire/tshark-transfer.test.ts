/**
 * tshark on a real softroce transfer: two softroce stacks on 127.0.0.1, one capturing
 * (`capture: file.pcap`), run every RC operation (SEND and RDMA WRITE with and without immediate,
 * single- and multi-packet; RDMA READ larger than the MTU; both atomics), an RNR NAK (SEND before
 * the receive is posted) and a remote access error NAK (bad rkey). tshark must decode every BTH
 * opcode 0-20 and both NAK syndromes, with no malformed packet and no expert error; every captured
 * datagram must also pass our ICRC check.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { verifyIcrc } from '../../src/wire/icrc.js'
import { RcOpcode, opcodeInfo } from '../../src/wire/opcodes.js'
import { connect, openPair, pattern, register } from '../rc/harness.js'
import { readPcap } from './pcap-reader.js'
import { one, tshark, tsharkExpert } from './tshark.js'

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tshark-transfer-'))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

/** AETH syndromes: 000xxxxx ACK (credits), 001xxxxx RNR NAK (timer), 011 00010 NAK remote access error. */
const isAck = (s: number): boolean => s >> 5 === 0
const isRnrNak = (s: number): boolean => s >> 5 === 1
const REMOTE_ACCESS_NAK = 0x62

describe('tshark decodes a real softroce transfer', () => {
  it('every opcode, an RNR NAK and a remote access NAK: all 21 BTH opcodes, no malformed packet, no expert error, every ICRC valid', async () => {
    const file = path.join(tmp, 'transfer.pcap')
    const pair = await openPair({ capture: file }, {})
    const { da, db } = pair
    const { qa, qb } = connect(pair, { mtu: 1024, minRnrTimer: 1 })
    const ma = register(pair.a, 65536)
    const mb = register(pair.b, 65536)
    const va = Buffer.from(ma.bytes.buffer, ma.bytes.byteOffset, ma.bytes.length)
    const vb = Buffer.from(mb.bytes.buffer, mb.bytes.byteOffset, mb.bytes.length)
    va.set(pattern(8192, 1), 0)
    vb.set(pattern(8192, 2), 32768)
    const done: string[] = []
    const step = async (name: string, fn: () => Promise<unknown>): Promise<void> => {
      await fn()
      done.push(name)
    }
    try {
      // SEND: ONLY, FIRST/MIDDLE/LAST; with immediate: ONLY_WITH_IMM, LAST_WITH_IMM
      for (const [len, imm] of [[100, undefined], [3000, undefined], [100, 0x11223344], [2500, 0x55667788]] as const) {
        await step(`SEND ${len}${imm === undefined ? '' : ' imm'}`, async () => {
          const got = qb.recv(mb.slice(0, 4096))
          await qa.send(ma.slice(0, len), imm === undefined ? {} : { imm })
          const wc = await got
          expect(wc.byteLen).toBe(len)
          expect(vb.subarray(0, len).equals(va.subarray(0, len))).toBe(true)
        })
      }
      // RDMA WRITE: ONLY, FIRST/MIDDLE/LAST; with immediate (consumes a receive): ONLY_WITH_IMM, LAST_WITH_IMM
      for (const [len, imm] of [[100, undefined], [3000, undefined], [100, 7], [2500, 8]] as const) {
        await step(`RDMA_WRITE ${len}${imm === undefined ? '' : ' imm'}`, async () => {
          const got = imm === undefined ? null : qb.recv(mb.slice(0, 0))
          await qa.write(ma.slice(0, len), mb.region(8192, len), imm === undefined ? {} : { imm })
          if (got !== null) expect((await got).imm).toBe(imm)
          expect(vb.subarray(8192, 8192 + len).equals(va.subarray(0, len))).toBe(true)
        })
      }
      // RDMA READ: RESPONSE_ONLY and a 5000-byte READ (REQUEST, RESPONSE FIRST/MIDDLE/LAST)
      for (const len of [100, 5000]) {
        await step(`RDMA_READ ${len}`, async () => {
          await qa.read(ma.slice(16384, len), mb.region(32768, len))
          expect(va.subarray(16384, 16384 + len).equals(vb.subarray(32768, 32768 + len))).toBe(true)
        })
      }
      // atomics: COMPARE_SWAP, FETCH_ADD -> ATOMIC_ACKNOWLEDGE
      await step('atomics', async () => {
        vb.writeBigUInt64LE(40n, 40960)
        await qa.fetchAndAdd(ma.slice(24576, 8), mb.region(40960, 8), 2n)
        await qa.compareAndSwap(ma.slice(24584, 8), mb.region(40960, 8), 42n, 7n)
        expect([va.readBigUInt64LE(24576), va.readBigUInt64LE(24584), vb.readBigUInt64LE(40960)]).toEqual([40n, 42n, 7n])
      })
      // RNR NAK: the SEND arrives before its receive is posted; retried after the RNR timer
      await step('RNR NAK', async () => {
        const sent = qa.send(ma.slice(0, 64))
        // The receive goes up once B has refused the SEND (a fixed 30 ms could end first on a stalled host: no RNR NAK).
        for (const deadline = performance.now() + 5000; db.counters.rnrNaksSent === 0;) {
          if (performance.now() > deadline) throw new Error(`no RNR NAK within 5 s: B ${JSON.stringify({ rnrNaksSent: db.counters.rnrNaksSent, packetsReceived: db.counters.packetsReceived })}`)
          await new Promise((r) => setTimeout(r, 2))
        }
        await qb.recv(mb.slice(0, 64))
        await sent
        expect(da.counters.rnrNaksReceived).toBeGreaterThan(0)
      })
      // remote access error NAK: a WRITE with a wrong rkey (last: both QPs end in ERR)
      await step('remote access NAK', async () => {
        const region = mb.region(0, 64)
        await expect(qa.write(ma.slice(0, 64), { ...region, rkey: (region.rkey ^ 0x5a5a5a) >>> 0 })).rejects.toMatchObject({ status: 'REM_ACCESS_ERR' })
        expect(db.counters.drops.accessViolation).toBe(1)
      })
    } finally {
      await pair.close()
    }
    expect(done).toHaveLength(13)
    const captured = da.counters.packetsSent + da.counters.packetsReceived

    // our reading of the file: every datagram, every ICRC valid
    const { datagrams } = readPcap(fs.readFileSync(file))
    expect(datagrams).toHaveLength(captured)
    expect(datagrams.filter((d) => !verifyIcrc(d.udpPayload, d.ip)).map((d) => d.udpPayload.subarray(0, 12).toString('hex'))).toEqual([])

    // tshark's: opcodes, NAK syndromes, malformed and expert info per frame, and the expert summary
    const ports = [da.info.port, db.info.port]
    const frames = tshark(file, { ports })
    expect(frames).toHaveLength(captured)
    const opcodes = new Map<number, number>()
    for (const l of frames) {
      const op = Number(one(l, 'infiniband.bth.opcode'))
      opcodes.set(op, (opcodes.get(op) ?? 0) + 1)
    }
    const names = Object.fromEntries([...opcodes].sort((x, y) => x[0] - y[0]).map(([op, n]) => [opcodeInfo(op)?.name ?? `opcode ${op}`, n]))
    console.info(`[softroce] tshark on ${captured} captured packets: ${JSON.stringify(names)}`)
    const expected = Array.from({ length: 21 }, (_, i) => i)
    expect(expected.filter((op) => !opcodes.has(op)).map((op) => opcodeInfo(op)?.name ?? op), 'opcodes tshark never saw').toEqual([])
    expect([...opcodes.keys()].filter((op) => !expected.includes(op)), 'opcodes beyond 0-20').toEqual([])
    const syndromes = frames.filter((l) => one(l, 'infiniband.bth.opcode') === String(RcOpcode.ACKNOWLEDGE)).map((l) => Number(one(l, 'infiniband.aeth.syndrome')))
    expect(syndromes.some(isAck), 'a positive ACK').toBe(true)
    expect(syndromes.filter(isRnrNak).length, 'RNR NAKs').toBeGreaterThan(0)
    expect(syndromes.filter((s) => s === REMOTE_ACCESS_NAK), 'remote access error NAKs').toHaveLength(1)
    const malformed = frames.filter((l) => l['_ws.malformed'] !== undefined).map((l) => one(l, 'frame.number'))
    expect(malformed, 'malformed frames').toEqual([])
    const expert = frames.filter((l) => l['_ws.expert.severity'] !== undefined).map((l) => `frame ${one(l, 'frame.number')}: ${JSON.stringify(l['_ws.expert'])} severity ${JSON.stringify(l['_ws.expert.severity'])}`)
    expect(expert, 'frames with expert info').toEqual([])
    expect(tsharkExpert(file, ports), 'tshark -z expert').toEqual([])
  })
})
