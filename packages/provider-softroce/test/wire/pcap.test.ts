import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { addressBytes } from '../../src/wire/address.js'
import { WireError, WireErrorCode } from '../../src/wire/errors.js'
import { encodeWithIcrc, verifyIcrc, type IpContext } from '../../src/wire/icrc.js'
import { RcOpcode, opcodeInfo } from '../../src/wire/opcodes.js'
import type { RocePacket } from '../../src/wire/packet.js'
import { LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapWriter } from '../../src/wire/pcap.js'
import { readPcap } from './pcap-reader.js'
import { ALL_OPCODES, Rand, randomPacket } from './random-packets.js'
import { one, tshark } from './tshark.js'

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wire-pcap-'))
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

const V4: IpContext = { family: 4, src: '10.77.0.1', dst: '10.77.0.2', srcPort: 4791, dstPort: 4791, ipId: 0 }
const V6: IpContext = { family: 6, src: 'fd77::1', dst: 'fd77::2', srcPort: 49152, dstPort: 4791, flowLabel: 0x12345, tos: 0x68 }

/** Internet checksum over a byte list: 0 when a header (with its checksum) is valid. */
function onesComplement(bytes: Uint8Array): number {
  let s = 0
  for (let i = 0; i < bytes.length; i += 2) s += ((bytes[i] as number) << 8) | (bytes[i + 1] ?? 0)
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16)
  return ~s & 0xffff
}

function rawRecords(file: Buffer): Buffer[] {
  const out: Buffer[] = []
  for (let o = 24; o + 16 <= file.length; ) {
    const len = file.readUInt32LE(o + 8)
    out.push(file.subarray(o + 16, o + 16 + len))
    o += 16 + len
  }
  return out
}

