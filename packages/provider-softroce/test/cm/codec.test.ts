// The CM MAD codec, rdma_cm's header and the UD packet codec: a REQ captured from the Linux kernel
// (rping -c on rxe, rxe-vm guest) decodes field by field, every message round-trips, and
// malformed MADs come back as CmCodecError with a stable reason, never an exception.
import { describe, expect, it } from 'vitest'
import { CmCodecError, decodeCmMad, encodeCmMad, PRIVATE_DATA, type CmMessage, type CmReq } from '../../src/cm/cm-messages.js'
import { addressToGid, decodeCmaHeader, encodeCmaHeader, formatIpv6, gidToAddress, portOfServiceId, serviceIdOfPort } from '../../src/cm/cma-header.js'
import { decodeUdPacket, encodeUdPacket } from '../../src/ud/ud-packet.js'
import { grhArea } from '../../src/ud/grh.js'
import { ibaTimeToMs, msToIbaTime } from '../../src/cm/cm-timing.js'

// The MAD of the kernel's REQ for rping -c -a 10.77.0.1 -p 7471 (Linux 6.1 rxe).
const KERNEL_REQ = Buffer.from(
  '01070203000000000000000465dab639001000000000000039b6da65000000000000000001061d2f505400fffe12345800000000000000000000110100000001000000a05b2f7aa7ffff37f0ffffffff00000000000000000000ffff0a4d000200000000000000000000ffff0a4d0001ff8f9000004000980000000000000000000000000000000000000000000000000000000000000000000000000000000000000000004082f60000000000000000000000000a4d00020000000000000000000000000a4d00010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000',
  'hex',
)

