/**
 * Encrypted QPs: AEAD per packet with a PSP-like header. Data is byte-exact and
 * never in clear on the wire; a wrong key delivers nothing (counted); a
 * replayed packet is dropped (counted); a rekey mid-transfer loses nothing.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { readPcap } from '../wire/pcap-reader.js'
import { verifyIcrc } from '../../src/wire/icrc.js'
import { connect, openPair, pattern, register, sleep, statusOf, type Pair } from './harness.js'

let pair: Pair | null = null
afterEach(async () => {
  await pair?.close()
  pair = null
})
const dir = mkdtempSync(join(tmpdir(), 'softroce-enc-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const keys = () => ({ keyAB: randomBytes(32), keyBA: randomBytes(32) })

describe('encrypted QPs', () => {
  it('SEND, WRITE, READ and atomics are byte-exact, the payload never appears in clear, every packet has a valid ICRC', async () => {
    const capture = join(dir, 'enc.pcap')
    pair = await openPair({ capture })
    const { qa, qb } = connect(pair, { encryption: keys() })
    expect(qa.query().encrypted).toBe(true)
    const ma = register(pair.a, 65536)
    const mb = register(pair.b, 65536)
    const secret = Buffer.from('TOP-SECRET-PAYLOAD-'.repeat(200))
    ma.bytes.set(secret, 0)
    const recv = qb.recv(mb.slice(0, 8192))
    await qa.send(ma.slice(0, secret.length))
    expect(await recv).toMatchObject({ byteLen: secret.length })
    expect(Buffer.from(mb.bytes.subarray(0, secret.length)).equals(secret)).toBe(true)
    await qa.write(ma.slice(0, secret.length), mb.region(10_000, secret.length))
    expect(Buffer.from(mb.bytes.subarray(10_000, 10_000 + secret.length)).equals(secret)).toBe(true)
    await qa.read(ma.slice(20_000, secret.length), mb.region(10_000, secret.length))
    expect(Buffer.from(ma.bytes.subarray(20_000, 20_000 + secret.length)).equals(secret)).toBe(true)
    await qa.fetchAndAdd(ma.slice(40_000, 8), mb.region(40_000, 8), 3n)
    expect(Buffer.from(mb.bytes.buffer, mb.bytes.byteOffset).readBigUInt64LE(40_000)).toBe(3n)
    await pair.close()
    const file = readFileSync(capture)
    expect(file.includes(Buffer.from('TOP-SECRET')), 'plaintext in the capture').toBe(false)
    const { datagrams } = readPcap(file)
    expect(datagrams.length).toBeGreaterThan(10)
    // Received UDP GSO segments carry IPv4 IDs 1, 2, ...: the capture records the ID the ICRC was made for.
    for (const d of datagrams) expect(verifyIcrc(d.udpPayload, { ...d.ip, df: true })).toBe(true)
    pair = null
  })

  it('a wrong key delivers nothing: decrypt failures are counted and the sender runs out of retries', async () => {
    pair = await openPair()
    const k = keys()
    const { qa, qb } = connect(pair, { encryption: k, retryCnt: 1 })
    // Re-key only B's receive side with an unrelated key: A's packets no longer authenticate.
    qb.modify({ state: 'RTS', encryption: { suite: 'aes-256-gcm', txKey: k.keyBA, rxKey: randomBytes(32), epoch: 0 } })
    const ma = register(pair.a, 64)
    const mb = register(pair.b, 64)
    ma.bytes.fill(7)
    const recv = qb.recv(mb.slice(0, 64))
    expect(await statusOf(qa.send(ma.slice(0, 64)))).toBe('RETRY_EXC_ERR')
    expect(pair.db.counters.drops.decryptFailure).toBeGreaterThanOrEqual(2)
    expect(mb.bytes.every((b) => b === 0), 'nothing delivered').toBe(true)
    let received = false
    void recv.then(() => (received = true), () => undefined)
    await sleep(20)
    expect(received).toBe(false)
  })

  it('replayed packets are dropped and counted; data arrives exactly once', async () => {
    // Every packet A sends goes out twice, byte for byte (same IV): the second copy is a replay.
    pair = await openPair({ impairment: { duplicate: 1 } }, {})
    const { qa, qb } = connect(pair, { encryption: keys() })
    const ma = register(pair.a, 65536)
    const mb = register(pair.b, 65536)
    const data = pattern(30_000, 5)
    ma.bytes.set(data)
    const recv = qb.recv(mb.slice(0, 32_768))
    await qa.send(ma.slice(0, data.length))
    expect(await recv).toMatchObject({ byteLen: data.length })
    await qa.write(ma.slice(0, 1000), mb.region(40_000, 1000))
    expect(Buffer.from(mb.bytes.subarray(0, data.length)).equals(data)).toBe(true)
    expect(pair.db.counters.drops.replay).toBeGreaterThanOrEqual(30)
    expect(pair.db.counters.duplicatesAnswered, 'replays never reach the responder').toBe(0)
  })

  it('rekey (RTS -> RTS with a new epoch) in the middle of a transfer loses nothing', async () => {
    pair = await openPair()
    const k0 = keys()
    const { qa, qb } = connect(pair, { encryption: k0, mtu: 4096, caps: { maxSendWr: 256 } })
    const size = 2 << 20
    const ma = register(pair.a, size)
    const mb = register(pair.b, size)
    const data = pattern(size, 6)
    ma.bytes.set(data)
    const chunk = 64 * 1024
    const ops: Promise<unknown>[] = []
    for (let off = 0; off < size / 2; off += chunk) ops.push(qa.write(ma.slice(off, chunk), mb.region(off, chunk)))
    await sleep(5)
    const k1 = keys()
    qa.modify({ state: 'RTS', encryption: { suite: 'aes-256-gcm', txKey: k1.keyAB, rxKey: k1.keyBA, epoch: 1 } })
    for (let off = size / 2; off < size; off += chunk) ops.push(qa.write(ma.slice(off, chunk), mb.region(off, chunk)))
    await sleep(2)
    qb.modify({ state: 'RTS', encryption: { suite: 'aes-256-gcm', txKey: k1.keyBA, rxKey: k1.keyAB, epoch: 1 } })
    await Promise.all(ops)
    expect(Buffer.from(mb.bytes).equals(data)).toBe(true)
    expect(qa.query().encrypted).toBe(true)
    // After both sides moved on, traffic in both directions uses epoch 1.
    const back = pattern(5000, 8)
    mb.bytes.set(back, 0)
    await qb.write(mb.slice(0, 5000), ma.region(0, 5000))
    expect(Buffer.from(ma.bytes.subarray(0, 5000)).equals(back)).toBe(true)
  })
})
