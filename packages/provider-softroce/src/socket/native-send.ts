/**
 * The native send path: with the socket-options helper loaded, datagrams go out through its
 * sendTo() (one sendmsg on the fd node adopted) instead of node:dgram's send(), which is heavy
 * per datagram (argument checks, a SendWrap, libuv). It also carries each QP's traffic class
 * (IP_TOS / IPV6_TCLASS) and hop limit (IP_TTL / IPV6_HOPLIMIT) per datagram, which node:dgram
 * cannot. Receives stay on node:dgram.
 */
import type { RoceSockoptAddon } from './sockopt-addon.js'

/** A destination as the native path sends to it: encoded once per QP. */
export interface WireTarget {
  /** struct sockaddr_in / sockaddr_in6 from makeSockaddr. */
  readonly sockaddr: Buffer
  /** The IP TOS / traffic class byte, -1 for the socket's default (0). */
  readonly tos: number
  /** TTL / hop limit, -1 for the socket's default. */
  readonly hopLimit: number
  /** The destination address and port (the dgram fallback). */
  readonly address: string
  readonly port: number
}

export class NativeSender {
  readonly #fd: number
  readonly #sendTo: Required<RoceSockoptAddon>['sendTo']
  readonly #makeSockaddr: Required<RoceSockoptAddon>['makeSockaddr']
  readonly #family: 4 | 6
  readonly #sockaddrs = new Map<string, Buffer>()

  constructor(addon: Required<RoceSockoptAddon>, fd: number, family: 4 | 6) {
    this.#fd = fd
    this.#sendTo = addon.sendTo
    this.#makeSockaddr = addon.makeSockaddr
    this.#family = family
  }

  /** The target for address:port with this traffic class (0: default) and hop limit (0: default). */
  target(address: string, port: number, trafficClass: number, hopLimit: number): WireTarget {
    const key = `${address}\u0000${port}`
    let sockaddr = this.#sockaddrs.get(key)
    if (sockaddr === undefined) {
      sockaddr = this.#makeSockaddr(this.#family, address, port)
      this.#sockaddrs.set(key, sockaddr)
    }
    return { sockaddr, tos: trafficClass === 0 ? -1 : trafficClass, hopLimit: hopLimit === 0 ? -1 : hopLimit, address, port }
  }

  /** Bytes sent, or -errno (the caller falls back to node:dgram). */
  send(data: Uint8Array | readonly Uint8Array[], t: WireTarget): number {
    return this.#sendTo(this.#fd, data, t.sockaddr, t.tos, t.hopLimit)
  }
}