describe('CM MAD codec', () => {
  it('decodes the kernel\'s REQ', () => {
    const d = decodeCmMad(KERNEL_REQ)
    if (d instanceof CmCodecError) throw new Error(d.message)
    expect(d.tid).toBe(0x0000000465dab639n)
    const req = d.msg as CmReq
    expect(req).toMatchObject({
      type: 'REQ', localCommId: 0x39b6da65, serviceId: 0x0000000001061d2fn, localCaGuid: 0x505400fffe123458n, localQkey: 0, localQpn: 0x11,
      responderResources: 1, initiatorDepth: 1, remoteCmResponseTimeout: 20, transportType: 0, endToEndFlowControl: false,
      startingPsn: 0x5b2f7a, localCmResponseTimeout: 20, retryCount: 7, pkey: 0xffff, pathMtu: 3, rnrRetryCount: 7, maxCmRetries: 15, srq: false,
    })
    expect(req.primary).toMatchObject({ localLid: 0xffff, remoteLid: 0xffff, trafficClass: 0, hopLimit: 64, sl: 0, subnetLocal: false, localAckTimeout: 19 })
    expect(gidToAddress(req.primary.localGid)).toEqual({ family: 4, address: '10.77.0.2' })
    expect(gidToAddress(req.primary.remoteGid)).toEqual({ family: 4, address: '10.77.0.1' })
    expect(portOfServiceId(req.serviceId)).toBe(7471)
    const h = decodeCmaHeader(req.privateData)
    expect(h).toMatchObject({ header: { family: 4, srcPort: 0x82f6, srcAddress: '10.77.0.2', dstAddress: '10.77.0.1' } })
    // and encodes back to the same bytes
    expect(encodeCmMad(req, d.tid).equals(KERNEL_REQ)).toBe(true)
  })

  const E = new Uint8Array(0)
  const pd = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 1) & 0xff)
  const messages: CmMessage[] = [
    { type: 'MRA', localCommId: 1, remoteCommId: 2, messageMraed: 0, serviceTimeout: 24, privateData: pd(PRIVATE_DATA.MRA) },
    { type: 'REJ', localCommId: 3, remoteCommId: 4, messageRejected: 1, reason: 28, ari: pd(8), privateData: pd(PRIVATE_DATA.REJ) },
    {
      type: 'REP', localCommId: 5, remoteCommId: 6, localQkey: 0, localQpn: 0xabcdef, startingPsn: 0x123456, responderResources: 16, initiatorDepth: 4,
      targetAckDelay: 3, failoverAccepted: 0, endToEndFlowControl: true, rnrRetryCount: 7, srq: false, localCaGuid: 0x0102030405060708n, privateData: pd(PRIVATE_DATA.REP),
    },
    { type: 'RTU', localCommId: 7, remoteCommId: 8, privateData: pd(PRIVATE_DATA.RTU) },
    { type: 'DREQ', localCommId: 9, remoteCommId: 10, remoteQpn: 0x654321, privateData: pd(PRIVATE_DATA.DREQ) },
    { type: 'DREP', localCommId: 11, remoteCommId: 12, privateData: E },
  ]
  for (const m of messages) {
    it(`${m.type} round-trips`, () => {
      const mad = encodeCmMad(m, 0x1122334455667788n)
      expect(mad.length).toBe(256)
      const d = decodeCmMad(mad)
      if (d instanceof CmCodecError) throw new Error(d.message)
      expect(d.tid).toBe(0x1122334455667788n)
      const back = d.msg as unknown as Record<string, unknown>
      const want = m as unknown as Record<string, unknown>
      for (const [k, v] of Object.entries(want)) {
        if (v instanceof Uint8Array) expect(Buffer.from((back[k] as Uint8Array).subarray(0, v.length)).equals(Buffer.from(v)), k).toBe(true)
        else expect(back[k], k).toEqual(v)
      }
    })
  }

  it('refuses oversized private data when encoding', () => {
    expect(() => encodeCmMad({ type: 'RTU', localCommId: 1, remoteCommId: 2, privateData: new Uint8Array(225) }, 1n)).toThrow(RangeError)
  })

  it('returns a reason for every malformed MAD', () => {
    const rtu = encodeCmMad({ type: 'RTU', localCommId: 1, remoteCommId: 2, privateData: E }, 1n)
    const mutate = (at: number, v: number): Buffer => {
      const b = Buffer.from(rtu)
      b[at] = v
      return b
    }
    const reason = (b: Uint8Array): string | null => {
      const d = decodeCmMad(b)
      return d instanceof CmCodecError ? d.reason : null
    }
    expect(reason(rtu.subarray(0, 255))).toBe('truncated')
    expect(reason(new Uint8Array(0))).toBe('truncated')
    expect(reason(mutate(0, 2))).toBe('badBaseVersion')
    expect(reason(mutate(1, 0x81))).toBe('notCmClass')
    expect(reason(mutate(2, 1))).toBe('badClassVersion')
    expect(reason(mutate(3, 0x81))).toBe('badMethod')
    expect(reason(mutate(17, 0x01))).toBe('badAttribute')
    expect(reason(mutate(17, 0x19))).toBe('badAttribute') // LAP: not handled
    const rej = encodeCmMad({ type: 'REJ', localCommId: 1, remoteCommId: 2, messageRejected: 0, reason: 1, ari: E, privateData: E }, 1n)
    rej[24 + 9] = 0xfe
    expect(reason(rej)).toBe('badField')
    expect(reason(rtu)).toBeNull()
  })
})

