/**
 * The batched socket path on real loopback sockets: sendmmsg with UDP GSO messages out, UDP_GRO
 * aggregates in (split by the helper at their segment size), and the fallbacks when the kernel
 * refuses either or they are switched off.
 */
import { closeSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import type { SoftRoceDevice } from '../../src/index.js'
import { NativeDatagramSocket } from '../../src/socket/native-datagram.js'
import { SendBatch } from '../../src/socket/send-batch.js'
import { BATCH_DISABLE_ENV, GRO_DISABLE_ENV, GSO_DISABLE_ENV, loadSockoptAddon, nativeReceiveOf, type RoceBatchAddon } from '../../src/socket/sockopt-addon.js'
import { verifyIcrc, type IpContext } from '../../src/wire/icrc.js'
import { RcOpcode } from '../../src/wire/opcodes.js'
import { encodePacket } from '../../src/wire/packet.js'
import { packet, sign } from '../fuzz/packet-forge.js'
import { connect, pattern, register } from '../rc/harness.js'
import { sha, trackedCleanup, until, writeExact } from './pair-kit.js'

const nr = nativeReceiveOf(loadSockoptAddon())
if (!nr.ok) throw new Error(`the batched-I/O tests need the native helper: ${nr.why}`)
const addon = nr.addon as typeof nr.addon & RoceBatchAddon

const { defer, openTracked } = trackedCleanup()

/** With the environment switches set for the duration of `fn`. */
async function withEnv<T>(env: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]))
  Object.assign(process.env, env)
  try {
    return await fn()
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}

describe('a device pair on the batched path', () => {
  for (const address of ['127.0.0.1', '::1']) {
    it(`moves 4 MiB byte-exact over ${address} with UDP GSO out and UDP GRO in`, async () => {
      const pair = await openTracked({ address })
      for (const d of [pair.da, pair.db]) expect(d.diagnostics.batchedIo).toEqual({ send: 'gso', receive: 'gro', receiveRuns: true })
      await writeExact(pair, 4 << 20)
      const tx = pair.da.batchedIo!.stats
      const rx = pair.db.batchedIo!.stats
      expect(tx.gsoMessages, 'GSO messages sent').toBeGreaterThan(0)
      // 4 KiB MTU packets: up to 15 in a message, so far fewer system calls than packets.
      expect(tx.gsoSegments / tx.gsoMessages).toBeGreaterThan(2)
      expect(tx.calls).toBeLessThan(pair.da.counters.packetsSent / 2)
      expect(rx.aggregates, 'GRO aggregates read').toBeGreaterThan(0)
      expect(rx.segments).toBeGreaterThan(rx.aggregates)
      expect(pair.db.counters.drops.badIcrc, 'every segment has a valid ICRC').toBe(0)
      if (address === '127.0.0.1') expect(pair.db.counters.ipv4IdSolved, 'IPv4 segments carry the ICRC of IDs 1, 2, ...').toBeGreaterThan(0)
    })
  }

  it('16 MiB WRITE/READ over a link with loss, duplication and reordering is byte-exact on the batched path', async () => {
    const impairment = { loss: 0.01, duplicate: 0.02, reorder: 0.02 }
    const pair = await openTracked({ impairment: { ...impairment, seed: 3 }, windowBytes: 256 * 1024 }, { impairment: { ...impairment, seed: 4 }, windowBytes: 256 * 1024 })
    const { qa } = connect(pair, { mtu: 4096 })
    const size = 8 << 20
    const ma = register(pair.a, 2 * size)
    const mb = register(pair.b, 2 * size)
    const w = pattern(size, 41)
    const r = pattern(size, 42)
    ma.bytes.set(w, 0)
    mb.bytes.set(r, size)
    await Promise.all([
      qa.write(ma.slice(0, size), mb.region(0, size)),
      qa.read(ma.slice(size, size), mb.region(size, size)),
    ])
    expect(sha(mb.bytes.subarray(0, size))).toBe(sha(w))
    expect(sha(ma.bytes.subarray(size))).toBe(sha(r))
    const imp = pair.da.impairment.stats
    const impB = pair.db.impairment.stats
    expect(imp.lost + impB.lost).toBeGreaterThan(0)
    expect(imp.duplicated + impB.duplicated).toBeGreaterThan(0)
    expect(imp.reordered + impB.reordered).toBeGreaterThan(0)
    expect(pair.da.batchedIo!.stats.gsoSegments + pair.db.batchedIo!.stats.gsoSegments).toBeGreaterThan(0)
    expect(pair.db.batchedIo!.stats.aggregates + pair.da.batchedIo!.stats.aggregates).toBeGreaterThan(0)
    expect(pair.da.counters.drops.badIcrc + pair.db.counters.drops.badIcrc).toBe(0)
  }, 60_000)
})

