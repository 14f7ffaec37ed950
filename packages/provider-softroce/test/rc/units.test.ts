/** Unit tests of the small parts: replay window, packet protection, send scheduler weights, MR table, timers. */
import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ReplayWindow } from '../../src/crypto/replay-window.js'
import { PacketProtection, PSP_HEADER_BYTES, TAG_BYTES } from '../../src/crypto/packet-protection.js'
import { SendFlow, SendScheduler } from '../../src/scheduler/send-scheduler.js'
import { MemoryTable } from '../../src/memory/memory-table.js'
import { gatherViews, scatter } from '../../src/memory/scatter-gather.js'

describe('ReplayWindow', () => {
  it('accepts new counters once, rejects repeats and counters older than the window', () => {
    const w = new ReplayWindow(64)
    for (const n of [1, 2, 5, 3]) {
      expect(w.check(n)).toBe(true)
      w.mark(n)
    }
    expect(w.check(2)).toBe(false)
    expect(w.check(4)).toBe(true)
    w.mark(200)
    expect(w.check(136), 'exactly the window size behind').toBe(false)
    expect(w.check(137)).toBe(true)
    expect(w.check(5), 'far behind').toBe(false)
    w.mark(137)
    expect(w.check(137)).toBe(false)
    w.mark(100_000)
    expect(w.check(99_999)).toBe(true)
    expect(w.check(137)).toBe(false)
  })

  it('clamps its size to 64..1024', () => {
    expect(new ReplayWindow(1).size).toBe(64)
    expect(new ReplayWindow(5000).size).toBe(1024)
  })
})

describe('PacketProtection', () => {
  const bth = Buffer.from('0400ffff00abcdef80000010', 'hex')
  const keys = { ab: randomBytes(32), ba: randomBytes(32) }
  const tx = () => new PacketProtection({ suite: 'aes-256-gcm', txKey: keys.ab, rxKey: keys.ba, epoch: 3 }, 64)
  const rx = () => new PacketProtection({ suite: 'aes-256-gcm', txKey: keys.ba, rxKey: keys.ab, epoch: 3 }, 64)
  const datagram = (sealed: Buffer[]): Buffer => Buffer.concat([bth, ...sealed])

  it('seals with the SPI = epoch and a counter IV, opens once, rejects the replay', () => {
    const a = tx()
    const b = rx()
    const sealed = a.seal(bth, [Buffer.from('hello '), Buffer.from('world!!!')])!
    const d = datagram(sealed)
    expect(d.length).toBe(12 + PSP_HEADER_BYTES + 14 + TAG_BYTES)
    expect(d.readUInt32BE(12 + 4), 'SPI').toBe(3)
    expect(d.readUInt32BE(12 + 12), 'counter').toBe(1)
    expect(Buffer.from(b.open(d) as Buffer).toString()).toBe('hello world!!!')
    expect(b.open(d)).toBe('replay')
    const second = datagram(a.seal(bth, [Buffer.from('x')])!)
    expect(second.readUInt32BE(12 + 12)).toBe(2)
    expect(Buffer.from(b.open(second) as Buffer).toString()).toBe('x')
  })

  it('a changed BTH, payload or key fails authentication', () => {
    const a = tx()
    const b = rx()
    const d = datagram(a.seal(bth, [Buffer.from('payload')])!)
    const badBth = Buffer.from(d)
    badBth[11] = badBth[11]! ^ 1
    expect(b.open(badBth)).toBe('decryptFailure')
    const badBody = Buffer.from(d)
    badBody[12 + PSP_HEADER_BYTES] = badBody[12 + PSP_HEADER_BYTES]! ^ 1
    expect(b.open(badBody)).toBe('decryptFailure')
    const ecn = Buffer.from(d)
    ecn[4] = 0xc0
    expect(Buffer.from(b.open(ecn) as Buffer).toString(), 'FECN/BECN (byte 4) are not authenticated').toBe('payload')
    const stranger = new PacketProtection({ suite: 'aes-256-gcm', txKey: keys.ba, rxKey: randomBytes(32), epoch: 3 }, 64)
    expect(stranger.open(datagram(a.seal(bth, [Buffer.from('payload')])!))).toBe('decryptFailure')
  })

  it('rekey: the new epoch is used at once, the previous rx key still opens packets in flight', () => {
    const a = tx()
    const b = rx()
    const old = datagram(a.seal(bth, [Buffer.from('old')])!)
    const k2 = { ab: randomBytes(32), ba: randomBytes(32) }
    a.rekey({ suite: 'aes-256-gcm', txKey: k2.ab, rxKey: k2.ba, epoch: 4 })
    const fresh = datagram(a.seal(bth, [Buffer.from('new')])!)
    expect(fresh.readUInt32BE(16)).toBe(4)
    expect(b.open(fresh), 'epoch 4 before the receiver has it').toBe('decryptFailure')
    b.rekey({ suite: 'aes-256-gcm', txKey: k2.ba, rxKey: k2.ab, epoch: 4 })
    expect(Buffer.from(b.open(fresh) as Buffer).toString()).toBe('new')
    expect(Buffer.from(b.open(old) as Buffer).toString(), 'in-flight packet of epoch 3').toBe('old')
    expect(b.open(old)).toBe('replay')
  })
})