describe('rdma_cm header and service IDs', () => {
  it('maps ports to RDMA_PS_TCP service IDs and back', () => {
    expect(serviceIdOfPort(7174)).toBe(0x0000000001061c06n)
    expect(portOfServiceId(0x0000000001061c06n)).toBe(7174)
    expect(portOfServiceId(0x0000000001110000n | 5n)).toBeNull() // RDMA_PS_UDP
  })

  it('round-trips IPv4 and IPv6 headers with user private data', () => {
    const v4 = encodeCmaHeader({ family: 4, srcPort: 40000, srcAddress: '10.0.0.1', dstAddress: '10.0.0.2' }, Buffer.from('hi'))
    expect(Buffer.from(v4.subarray(0, 4)).toString('hex')).toBe('00409c40')
    expect(decodeCmaHeader(v4)).toMatchObject({ header: { family: 4, srcPort: 40000, srcAddress: '10.0.0.1', dstAddress: '10.0.0.2' } })
    const v6 = encodeCmaHeader({ family: 6, srcPort: 1, srcAddress: 'fd77::1', dstAddress: 'fe80::5054:ff:fe12:3458' })
    expect(decodeCmaHeader(v6)).toMatchObject({ header: { family: 6, srcAddress: 'fd77::1', dstAddress: 'fe80::5054:ff:fe12:3458' } })
    expect(() => encodeCmaHeader({ family: 4, srcPort: 1, srcAddress: '1.2.3.4', dstAddress: '1.2.3.5' }, new Uint8Array(57))).toThrow(RangeError)
  })

  it('rejects headers that are not rdma_cm\'s', () => {
    expect(decodeCmaHeader(new Uint8Array(10))).toHaveProperty('error')
    const bad = encodeCmaHeader({ family: 4, srcPort: 1, srcAddress: '1.2.3.4', dstAddress: '1.2.3.5' })
    bad[1] = 0x50
    expect(decodeCmaHeader(bad)).toHaveProperty('error')
    bad[1] = 0x40
    bad[0] = 1
    expect(decodeCmaHeader(bad)).toHaveProperty('error')
  })

  it('formats GIDs and IPv6 addresses', () => {
    expect(gidToAddress(addressToGid(4, '192.168.1.9'))).toEqual({ family: 4, address: '192.168.1.9' })
    expect(gidToAddress(addressToGid(6, 'fd77::2'))).toEqual({ family: 6, address: 'fd77::2' })
    expect(formatIpv6(new Uint8Array(16))).toBe('::')
    expect(formatIpv6(Buffer.from('20010db8000000010000000000000001', 'hex'))).toBe('2001:db8:0:1::1')
  })
})

describe('UD packets, GRH area, CM timing', () => {
  it('encodes and decodes UD SENDs with DETH', () => {
    const d = encodeUdPacket({ destQpn: 1, psn: 5, pkey: 0xffff, qkey: 0x80010000, srcQpn: 1, solicited: false, payload: Buffer.alloc(256, 7) })
    expect(d.length).toBe(12 + 8 + 256 + 4)
    expect(d[0]).toBe(0x64)
    const p = decodeUdPacket(d)
    expect(p).toMatchObject({ destQpn: 1, psn: 5, pkey: 0xffff, qkey: 0x80010000, srcQpn: 1 })
    expect((p as { payload: Uint8Array }).payload.length).toBe(256)
    const imm = decodeUdPacket(encodeUdPacket({ destQpn: 9, psn: 0, pkey: 0xffff, qkey: 3, srcQpn: 4, solicited: true, immDt: 0xdeadbeef, payload: Buffer.from('abc') }))
    expect(imm).toMatchObject({ immDt: 0xdeadbeef, solicited: true })
    expect(Buffer.from((imm as { payload: Uint8Array }).payload).toString()).toBe('abc')
    expect(decodeUdPacket(d.subarray(0, 20))).toHaveProperty('code', 'ERR_WIRE_TRUNCATED')
    const rc = Buffer.from(d)
    rc[0] = 0x04
    expect(decodeUdPacket(rc)).toHaveProperty('code', 'ERR_WIRE_OPCODE')
  })

  it('lays out the GRH area as rdma-core does for RoCEv2 (IPv4 header in the last 20 bytes)', () => {
    const g4 = grhArea(4, '10.77.0.2', '10.77.0.1', 280)
    expect(g4.length).toBe(40)
    expect(g4.subarray(0, 20).every((b) => b === 0)).toBe(true)
    expect(g4[20]).toBe(0x45)
    expect(Buffer.from(g4.subarray(32, 40)).toString('hex')).toBe('0a4d00020a4d0001')
    const g6 = grhArea(6, 'fd77::2', 'fd77::1', 280)
    expect(g6[0]! >> 4).toBe(6)
    expect(g6[6]).toBe(17)
  })

  it('converts IBA times as Linux cm.c does', () => {
    expect(ibaTimeToMs(20)).toBe(4096)
    expect(ibaTimeToMs(16)).toBe(256)
    expect(ibaTimeToMs(3)).toBe(1)
    expect(msToIbaTime(4096)).toBe(20)
  })
})
