/**
 * ICRC verification of received datagrams. A UDP socket does not show the IP
 * header, so the receiver rebuilds it from the datagram's source and its own
 * bound address. IPv6 has no ID, so the check is exact. For IPv4 the check
 * first assumes ID 0 + DF (what a sender with IP_PMTUDISC_DO, like softroce
 * with the native helper, puts on the wire); if that fails it solves for the
 * ID (wire/icrc.ts solveIpv4Header: one CRC plus at most 16 XORs), which is
 * what makes packets from kernel rxe — whose IDs come from a hashed generator —
 * verifiable. The solved check covers 16 fewer bits (a corrupted packet passes
 * with probability 2^-16).
 */
import { solveIpv4Header, solveIpv4Id, verifyIcrc, type IpContext } from '../wire/icrc.js'

export type IcrcResult = 'ok' | 'solved' | 'bad'

export class IcrcChecker {
  readonly #family: 4 | 6
  readonly #local: string
  readonly #port: number
  /** Receive contexts by source port, then source address (a handful of peers). */
  readonly #contexts = new Map<number, Map<string, IpContext>>()

  constructor(family: 4 | 6, localAddress: string, localPort: number) {
    this.#family = family
    this.#local = localAddress
    this.#port = localPort
  }

  /** The IP/UDP context a datagram from `address:port` to this device travelled with (ID 0 + DF assumed). */
  contextFrom(address: string, port: number): IpContext {
    let byAddr = this.#contexts.get(port)
    if (byAddr === undefined) {
      byAddr = new Map()
      if (this.#contexts.size > 4096) this.#contexts.clear()
      this.#contexts.set(port, byAddr)
    }
    let ip = byAddr.get(address)
    if (ip === undefined) {
      ip = { family: this.#family, src: address, dst: this.#local, srcPort: port, dstPort: this.#port, ipId: 0, df: true }
      byAddr.set(address, ip)
    }
    return ip
  }

  /**
   * The context with the IPv4 ID the datagram travelled with as far as its ICRC tells (for
   * captures: the segments of a UDP GSO message carry IDs 1, 2, ...); `ip` when ID 0 fits or none does.
   */
  wireContext(datagram: Uint8Array, ip: IpContext): IpContext {
    if (this.#family !== 4 || datagram.length < 16 || verifyIcrc(datagram, ip)) return ip
    const solved = solveIpv4Header(datagram, ip)
    return solved === undefined ? ip : { ...ip, ipId: solved.ipId }
  }

  check(datagram: Uint8Array, ip: IpContext): IcrcResult {
    if (this.#family !== 4) return verifyIcrc(datagram, ip) ? 'ok' : 'bad'
    // One CRC pass for both: ID 0 is the solution when it fits (most senders; segment 0 of a UDP
    // GSO message), else the solver finds the ID (rxe's hashed IDs, GSO segments 1, 2, ...).
    // solveIpv4Id ignores ipId; DF is taken from the context (set, as Linux and rxe send).
    const id = datagram.length < 16 ? undefined : solveIpv4Id(datagram, ip)
    return id === undefined ? 'bad' : id === 0 ? 'ok' : 'solved'
  }
}