/** A receiving NativeDatagramSocket on 127.0.0.1 that keeps copies of what it reads. */
function receiver(a: typeof addon = addon) {
  const fd = addon.createUdpSocket({ family: 4, address: '127.0.0.1', port: 0 })
  const sock = new NativeDatagramSocket(a, fd, 4)
  const got: Buffer[] = []
  const errors: number[] = []
  sock.start({ onDatagram: (d) => got.push(Buffer.from(d)), onReceiveError: (e) => errors.push(e), onOversized: (n) => errors.push(-n), onSendError: (e) => errors.push(e) })
  defer(() => sock.close())
  return { sock, got, errors }
}

function sender(): { fd: number; to: (port: number) => Buffer } {
  const fd = addon.createUdpSocket({ family: 4, address: '127.0.0.1', port: 0 })
  defer(() => closeSync(fd))
  return { fd, to: (port) => addon.makeSockaddr(4, '127.0.0.1', port) }
}

describe('UDP GRO aggregates', () => {
  it('are split at every segment boundary, a short last segment included', async () => {
    const rx = receiver()
    expect(rx.sock.batchedIo.receive).toBe('gro')
    const tx = sender()
    const to = tx.to(rx.sock.port)
    const cases: { seg: number; n: number; last: number }[] = []
    for (const seg of [16, 288, 1052, 4128]) {
      const max = Math.min(64, Math.floor(65000 / seg))
      for (const n of [2, 3, max]) for (const last of [seg, seg - 1, 1]) cases.push({ seg, n, last })
    }
    let sent = 0
    const want: Buffer[] = []
    for (const c of cases) {
      // n - 1 full segments and a last one of `last` bytes, each byte naming its case and segment
      const pieces: Buffer[] = []
      for (let k = 0; k < c.n; k++) {
        const len = k === c.n - 1 ? c.last : c.seg
        const b = Buffer.alloc(len)
        for (let i = 0; i < len; i++) b[i] = (cases.indexOf(c) * 7 + k * 13 + i) & 0xff
        pieces.push(b)
        want.push(b)
      }
      const r = addon.sendBatch(tx.fd, pieces, 0, Int32Array.of(c.n), Int32Array.of(c.seg), 0, 1, to, -1, -1)
      expect(r, `GSO send of ${c.n} x ${c.seg} (last ${c.last})`).toBe(1)
      sent += c.n
      await until(`the ${sent} datagrams`, () => rx.got.length >= sent)
    }
    expect(rx.got.length).toBe(want.length)
    for (let i = 0; i < want.length; i++) expect(rx.got[i]!.equals(want[i]!), `datagram ${i}`).toBe(true)
    const stats = rx.sock.batchedIoStats
    expect(stats.aggregates, 'every message arrived as one aggregate').toBe(cases.length)
    expect(stats.segments).toBe(want.length)
    expect(rx.errors).toEqual([])
  })

  it('an aggregate with more segments than the meta array holds reaches JavaScript in several callbacks, complete and in order', async () => {
    const fd = addon.createUdpSocket({ family: 4, address: '127.0.0.1', port: 0 })
    const port = addon.socketAddress(fd).port
    expect(addon.udpOffload(fd, true)).toEqual({ segment: 0, gro: 0 })
    const slab = Buffer.alloc(4 * 65536)
    const meta = new Int32Array(10 * 8) // 10 datagrams per callback
    const got: number[] = []
    const sizes: number[] = []
    let closed = false
    const handle = addon.openReceiver(fd, slab, meta, 65536, (n) => {
      sizes.push(n)
      for (let i = 0; i < n; i++) got.push(slab[meta[i * 8 + 7]!]!)
    }, () => {}, () => {
      closed = true
    }, true)
    defer(async () => {
      addon.closeReceiver(handle)
      await until('the receiver closed', () => closed)
    })
    const tx = sender()
    // 3 messages of 64 16-byte segments, each segment's bytes = its number
    const pieces = Array.from({ length: 64 }, (_, i) => Buffer.alloc(16, i))
    for (let k = 0; k < 3; k++) expect(addon.sendBatch(tx.fd, pieces, 0, Int32Array.of(64), Int32Array.of(16), 0, 1, tx.to(port), -1, -1)).toBe(1)
    await until('192 segments', () => got.length >= 192)
    expect(got).toEqual([0, 1, 2].flatMap(() => Array.from({ length: 64 }, (_, i) => i)))
    expect(Math.max(...sizes)).toBe(10)
    expect(addon.receiverStats(handle)).toMatchObject({ aggregates: 3, segments: 192 })
  })

  it('a segment with a bad ICRC in an aggregate to two QPs is dropped and counted; the others are handled', async () => {
    const pair = await openTracked()
    const q1 = connect(pair, { addressOnly: true, mtu: 1024 })
    const q2 = connect(pair, { addressOnly: true, mtu: 1024 })
    const mb = register(pair.b, 64 * 1024)
    const tx = sender()
    const srcPort = addon.socketAddress(tx.fd).port
    const ip: IpContext = { family: 4, src: '127.0.0.1', dst: '127.0.0.1', srcPort, dstPort: pair.db.info.port, ipId: 0, df: true }
    const payload = (k: number): Buffer => Buffer.alloc(256, k + 1)
    const segments: Buffer[] = []
    const psn = [q1.qa.localPsn, q2.qa.localPsn]
    const BAD = 3
    for (let k = 0; k < 8; k++) {
      const which = k % 2
      const qb = which === 0 ? q1.qb : q2.qb
      const p = packet(RcOpcode.RDMA_WRITE_ONLY, qb.qpn, k === BAD ? 0 : psn[which]!++, { reth: { va: BigInt(mb.region(k * 256).addr), rkey: mb.rkey, dmaLength: 256 }, payload: payload(k) }, true)
      const d = sign(encodePacket(p), ip)
      if (k === BAD) d.writeUInt8(d.readUInt8(d.length - 1) ^ 0x5a, d.length - 1)
      segments.push(d)
    }
    expect(new Set(segments.map((s) => s.length)).size).toBe(1)
    const before = pair.db.batchedIo!.stats.aggregates
    expect(addon.sendBatch(tx.fd, segments, 0, Int32Array.of(8), Int32Array.of(segments[0]!.length), 0, 1, tx.to(pair.db.info.port), -1, -1)).toBe(1)
    await until('the 8 segments', () => pair.db.counters.packetsReceived >= 8)
    expect(pair.db.batchedIo!.stats.aggregates - before).toBe(1)
    expect(pair.db.counters.drops.badIcrc).toBe(1)
    for (let k = 0; k < 8; k++) {
      const want = k === BAD ? Buffer.alloc(256) : payload(k)
      expect(Buffer.from(mb.bytes.subarray(k * 256, (k + 1) * 256)).equals(want), `segment ${k}`).toBe(true)
    }
    expect(verifyIcrc(segments[0]!, ip)).toBe(true)
  })
})

