/** Test helper: reads a classic pcap (Ethernet or raw IP) into RoCEv2 datagrams with their IpContext. */
import type { IpContext } from '../../src/wire/icrc.js'

export interface CapturedDatagram {
  ip: Required<Pick<IpContext, 'family' | 'src' | 'dst' | 'srcPort' | 'dstPort'>> & IpContext
  /** UDP payload including the ICRC. */
  udpPayload: Buffer
  udpChecksum: number
}

function addrText(b: Buffer): string {
  if (b.length === 4) return [...b].join('.')
  const g = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(2 * i).toString(16))
  return g.join(':')
}

export function readPcap(file: Buffer): { linkType: number; datagrams: CapturedDatagram[] } {
  const magic = file.readUInt32LE(0)
  if (magic !== 0xa1b2c3d4 && magic !== 0xa1b23c4d) throw new Error('not a little-endian pcap file')
  const linkType = file.readUInt32LE(20)
  const datagrams: CapturedDatagram[] = []
  for (let o = 24; o + 16 <= file.length; ) {
    const len = file.readUInt32LE(o + 8)
    const fr = file.subarray(o + 16, o + 16 + len)
    o += 16 + len
    let at = 0
    if (linkType === 1) at = 14
    else if (linkType !== 101) throw new Error(`link type ${linkType}`)
    const version = (fr[at] as number) >> 4
    let ip: CapturedDatagram['ip']
    let l4: number
    if (version === 4) {
      if (fr[at + 9] !== 17) continue
      const ihl = ((fr[at] as number) & 15) * 4
      ip = {
        family: 4,
        src: addrText(fr.subarray(at + 12, at + 16)),
        dst: addrText(fr.subarray(at + 16, at + 20)),
        srcPort: 0,
        dstPort: 0,
        ipId: fr.readUInt16BE(at + 4),
        df: (fr.readUInt16BE(at + 6) & 0x4000) !== 0,
        tos: fr[at + 1] as number,
        ttl: fr[at + 8] as number,
      }
      l4 = at + ihl
    } else if (version === 6) {
      if (fr[at + 6] !== 17) continue
      const w = fr.readUInt32BE(at)
      ip = {
        family: 6,
        src: addrText(fr.subarray(at + 8, at + 24)),
        dst: addrText(fr.subarray(at + 24, at + 40)),
        srcPort: 0,
        dstPort: 0,
        flowLabel: w & 0xfffff,
        tos: (w >>> 20) & 0xff,
        ttl: fr[at + 7] as number,
      }
      l4 = at + 40
    } else continue
    ip.srcPort = fr.readUInt16BE(l4)
    ip.dstPort = fr.readUInt16BE(l4 + 2)
    const udpLen = fr.readUInt16BE(l4 + 4)
    datagrams.push({ ip, udpPayload: Buffer.from(fr.subarray(l4 + 8, l4 + udpLen)), udpChecksum: fr.readUInt16BE(l4 + 6) })
  }
  return { linkType, datagrams }
}
