/**
 * rdma_cm's conventions on top of the IB CM (Linux drivers/infiniband/core/cma.c, librdmacm):
 * the service ID of a port in the TCP port space (RDMA_PS_TCP) and the 36-byte header rdma_cm
 * puts in front of a REQ's private data, which carries the IP addresses and the active side's
 * port. With it the remote rdma_cm sees the address and port the user gave, as a TCP peer would.
 *
 *   byte 0: CMA version (0x00)   byte 1: IP version << 4   bytes 2-3: source port
 *   bytes 4-19: source IP   bytes 20-35: destination IP (IPv4: zeros, then the 4 bytes at 16-19)
 */
import { addressBytes } from '../wire/address.js'
import { PRIVATE_DATA } from './cm-messages.js'

/** RDMA_PS_TCP's service IDs: 0x0000000001060000 | port. */
export const RDMA_IB_IP_PS_TCP = 0x0000000001060000n
const PS_MASK = 0xffffffffffff0000n
export const CMA_VERSION = 0x00
export const CMA_HEADER_BYTES = 36
/** Private data a REQ can carry after rdma_cm's header. */
export const REQ_USER_PRIVATE_DATA = PRIVATE_DATA.REQ - CMA_HEADER_BYTES

export function serviceIdOfPort(port: number): bigint {
  return RDMA_IB_IP_PS_TCP | BigInt(port & 0xffff)
}

/** The port of an RDMA_PS_TCP service ID, or null for another port space. */
export function portOfServiceId(id: bigint): number | null {
  return (id & PS_MASK) === RDMA_IB_IP_PS_TCP ? Number(id & 0xffffn) : null
}

export interface CmaHeader {
  readonly family: 4 | 6
  /** The active side's rdma_cm port. */
  readonly srcPort: number
  readonly srcAddress: string
  readonly dstAddress: string
}

function put(out: Uint8Array, at: number, family: 4 | 6, address: string): void {
  const b = addressBytes(family, address)
  out.set(b, family === 4 ? at + 12 : at)
}

/** rdma_cm's header followed by `user` (at most REQ_USER_PRIVATE_DATA bytes). */
export function encodeCmaHeader(h: CmaHeader, user: Uint8Array = new Uint8Array(0)): Uint8Array {
  if (user.length > REQ_USER_PRIVATE_DATA) throw new RangeError(`rdma_cm private data is at most ${REQ_USER_PRIVATE_DATA} bytes, got ${user.length}`)
  const out = new Uint8Array(CMA_HEADER_BYTES + user.length)
  out[0] = CMA_VERSION
  out[1] = h.family << 4
  out[2] = h.srcPort >>> 8
  out[3] = h.srcPort & 0xff
  put(out, 4, h.family, h.srcAddress)
  put(out, 20, h.family, h.dstAddress)
  out.set(user, CMA_HEADER_BYTES)
  return out
}

/** Text form of 16 address bytes (RFC 5952 style: lower case, longest zero run compressed). */
export function formatIpv6(b: Uint8Array): string {
  const groups: number[] = []
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!)
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen) {
      best = i
      bestLen = j - i
    }
    i = j
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':')
  if (best < 0) return hex(groups)
  return `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`
}

function readAddress(pd: Uint8Array, at: number, family: 4 | 6): string {
  if (family === 4) return Array.from(pd.subarray(at + 12, at + 16)).join('.')
  return formatIpv6(pd.subarray(at, at + 16))
}

export type CmaHeaderResult = { readonly header: CmaHeader; readonly user: Uint8Array } | { readonly error: string }

/** Parses a REQ's private data as rdma_cm's header and the user's bytes after it. */
export function decodeCmaHeader(pd: Uint8Array): CmaHeaderResult {
  if (pd.length < CMA_HEADER_BYTES) return { error: `private data of ${pd.length} bytes has no rdma_cm header` }
  if (pd[0] !== CMA_VERSION) return { error: `rdma_cm header version 0x${pd[0]!.toString(16)}, expected 0x00` }
  const ipVersion = pd[1]! >>> 4
  if (ipVersion !== 4 && ipVersion !== 6) return { error: `rdma_cm header IP version ${ipVersion}` }
  const family = ipVersion
  return {
    header: { family, srcPort: (pd[2]! << 8) | pd[3]!, srcAddress: readAddress(pd, 4, family), dstAddress: readAddress(pd, 20, family) },
    user: pd.subarray(CMA_HEADER_BYTES),
  }
}

/** A GID (16 bytes) as the address it stands for on RoCEv2: IPv4-mapped GIDs as dotted quads. */
export function gidToAddress(gid: Uint8Array): { family: 4 | 6; address: string } {
  let mapped = gid[10] === 0xff && gid[11] === 0xff
  for (let i = 0; i < 10 && mapped; i++) if (gid[i] !== 0) mapped = false
  return mapped ? { family: 4, address: Array.from(gid.subarray(12, 16)).join('.') } : { family: 6, address: formatIpv6(gid) }
}

/** The GID of an address: IPv4 as ::ffff:a.b.c.d. */
export function addressToGid(family: 4 | 6, address: string): Uint8Array {
  const b = addressBytes(family, address)
  if (family === 6) return Uint8Array.from(b)
  const g = new Uint8Array(16)
  g[10] = 0xff
  g[11] = 0xff
  g.set(b, 12)
  return g
}
