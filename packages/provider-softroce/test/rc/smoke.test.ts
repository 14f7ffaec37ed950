import { afterEach, describe, expect, it } from 'vitest'
import { connect, openPair, pattern, register, type Pair } from './harness.js'

let pair: Pair | null = null
afterEach(async () => {
  await pair?.close()
  pair = null
})

describe('smoke', () => {
  it('SEND, WRITE, READ, atomics between two devices', async () => {
    pair = await openPair()
    const { qa, qb } = connect(pair)
    const ma = register(pair.a, 65536)
    const mb = register(pair.b, 65536)
    const data = pattern(3000, 1)
    ma.bytes.set(data, 0)
    const recv = qb.recv(mb.slice(0, 4096))
    await qa.send(ma.slice(0, 3000))
    expect((await recv).byteLen).toBe(3000)
    expect(Buffer.from(mb.bytes.subarray(0, 3000)).equals(data)).toBe(true)
    const w = pattern(10000, 2)
    ma.bytes.set(w, 10000)
    await qa.write(ma.slice(10000, 10000), mb.region(20000, 10000))
    expect(Buffer.from(mb.bytes.subarray(20000, 30000)).equals(w)).toBe(true)
    await qa.read(ma.slice(40000, 10000), mb.region(20000, 10000))
    expect(Buffer.from(ma.bytes.subarray(40000, 50000)).equals(w)).toBe(true)
    await qa.fetchAndAdd(ma.slice(0, 8), mb.region(60000, 8), 5n)
    await qa.compareAndSwap(ma.slice(8, 8), mb.region(60000, 8), 5n, 9n)
    expect(Buffer.from(mb.bytes).readBigUInt64LE(60000)).toBe(9n)
    expect(Buffer.from(ma.bytes).readBigUInt64LE(8)).toBe(5n)
    await qa.close()
    await qb.close()
  })
})
