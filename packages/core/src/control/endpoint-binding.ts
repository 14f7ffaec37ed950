/**
 * Binding a peer's declared RoCE endpoint to what its control connection
 * proves. The `from` a peer states is where our QPs send (READ responses, ACKs,
 * writes): a peer that could name any address could reflect our traffic at a
 * third party. By default the declared address must be the source address of
 * the peer's control connection (on a Unix socket, an address of this host);
 * anything else is ERR_PEER with the reason, before any QP is made for it.
 */
import { networkInterfaces } from 'node:os'
import { PeerError } from '../errors.js'
import { endpointKey, type EndpointRecord } from '../session/records.js'

/**
 * An IP address as compared with declared endpoints: lower case, IPv6 in its
 * RFC 5952 form without a zone, IPv4-mapped IPv6 as the dotted quad; null when
 * there is none (Unix socket).
 */
export function normalizeAddress(address: string | undefined | null): string | null {
  if (address === undefined || address === null || address === '') return null
  let a = address.toLowerCase().split('%')[0]!
  if (a.includes(':')) {
    try {
      a = new URL(`http://[${a}]/`).hostname.slice(1, -1)
    } catch {
      return a
    }
    const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(a)
    if (mapped !== null) {
      const hi = parseInt(mapped[1]!, 16)
      const lo = parseInt(mapped[2]!, 16)
      return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`
    }
  }
  return a
}

/** What a control connection proves about its peer. `address` is null on a Unix socket (a process of this host). */
export interface ControlPeer {
  readonly address: string | null
  readonly peerId: string
}

/**
 * Decides whether a peer may declare `declared` as its RoCE endpoint. Replace
 * the default only where RoCE and control traffic use different networks, and
 * accept only addresses the peer is known to hold there (a fixed map of hosts):
 * an address the peer cannot prove reopens traffic reflection.
 */
export type EndpointPolicy = (declared: EndpointRecord, peer: ControlPeer) => boolean

/** True for loopback addresses and the addresses of this host's interfaces. */
export function isLocalAddress(address: string): boolean {
  const a = normalizeAddress(address)
  if (a === null) return false
  if (a === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a)) return true
  for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) if (normalizeAddress(i.address) === a) return true
  return false
}

/** The default: the control connection's source address, or (Unix socket) an address of this host. */
export const sourceAddressPolicy: EndpointPolicy = (declared, peer) => {
  const a = normalizeAddress(declared.address)
  return peer.address === null ? a !== null && isLocalAddress(a) : a === peer.address
}

/** Throws ERR_PEER (details.reason 'endpoint-unbound') when `policy` does not accept `declared` from `peer`. */
export function checkDeclaredEndpoint(declared: EndpointRecord, peer: ControlPeer, policy: EndpointPolicy = sourceAddressPolicy): void {
  if (policy(declared, peer)) return
  const source = peer.address ?? 'a Unix socket of this host'
  throw new PeerError(
    `the peer declared RoCE endpoint ${endpointKey(declared)}, but its control connection comes from ${source}: a peer's RoCE address must be the source address of its control connection (dial from the RoCE interface with localAddress, or give listen/dial an allowEndpoint policy for split networks)`,
    { reason: 'endpoint-unbound', declared: endpointKey(declared), source },
  )
}