describe('fallbacks', () => {
  it('with GSO and GRO switched off, batches go out as sendmmsg of single datagrams and arrive byte-exact', async () => {
    await withEnv({ [GSO_DISABLE_ENV]: 'off', [GRO_DISABLE_ENV]: 'off' }, async () => {
      const pair = await openTracked()
      expect(pair.da.diagnostics.batchedIo).toMatchObject({ send: 'sendmmsg', receive: 'recvmmsg', sendReason: expect.stringContaining(GSO_DISABLE_ENV), receiveReason: expect.stringContaining(GRO_DISABLE_ENV) })
      await writeExact(pair, 2 << 20)
      const s = pair.da.batchedIo!.stats
      expect(s.gsoMessages).toBe(0)
      expect(s.batched).toBeGreaterThan(0)
      expect(pair.db.batchedIo!.stats.aggregates).toBe(0)
    })
  })

  it('with batching switched off, every datagram is its own sendmsg', async () => {
    await withEnv({ [BATCH_DISABLE_ENV]: 'off' }, async () => {
      const pair = await openTracked()
      expect(pair.da.diagnostics.batchedIo).toMatchObject({ send: 'sendmsg', receive: 'recvmmsg', sendReason: expect.stringContaining(BATCH_DISABLE_ENV) })
      await writeExact(pair, 1 << 20)
      expect(pair.da.batchedIo!.stats.calls).toBe(0)
    })
  })

  it('when the kernel refuses UDP_SEGMENT and UDP_GRO at open, or a GSO send later, it says so and carries on byte-exact', async () => {
    const calls: number[] = []
    // The kernel's answers at the system-call boundary: ENOPROTOOPT to both options...
    const refusing = { ...addon, udpOffload: () => ({ segment: 92, gro: 92 }) }
    const r1 = receiver(refusing)
    expect(r1.sock.batchedIo).toEqual({ send: 'sendmmsg', receive: 'recvmmsg', receiveRuns: true, sendReason: 'the kernel refused UDP_SEGMENT (ENOPROTOOPT)', receiveReason: 'the kernel refused UDP_GRO (ENOPROTOOPT)' })
    // ... or EINVAL to a GSO send (as for a socket with UDP checksums off).
    const failing = {
      ...addon,
      sendBatch: (...a: Parameters<RoceBatchAddon['sendBatch']>) => {
        const [, , , , segs, first] = a
        calls.push(segs[first]!)
        return segs[first]! > 0 ? -22 : addon.sendBatch(...a)
      },
    }
    const rx = receiver()
    const fd = addon.createUdpSocket({ family: 4, address: '127.0.0.1', port: 0 })
    const tx = new NativeDatagramSocket(failing, fd, 4)
    tx.start({ onDatagram: () => {}, onReceiveError: () => {}, onOversized: () => {}, onSendError: (e) => calls.push(-e) })
    defer(() => tx.close())
    expect(tx.batchedIo.send).toBe('gso')
    const target = tx.sender.target('127.0.0.1', rx.sock.port, 0, 0)
    const want = Array.from({ length: 40 }, (_, i) => Buffer.alloc(1000, i))
    for (const d of want) tx.send(d, target, d.length)
    await until('40 datagrams', () => rx.got.length >= 40)
    expect(rx.got.map((b) => b[0])).toEqual(want.map((b) => b[0]))
    expect(tx.batchedIo).toMatchObject({ send: 'sendmmsg', sendReason: 'the kernel refused a UDP GSO send (EINVAL)' })
    expect(calls.filter((c) => c < 0), 'no datagram dropped').toEqual([])
    // Later batches do not try GSO again.
    const n = calls.length
    for (const d of want) tx.send(d, target, d.length)
    await until('80 datagrams', () => rx.got.length >= 80)
    expect(calls.slice(n).every((s) => s === 0)).toBe(true)
  })
})

