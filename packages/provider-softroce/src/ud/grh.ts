/**
 * The 40 bytes a UD receive buffer starts with (IBTA vol. 1, 11.4.1.1: the GRH, or on RoCEv2 the
 * IP header in its place). As rxe and rdma-core lay it out: IPv6, the whole 40-byte header; IPv4,
 * 20 zero bytes then the 20-byte IPv4 header. A UDP socket does not show the IP header, so it is
 * rebuilt from what the socket does show (addresses, length) with hop limit/TTL 64 and traffic
 * class 0.
 */
import { addressBytes } from '../wire/address.js'

export const GRH_BYTES = 40
const UDP_HEADER = 8

function ipv4Checksum(h: Uint8Array, at: number): number {
  let sum = 0
  for (let i = 0; i < 20; i += 2) sum += (h[at + i]! << 8) | h[at + i + 1]!
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
  return ~sum & 0xffff
}

/** The GRH area of a datagram of `udpPayloadBytes` from `src` to `dst`. */
export function grhArea(family: 4 | 6, src: string, dst: string, udpPayloadBytes: number): Uint8Array {
  const g = new Uint8Array(GRH_BYTES)
  if (family === 6) {
    const len = udpPayloadBytes + UDP_HEADER
    g[0] = 0x60
    g[4] = len >>> 8
    g[5] = len
    g[6] = 17
    g[7] = 64
    g.set(addressBytes(6, src), 8)
    g.set(addressBytes(6, dst), 24)
    return g
  }
  const total = 20 + UDP_HEADER + udpPayloadBytes
  const h = 20
  g[h] = 0x45
  g[h + 2] = total >>> 8
  g[h + 3] = total
  g[h + 6] = 0x40 // DF
  g[h + 8] = 64
  g[h + 9] = 17
  g.set(addressBytes(4, src), h + 12)
  g.set(addressBytes(4, dst), h + 16)
  const c = ipv4Checksum(g, h)
  g[h + 10] = c >>> 8
  g[h + 11] = c
  return g
}
