/**
 * Runs framed by the helper (native/roce_run.c, socket/send-run.ts): the same packets as the
 * JavaScript path (packet-framing.ts frameOutgoing, with the IPv4 ID patch send-batch.ts applies
 * to GSO segments), byte for byte, framed in memory and sent on real loopback sockets; and a
 * device pair that moves WRITEs and SENDs through runs byte-exact.
 */
import { createSocket, type Socket } from 'node:dgram'
import { closeSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { frameOutgoing, contiguous, SendSlab } from '../../src/rc/packet-framing.js'
import { newPacket } from '../../src/rc/packet-template.js'
import { frameRun, runCrc, type PacketRun } from '../../src/socket/send-run.js'
import { loadSockoptAddon, nativeReceiveOf, runOf, RUN_DISABLE_ENV } from '../../src/socket/sockopt-addon.js'
import { ipv4IdIcrcDelta, patchIcrc, solveIpv4Id, verifyIcrc, type IpContext } from '../../src/wire/icrc.js'
import { HeaderSize, OPCODE_TABLE, RcOpcode } from '../../src/wire/opcodes.js'
import { encodePacketInto, type RocePacket } from '../../src/wire/packet.js'
import { connect, pattern, register, type Pair } from '../rc/harness.js'
import { sha, trackedCleanup, until, writeExact } from './pair-kit.js'

const loaded = loadSockoptAddon()
if (!loaded.loaded) throw new Error(`the run tests need the native helper: ${loaded.why}`)
const runs = runOf(loaded.addon as object)
if (runs === null) throw new Error('the native helper has no frameRun/sendRun: rebuild it (pnpm --filter @rdma-session/provider-softroce build:native)')
const nr = nativeReceiveOf(loaded)
if (!nr.ok) throw new Error(nr.why)
const addon = nr.addon

const { defer, openTracked } = trackedCleanup()

function middle(opcode: number, psn: number, destQpn: number, fecn = false): RocePacket {
  const pkt = newPacket()
  pkt.bth.opcode = opcode
  pkt.bth.psn = psn
  pkt.bth.destQpn = destQpn
  pkt.bth.fecn = fecn
  return pkt
}

/** The run's first header, as the device encodes it (AckReq clear: the flags set it per packet). */
function header(opcode: number, psn: number, destQpn: number, fecn = false): Uint8Array {
  const pkt = middle(opcode, psn, destQpn, fecn)
  const out = new Uint8Array(OPCODE_TABLE[opcode]!.headerLength)
  encodePacketInto(pkt, out, 0)
  return out
}

/** The run's packets as the JavaScript path frames them, packet j of each GSO message with the ICRC for IPv4 ID j. */
function framedInJs(run: PacketRun, opcode: number, psn: number, destQpn: number, fecn = false): Buffer[] {
  const slab = new SendSlab()
  const { segsPerMsg } = runCrc(run)
  const out: Buffer[] = []
  for (let k = 0; k < run.count; k++) {
    const pkt = middle(opcode, (psn + k) & 0xffffff, destQpn, fecn)
    pkt.bth.ackReq = run.ackReq[k] === 1
    const view = run.payload.subarray(k * run.seg, (k + 1) * run.seg)
    const d = frameOutgoing(slab, pkt, [view], run.seg, null, run.ip)!
    const bytes = Buffer.from(contiguous(d))
    const id = k % segsPerMsg
    if (run.ip.family === 4 && id > 0) patchIcrc(bytes, ipv4IdIcrcDelta(run.ip, bytes.length, id))
    out.push(bytes)
  }
  return out
}

const V4: IpContext = { family: 4, src: '127.0.0.1', dst: '127.0.0.1', srcPort: 4791, dstPort: 4791, ipId: 0, df: true }
const V6: IpContext = { family: 6, src: '::1', dst: '::1', srcPort: 4791, dstPort: 4791 }

function flags(count: number, seed: number): Uint8Array {
  const f = new Uint8Array(count)
  for (let k = 0; k < count; k++) f[k] = (k * 7 + seed) % 5 === 0 ? 1 : 0
  return f
}

describe('frameRun: the same bytes as the JavaScript framing', () => {
  for (const ip of [V4, V6]) {
    for (const [seg, counts] of [[4096, [1, 2, 15, 16, 31, 32]], [1024, [2, 60, 63, 64, 65, 200]], [256, [3, 64, 256]]] as const) {
      it(`IPv${ip.family}, ${seg}-byte payloads, runs of ${counts.join('/')} packets (PSN wrap, AckReq pattern, WRITE and SEND middles)`, () => {
        for (const count of counts) {
          for (const [opcode, psn, fecn] of [[RcOpcode.RDMA_WRITE_MIDDLE, 0xfffff0, false], [RcOpcode.SEND_MIDDLE, 12345, true]] as const) {
            const payload = pattern(seg * count + 8, count)
            const run: PacketRun = { header: header(opcode, psn, 0x1234ab, fecn), payload: payload.subarray(4, 4 + seg * count), seg, count, ackReq: flags(count, count), ip }
            const want = framedInJs(run, opcode, psn, 0x1234ab, fecn)
            const got = frameRun(runs, run)
            const plen = HeaderSize.BTH + seg + HeaderSize.ICRC
            expect(got.length).toBe(plen * count)
            for (let k = 0; k < count; k++) {
              const pkt = got.subarray(k * plen, (k + 1) * plen)
              expect(pkt.equals(want[k]!), `packet ${k} of ${count}`).toBe(true)
              // The ICRC is right for its IPv4 ID (its place in its GSO message).
              if (ip.family === 6) expect(verifyIcrc(pkt, ip)).toBe(true)
              else expect(verifyIcrc(pkt, { ...ip, ipId: k % runCrc(run).segsPerMsg })).toBe(true)
            }
          }
        }
      })
    }
  }

  it('refuses bad arguments with TypeErrors naming them', () => {
    const h = header(RcOpcode.RDMA_WRITE_MIDDLE, 1, 2)
    const p = new Uint8Array(4096 * 2)
    const f = new Uint8Array(2)
    const out = new Uint8Array(2 * 4112)
    expect(() => runs.frameRun(out, h, p, 4096, 3, new Uint8Array(3), 0, null, 15)).toThrow(/payload holds fewer/)
    expect(() => runs.frameRun(out, h, p, 4094, 2, f, 0, null, 15)).toThrow(/seg must be a multiple of 4/)
    expect(() => runs.frameRun(out, h, p, 4096, 2, new Uint8Array(1), 0, null, 15)).toThrow(/ackReq/)
    expect(() => runs.frameRun(out, h, p, 4096, 2, f, 0, null, 16)).toThrow(/segsPerMsg/)
    expect(() => runs.frameRun(out, new Uint8Array(4), p, 4096, 2, f, 0, null, 15)).toThrow(/header/)
    expect(() => runs.frameRun(new Uint8Array(10), h, p, 4096, 2, f, 0, null, 15)).toThrow(/out is too small/)
    expect(() => runs.frameRun(out, h, p, 4096, 2, f, 0, new Uint32Array(3), 15)).toThrow(/idBasis/)
    const fd = addon.createUdpSocket({ family: 4, address: '127.0.0.1', port: 0 })
    try {
      const sa6 = addon.makeSockaddr(6, '::1', 4791)
      expect(() => runs.sendRun(fd, h, p, 4096, 2, f, 0, null, 15, addon.makeSockaddr(4, '127.0.0.1', 4791), -1, -1)).toThrow(/idBasis/)
      expect(() => runs.sendRun(fd, h, p, 4096, 2, f, 0, null, 15, Buffer.alloc(3), -1, -1)).toThrow(/sockaddr/)
      expect(runs.sendRun(fd, h, p, 4096, 2, f, 0, null, 15, sa6, -1, -1)).toBeLessThan(0) // an IPv6 address from an IPv4 socket: -errno, not a throw
    } finally {
      closeSync(fd)
    }
  })
})

/** A plain dgram socket that keeps what it reads. */
async function collector(family: 4 | 6): Promise<{ socket: Socket; got: Buffer[]; port: number }> {
  const socket = createSocket({ type: family === 4 ? 'udp4' : 'udp6' })
  const got: Buffer[] = []
  socket.on('message', (m) => got.push(m))
  await new Promise<void>((resolve) => socket.bind(0, family === 4 ? '127.0.0.1' : '::1', resolve))
  defer(() => new Promise<void>((r) => socket.close(() => r())))
  return { socket, got, port: socket.address().port }
}

describe('sendRun on loopback: the datagrams are the JavaScript-framed packets', () => {
  for (const family of [4, 6] as const) {
    it(`IPv${family}: 40 packets of 4 KiB in GSO messages of 15`, async () => {
      const rx = await collector(family)
      const address = family === 4 ? '127.0.0.1' : '::1'
      const fd = addon.createUdpSocket({ family, address, port: 0 })
      defer(() => closeSync(fd))
      const srcPort = addon.socketAddress(fd).port
      const ip: IpContext = family === 4 ? { ...V4, srcPort, dstPort: rx.port } : { ...V6, srcPort, dstPort: rx.port }
      const count = 40
      const seg = 4096
      const run: PacketRun = { header: header(RcOpcode.RDMA_WRITE_MIDDLE, 0xffffe0, 77), payload: pattern(seg * count, 9), seg, count, ackReq: flags(count, 1), ip }
      const c = runCrc(run)
      expect(c.segsPerMsg).toBe(15)
      const sent = runs.sendRun(fd, run.header, run.payload, seg, count, run.ackReq, c.crcStart, c.idBasis, c.segsPerMsg, addon.makeSockaddr(family, address, rx.port), -1, -1)
      expect(sent).toBe(count)
      await until('40 datagrams', () => rx.got.length >= count)
      const want = framedInJs(run, RcOpcode.RDMA_WRITE_MIDDLE, 0xffffe0, 77)
      for (let k = 0; k < count; k++) {
        expect(rx.got[k]!.equals(want[k]!), `datagram ${k}`).toBe(true)
        if (family === 4) expect(solveIpv4Id(rx.got[k]!, ip), `datagram ${k}'s ICRC is for IPv4 ID ${k % 15}`).toBe(k % 15)
      }
    })
  }
})

describe('a device pair sends the middle packets of its messages as runs', () => {
  for (const address of ['127.0.0.1', '::1']) {
    it(`WRITE and SEND byte-exact over ${address}, MTU 1024 and 4096`, async () => {
      const pair = await openTracked({ address })
      for (const mtu of [1024, 4096] as const) {
        const { qa, qb, ma } = await writeExact(pair, (3 << 20) + 100, mtu, mtu & 0xff)
        const sendSize = 256 * 1024 + 12
        const recv = register(pair.b, sendSize)
        const done = qb.recv(recv.slice(0, sendSize))
        ma.bytes.set(pattern(sendSize, 3), 0)
        await qa.send(ma.slice(0, sendSize))
        await done
        expect(sha(recv.bytes)).toBe(sha(ma.bytes.subarray(0, sendSize)))
      }
      const s = pair.da.batchedIo!.stats
      expect(s.runs, 'runs sent').toBeGreaterThan(0)
      expect(s.runPackets / s.runs, 'packets per run').toBeGreaterThan(2)
      expect(pair.db.counters.drops.badIcrc).toBe(0)
      if (address === '127.0.0.1') expect(pair.db.counters.ipv4IdSolved, 'IPv4 segments of runs carry the ICRC of IDs 1, 2, ...').toBeGreaterThan(0)
    })
  }

  it(`${RUN_DISABLE_ENV}=off sends every packet framed in JavaScript`, async () => {
    process.env[RUN_DISABLE_ENV] = 'off'
    let pair: Pair
    try {
      pair = await openTracked({})
    } finally {
      delete process.env[RUN_DISABLE_ENV]
    }
    const { qa } = connect(pair, { mtu: 4096 })
    const size = 1 << 20
    const ma = register(pair.a, size)
    const mb = register(pair.b, size)
    ma.bytes.set(pattern(size, 5))
    await qa.write(ma.slice(0, size), mb.region(0, size))
    expect(sha(mb.bytes)).toBe(sha(ma.bytes))
    expect(pair.da.batchedIo!.stats.runs).toBe(0)
    expect(pair.da.batchedIo!.stats.gsoSegments).toBeGreaterThan(0)
  })
})