describe('IPv4 ICRCs of GSO segments', () => {
  it('segment k carries the ICRC for IPv4 ID k, and the held buffers get their ID-0 ICRC back after the send', async () => {
    const rx = receiver()
    const fd = addon.createUdpSocket({ family: 4, address: '127.0.0.1', port: 0 })
    const tx = new NativeDatagramSocket(addon, fd, 4)
    tx.start({ onDatagram: () => {}, onReceiveError: () => {}, onOversized: () => {}, onSendError: () => {} })
    defer(() => tx.close())
    const ip: IpContext = { family: 4, src: '127.0.0.1', dst: '127.0.0.1', srcPort: tx.port, dstPort: rx.sock.port, ipId: 0, df: true }
    const bodies = Array.from({ length: 10 }, (_, k) => sign(encodePacket(packet(RcOpcode.SEND_ONLY, 0x123, k, { payload: Buffer.alloc(k === 9 ? 100 : 500, k) })), ip))
    const originals = bodies.map((b) => Buffer.from(b))
    // the same buffer twice in one batch (a duplicate) gets an ICRC of its own
    const batch = [...bodies.slice(0, 5), bodies[4]!, ...bodies.slice(5)]
    const target = tx.sender.target('127.0.0.1', rx.sock.port, 0, 0)
    for (const b of batch) tx.send(b, target, b.length)
    await until('11 datagrams', () => rx.got.length >= 11)
    // the first of the run went alone (ID 0), the other 10 as one GSO message (IDs 0..9)
    expect(tx.batchedIoStats).toMatchObject({ single: 1, gsoMessages: 1, gsoSegments: 10 })
    rx.got.forEach((d, k) => {
      const id = Math.max(0, k - 1)
      expect(verifyIcrc(d, { ...ip, ipId: id }), `datagram ${k} has the ICRC of ID ${id}`).toBe(true)
    })
    bodies.forEach((b, k) => expect(b.equals(originals[k]!), `buffer ${k} restored`).toBe(true))
  })
})