describe('PcapWriter', () => {
  it('writes a classic pcap with valid IPv4 and IPv6/UDP headers around the datagrams', async () => {
    const f = path.join(tmp, 'basic.pcap')
    const w = PcapWriter.open(f)
    const r = new Rand(11)
    const sent: { u: Buffer; ip: IpContext }[] = []
    for (let i = 0; i < 40; i++) {
      const ip = i % 2 ? V6 : { ...V4, ipId: i * 1000, df: i % 4 !== 0, ttl: 1 + i }
      const u = encodeWithIcrc(randomPacket(r, r.pick(ALL_OPCODES), 300), ip)
      w.write(u, ip, 1_700_000_000_000 + i * 1.5)
      sent.push({ u, ip })
    }
    expect(w.packets).toBe(40)
    await w.close()
    const file = fs.readFileSync(f)
    expect(file.readUInt32LE(0)).toBe(0xa1b2c3d4)
    expect(file.readUInt16LE(4)).toBe(2)
    expect(file.readUInt16LE(6)).toBe(4)
    expect(file.readUInt32LE(20)).toBe(LINKTYPE_RAW)
    const { datagrams } = readPcap(file)
    expect(datagrams).toHaveLength(40)
    const recs = rawRecords(file)
    for (let i = 0; i < 40; i++) {
      const d = datagrams[i]!
      const { u, ip } = sent[i]!
      expect(d.udpPayload.equals(u)).toBe(true)
      expect(verifyIcrc(d.udpPayload, d.ip)).toBe(true)
      expect([d.ip.src, d.ip.dst].map((a) => Buffer.from(addressBytes(ip.family, a)).toString('hex'))).toEqual(
        [ip.src, ip.dst].map((a) => Buffer.from(addressBytes(ip.family, a)).toString('hex')),
      )
      const rec = recs[i]!
      if (ip.family === 4) {
        expect(onesComplement(rec.subarray(0, 20))).toBe(0) // header checksum valid
        expect(d.ip.ipId).toBe(ip.ipId)
        expect(d.ip.df).toBe(ip.df ?? true)
        expect(d.ip.ttl).toBe(ip.ttl)
        expect(rec.readUInt16BE(2)).toBe(rec.length)
        expect(d.udpChecksum).toBe(0)
      } else {
        expect(d.ip.flowLabel).toBe(0x12345)
        expect(d.ip.tos).toBe(0x68)
        expect(rec.readUInt16BE(4)).toBe(rec.length - 40)
        // UDP checksum over pseudo-header + UDP header + payload sums to zero
        const udpLen = rec.length - 40
        const pseudo = Buffer.concat([rec.subarray(8, 40), Buffer.from([0, 0, udpLen >> 8, udpLen & 0xff, 0, 0, 0, 17]), rec.subarray(40)])
        expect(d.udpChecksum).not.toBe(0)
        expect(onesComplement(pseudo)).toBe(0)
      }
    }
    // timestamps: seconds + microseconds
    expect(file.readUInt32LE(24)).toBe(1_700_000_000)
    expect(file.readUInt32LE(28)).toBe(0)
    expect(file.readUInt32LE(24 + 16 + recs[0]!.length + 4)).toBe(1500)
  })

  it('loses nothing across chunk flushes and at close; write after close fails with a code', async () => {
    const f = path.join(tmp, 'many.pcap')
    const w = PcapWriter.open(f)
    const r = new Rand(12)
    const payload = encodeWithIcrc({ ...randomPacket(r, opcodeInfo(RcOpcode.SEND_ONLY)!), payload: r.bytes(4000) }, V4)
    const big = encodeWithIcrc({ ...randomPacket(r, opcodeInfo(RcOpcode.SEND_ONLY)!), payload: r.bytes(65000) }, V4)
    for (let i = 0; i < 300; i++) w.write(i === 150 ? big : payload, { ...V4, ipId: i })
    await w.close()
    await w.close() // twice is fine
    const { datagrams } = readPcap(fs.readFileSync(f))
    expect(datagrams.map((d) => d.ip.ipId)).toEqual(Array.from({ length: 300 }, (_, i) => i))
    expect(datagrams[150]!.udpPayload.equals(big)).toBe(true)
    expect(datagrams[299]!.udpPayload.equals(payload)).toBe(true)
    let err: unknown
    try {
      w.write(payload, V4)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(WireError)
    expect((err as WireError).code).toBe(WireErrorCode.CLOSED)
  })

  it('can write Ethernet frames instead (LINKTYPE_ETHERNET)', async () => {
    const f = path.join(tmp, 'eth.pcap')
    const w = PcapWriter.open(f, { linkType: 'ethernet' })
    const u = encodeWithIcrc(randomPacket(new Rand(2), opcodeInfo(RcOpcode.ACKNOWLEDGE)!), V6)
    w.write(u, V6)
    w.write(u, { ...V4, srcPort: 50000 })
    await w.close()
    const file = fs.readFileSync(f)
    expect(file.readUInt32LE(20)).toBe(LINKTYPE_ETHERNET)
    const { datagrams } = readPcap(file)
    expect(datagrams.map((d) => [d.ip.family, d.udpPayload.equals(u)])).toEqual([[6, true], [4, true]])
    expect(rawRecords(file).map((rec) => rec.readUInt16BE(12))).toEqual([0x86dd, 0x0800])
  })

  it('writes a private file (0600), also over an existing 0644 file, and refuses a symbolic link', async () => {
    const fresh = path.join(tmp, 'private.pcap')
    const old = process.umask(0o022)
    try {
      const w = PcapWriter.open(fresh)
      await w.close()
      expect((fs.statSync(fresh).mode & 0o777).toString(8)).toBe('600')
      const existing = path.join(tmp, 'existing.pcap')
      fs.writeFileSync(existing, 'old', { mode: 0o644 })
      fs.chmodSync(existing, 0o644)
      await PcapWriter.open(existing).close()
      expect((fs.statSync(existing).mode & 0o777).toString(8)).toBe('600')
      const link = path.join(tmp, 'link.pcap')
      const target = path.join(tmp, 'target')
      fs.writeFileSync(target, 'keep')
      fs.symlinkSync(target, link)
      expect(() => PcapWriter.open(link)).toThrow(expect.objectContaining({ code: 'ELOOP' }))
      expect(fs.readFileSync(target, 'utf8')).toBe('keep')
    } finally {
      process.umask(old)
    }
  })

  it('rejects bad header fields with WireError', async () => {
    const w = PcapWriter.open(path.join(tmp, 'bad.pcap'))
    const u = encodeWithIcrc(randomPacket(new Rand(2), opcodeInfo(RcOpcode.ACKNOWLEDGE)!), V4)
    expect(() => w.write(u, { ...V4, ipId: 70000 })).toThrow(WireError)
    expect(() => w.write(u, { ...V6, flowLabel: 1 << 20 })).toThrow(WireError)
    expect(() => w.write(u, { ...V4, src: 'fd77::1' })).toThrow(WireError)
    expect(() => w.write(u, { ...V4, family: 5 as 4 })).toThrow(WireError)
    await w.close()
  })
})

// --- tshark: an independent decoder ---------------------------------------------------------------

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

describe('tshark decodes what we write', () => {
  it('every RC opcode over IPv4 and IPv6 decodes field for field, with no expert info; a malformed control packet is flagged', async () => {
    const f = path.join(tmp, 'all-opcodes.pcap')
    const w = PcapWriter.open(f)
    const r = new Rand(4791)
    const sent: { pkt: RocePacket; ip: IpContext; u: Buffer }[] = []
    for (const ip of [V4, V6]) {
      for (const info of ALL_OPCODES) {
        const pkt = randomPacket(r, info, 61)
        const u = encodeWithIcrc(pkt, ip)
        w.write(u, ip)
        sent.push({ pkt, ip, u })
      }
    }
    // negative control, last: a COMPARE_SWAP cut short inside its AtomicETH
    const cs = encodeWithIcrc(randomPacket(r, opcodeInfo(RcOpcode.COMPARE_SWAP)!), V4)
    w.write(cs.subarray(0, 24), V4)
    await w.close()

    const frames = tshark(f)
    expect(frames).toHaveLength(sent.length + 1)
    const control = frames[sent.length]!
    expect(control['_ws.malformed'], 'tshark must flag the truncated control packet').toBeDefined()

    let icrcSeen = 0
    const problems: string[] = []
    for (let i = 0; i < sent.length; i++) {
      const { pkt, ip, u } = sent[i]!
      const l = frames[i]!
      const b = pkt.bth
      const name = `frame ${i + 1} (${opcodeInfo(b.opcode)!.name}, IPv${ip.family})`
      const want: Record<string, string | undefined> = {
        'infiniband.bth.opcode': String(b.opcode),
        'infiniband.bth.se': b.solicited ? '1' : '0',
        'infiniband.bth.m': b.migReq ? '1' : '0',
        'infiniband.bth.padcnt': String((4 - (pkt.payload.length % 4)) % 4),
        'infiniband.bth.tver': '0',
        'infiniband.bth.p_key': String(b.pkey),
        'infiniband.bth.destqp': `0x${b.destQpn.toString(16).padStart(6, '0')}`,
        'infiniband.bth.a': b.ackReq ? '1' : '0',
        'infiniband.bth.psn': String(b.psn),
      }
      const va = pkt.reth?.va ?? pkt.atomicEth?.va
      if (va !== undefined) want['infiniband.reth.va'] = `0x${va.toString(16).padStart(16, '0')}`
      const rkey = pkt.reth?.rkey ?? pkt.atomicEth?.rkey
      if (rkey !== undefined) want['infiniband.reth.r_key'] = `0x${rkey.toString(16).padStart(8, '0')}`
      if (pkt.reth) want['infiniband.reth.dmalen'] = String(pkt.reth.dmaLength)
      if (pkt.aeth) {
        want['infiniband.aeth.syndrome'] = String(pkt.aeth.syndrome)
        want['infiniband.aeth.msn'] = String(pkt.aeth.msn)
      }
      if (pkt.immDt !== undefined) want['infiniband.immdt'] = pkt.immDt.toString(16).padStart(8, '0')
      if (pkt.ieth !== undefined) want['infiniband.ieth'] = pkt.ieth.toString(16).padStart(8, '0')
      if (pkt.atomicEth) {
        want['infiniband.atomiceth.swapdt'] = String(pkt.atomicEth.swapAdd)
        want['infiniband.atomiceth.cmpdt'] = String(pkt.atomicEth.compare)
      }
      if (pkt.atomicAckEth) want['infiniband.atomicacketh.origremdt'] = String(pkt.atomicAckEth.origData)
      for (const [field, value] of Object.entries(want)) {
        if (one(l, field) !== value) problems.push(`${name}: ${field} = ${one(l, field)}, expected ${value}`)
      }
      // tshark 4.0 does not always get to the ICRC or payload (after some RDMA WRITE/READ
      // RESPONSE "last" packets it stops), but what it shows must be ours.
      const crc = one(l, 'infiniband.invariant.crc')
      if (crc !== undefined) {
        icrcSeen++
        const ours = `0x${u.readUInt32BE(u.length - 4).toString(16).padStart(8, '0')}`
        if (crc !== ours) problems.push(`${name}: ICRC ${crc}, expected ${ours}`)
      }
      const data = one(l, 'data.data')
      if (data !== undefined) {
        const padded = hex(u.subarray(opcodeInfo(b.opcode)!.headerLength, u.length - 4))
        if (data !== padded) problems.push(`${name}: payload ${data}, expected ${padded}`)
      }
      if (l['_ws.expert'] || l['_ws.malformed']) problems.push(`${name}: expert info ${JSON.stringify(l['_ws.expert'] ?? l['_ws.malformed'])}`)
      if (ip.family === 4) {
        if (one(l, 'ip.checksum.status') !== '1') problems.push(`${name}: IPv4 header checksum status ${one(l, 'ip.checksum.status')}`)
        if (one(l, 'udp.checksum.status') !== '3') problems.push(`${name}: UDP checksum status ${one(l, 'udp.checksum.status')} (expected 3, not present)`)
      } else {
        if (one(l, 'udp.checksum.status') !== '1') problems.push(`${name}: UDP checksum status ${one(l, 'udp.checksum.status')}`)
        if (one(l, 'ipv6.flow') !== '0x012345') problems.push(`${name}: flow label ${one(l, 'ipv6.flow')}`)
      }
    }
    expect(problems).toEqual([])
    expect(icrcSeen).toBeGreaterThanOrEqual(Math.floor(sent.length * 0.8))
  })
})