describe('SendScheduler', () => {
  it('shares turns by weight (deficit round robin) and interleaves flows', async () => {
    const s = new SendScheduler()
    const order: string[] = []
    const source = (name: string, left: { n: number }) => ({
      sendNextPacket: () => {
        if (left.n === 0) return 0
        left.n--
        order.push(name)
        return 4096
      },
    })
    const heavy = { n: 400 }
    const light = { n: 400 }
    s.wake(new SendFlow(source('w3', heavy), 3, 0))
    s.wake(new SendFlow(source('w1', light), 1, 0))
    // Wait for all 800 to go out (a fixed 50 ms could end after a few turns on a stalled host).
    const end = performance.now() + 5000
    while (order.length < 800 && performance.now() < end) await new Promise((r) => setTimeout(r, 5))
    expect(order.length, 'every packet went out').toBe(800)
    const first = order.slice(0, 200)
    const w3 = first.filter((x) => x === 'w3').length
    expect(w3 / (200 - w3)).toBeGreaterThan(2.5)
    expect(w3 / (200 - w3)).toBeLessThan(3.5)
    s.close()
  })
})

describe('MemoryTable', () => {
  it('gives unpredictable keys and 4 KiB-aligned random addresses, checks PD, bounds and access', () => {
    const t = new MemoryTable()
    const pd = { id: 1 }
    const other = { id: 2 }
    const a = t.register(pd, new Uint8Array(100), 1 | 2)
    const b = t.register(pd, new Uint8Array(100), 1 | 4)
    expect(a.addr % 4096).toBe(0)
    expect(a.addr).not.toBe(b.addr)
    expect(a.rkey).not.toBe(b.rkey)
    expect(t.remote(pd, a.rkey, a.addr, 100, 2)).not.toBeNull()
    expect(t.remote(pd, a.rkey, a.addr + 1, 100, 2), 'past the end').toBeNull()
    expect(t.remote(pd, a.rkey, a.addr - 1, 10, 2), 'before the start').toBeNull()
    expect(t.remote(pd, a.rkey, a.addr, 10, 4), 'no remote-read').toBeNull()
    expect(t.remote(other, a.rkey, a.addr, 10, 2), 'other PD').toBeNull()
    expect(t.local(pd, b.lkey, b.addr, 10, true)).not.toBeNull()
    a.deregister()
    expect(t.remote(pd, a.rkey, a.addr, 10, 2), 'deregistered').toBeNull()
  })

  it('gathers and scatters across SGE boundaries', () => {
    const x = new Uint8Array(5)
    const y = new Uint8Array(7)
    const sgl = { views: [x, y], length: 12 }
    scatter(sgl, 3, Uint8Array.from([1, 2, 3, 4, 5]))
    expect([...x, ...y]).toEqual([0, 0, 0, 1, 2, 3, 4, 5, 0, 0, 0, 0])
    const out: Uint8Array[] = []
    gatherViews(sgl, 4, 3, out)
    expect(out.map((v) => [...v])).toEqual([[2], [3, 4]])
  })
})