describe('SendBatch against a scripted sendmmsg', () => {
  const ip: IpContext = { family: 4, src: '127.0.0.1', dst: '127.0.0.1', srcPort: 1000, dstPort: 2000, ipId: 0, df: true }
  const target = { sockaddr: Buffer.alloc(16), tos: -1, hopLimit: -1, address: '127.0.0.1', port: 2000 }
  const datagram = (psn: number, bytes: number): Buffer => sign(encodePacket(packet(RcOpcode.SEND_ONLY, 0x42, psn, { payload: Buffer.alloc(bytes, psn) })), ip)

  function scripted(answers: number[]) {
    const seen: { segs: number[]; ids: number[] }[] = []
    const fake: RoceBatchAddon = {
      sendBatch: (_fd, pieces, pieceStart, counts, segs, first, end) => {
        // record, per message, the IPv4 ID each datagram's ICRC was made for at send time
        let p = pieceStart
        const call = { segs: [] as number[], ids: [] as number[] }
        for (let m = first; m < end; m++) {
          call.segs.push(segs[m]!)
          for (let k = 0; k < counts[m]!; k++, p++) {
            const d = pieces[p]!
            let id = -1
            for (let c = 0; c < 70 && id < 0; c++) if (verifyIcrc(d, { ...ip, ipId: c })) id = c
            call.ids.push(id)
          }
        }
        seen.push(call)
        const a = answers.shift()
        return a === undefined ? end - first : a
      },
      udpOffload: () => ({ segment: 0, gro: 0 }),
      receiverStats: () => ({ reads: 0, datagrams: 0, aggregates: 0, segments: 0 }),
    }
    const out = { blocked: [] as Buffer[], errors: [] as [number, number][], single: [] as Uint8Array[] }
    const batch = new SendBatch(fake, 7, 4, true, {
      sendOne: (d) => {
        out.single.push(d instanceof Uint8Array ? d : Buffer.concat(d as Uint8Array[]))
        return 0
      },
      blocked: (ds) => out.blocked.push(...ds.map((d) => d.data)),
      sendError: (e, n) => out.errors.push([e, n]),
      gsoRefused: () => {},
    })
    return { batch, seen, out }
  }

  it('a full kernel queue mid-batch: what was not taken waits in order, with its ID-0 ICRC back', () => {
    // two GSO messages: 4 x 600-byte SENDs with a short last one of 100, then 3 x 600; the kernel takes the first, then EAGAIN
    const ds = [...[1, 2, 3, 4].map((k) => datagram(k, 600)), datagram(5, 100), ...[6, 7, 8].map((k) => datagram(k, 600))]
    const { batch, seen, out } = scripted([1, -11])
    const lead = datagram(0, 10)
    batch.push(lead, lead.length, target)
    for (const d of ds) batch.push(d, d.length, target)
    expect(out.single, 'the first of the run went at once').toEqual([lead])
    batch.flush()
    expect(seen[0]!.segs).toEqual([ds[0]!.length, ds[5]!.length])
    expect(seen[0]!.ids).toEqual([0, 1, 2, 3, 4, 0, 1, 2])
    expect(out.blocked.map((b) => b.readUInt32BE(8) & 0xffffff)).toEqual([6, 7, 8])
    for (const b of out.blocked) expect(verifyIcrc(b, ip), 'queued copies verify with ID 0').toBe(true)
    for (const d of ds) expect(verifyIcrc(d, ip), 'every held buffer is back to its ID-0 ICRC').toBe(true)
    expect(batch.stats).toMatchObject({ gsoMessages: 1, gsoSegments: 5, batched: 5 })
  })

  it('sendHeld (before a run the helper sends) sends what is held and keeps holding what comes after', () => {
    const { batch, seen, out } = scripted([])
    const lead = datagram(0, 10)
    batch.push(lead, lead.length, target)
    const ds = [1, 2, 3].map((k) => datagram(k, 600))
    for (const d of ds) batch.push(d, d.length, target)
    batch.sendHeld()
    expect(seen.length, 'one sendmmsg of the held datagrams').toBe(1)
    expect(batch.held).toBe(0)
    const after = datagram(4, 600)
    batch.push(after, after.length, target)
    expect(out.single, 'only the first of the round went alone').toEqual([lead])
    expect(batch.held, 'the datagram after the run waits for the round to end').toBe(1)
    batch.flush()
    expect(batch.held).toBe(0)
    expect(out.single.length + batch.stats.batched).toBe(5)
  })

  it('another send error drops the datagrams of that message, counted, and the batch goes on', () => {
    const ds = [datagram(1, 600), datagram(2, 600), datagram(3, 100), datagram(4, 100)]
    const { batch, out, seen } = scripted([-105])
    batch.push(ds[0]!, 10, target) // the first of the run goes at once
    for (const d of ds) batch.push(d, d.length, target)
    batch.flush()
    expect(out.errors).toEqual([[105, 3]])
    expect(seen[1]!.segs).toEqual([0])
    expect(batch.stats.batched).toBe(1)
  })

  it('the first datagram of a run goes out at once with one sendmsg, so does a lone one held after it', async () => {
    const { batch, out, seen } = scripted([])
    const d = datagram(9, 10)
    batch.push(d, d.length, target)
    expect(out.single, 'sent before the run ends').toEqual([d])
    const e = datagram(10, 10)
    batch.push(e, e.length, target)
    expect(out.single).toEqual([d])
    await Promise.resolve()
    expect(out.single, 'the held one at the end of the run').toEqual([d, e])
    expect(seen).toEqual([])
    const f = datagram(11, 10)
    batch.push(f, f.length, target)
    expect(out.single, 'a new run starts with a datagram sent at once').toEqual([d, e, f])
  })
})

describe('a GSO send refused because its datagrams do not fit the route', () => {
  it('keeps GSO on when the datagrams fail on their own too (EMSGSIZE), and drops them counted', () => {
    const target = { sockaddr: Buffer.alloc(16), tos: -1, hopLimit: -1, address: '127.0.0.1', port: 2000 }
    let gsoCalls = 0
    const fake: RoceBatchAddon = {
      sendBatch: (_fd, _p, _ps, _c, segs, first) => {
        if (segs[first]! > 0) gsoCalls++
        return segs[first]! > 0 ? -22 : 1
      },
      udpOffload: () => ({ segment: 0, gro: 0 }),
      receiverStats: () => ({ reads: 0, datagrams: 0, aggregates: 0, segments: 0 }),
    }
    const errors: number[] = []
    let refused = 0
    const batch = new SendBatch(fake, 7, 6, true, {
      sendOne: () => -90, // EMSGSIZE: larger than the route's MTU
      blocked: () => {},
      sendError: (e, n) => errors.push(...Array.from({ length: n }, () => e)),
      gsoRefused: () => refused++,
    })
    for (let round = 0; round < 2; round++) {
      for (let k = 0; k < 5; k++) batch.push(Buffer.alloc(9000), 9000, target)
      batch.flush()
    }
    expect(refused, 'GSO not switched off').toBe(0)
    expect(batch.gso).toBe(true)
    expect(gsoCalls).toBe(2)
    expect(errors).toEqual(Array.from({ length: 10 }, () => 90))
  })
})
