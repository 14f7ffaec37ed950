/**
 * Opens the UDP socket of a RoCEv2 endpoint as node:dgram, with the two socket options wire
 * interop with kernel rxe and RoCE NICs depends on and node cannot set:
 * - IPv4: IP_MTU_DISCOVER = IP_PMTUDISC_DO, so Linux sends IP ID 0 + DF (the ICRC covers the ID);
 * - IPv6: UDP_NO_CHECK6_RX, so the kernel delivers rxe's datagrams (UDP checksum 0).
 * The native helper (native/roce_sockopt.c) makes and binds the socket and dgram adopts its fd.
 * Without the helper this falls back to a plain dgram socket and says what is lost and how to fix it.
 */
import dgram, { type Socket } from 'node:dgram'
import { lookup as dnsLookup, type LookupOneOptions } from 'node:dns'
import { closeSync } from 'node:fs'
import { isIP } from 'node:net'
import { ErrorCode, InvalidArgumentError, RdmaError } from '@rdma-session/provider-interface'
import { BUILD_COMMAND, DISABLE_ENV, loadSockoptAddon } from './sockopt-addon.js'

export interface RoceSocketOptions {
  family: 4 | 6
  /** The exact local address to bind: it is covered by the ICRC, so not a wildcard for rxe interop. */
  address: string
  /** UDP port; RoCEv2 is 4791, 0 picks an ephemeral port. */
  port: number
  reuseAddr?: boolean
  /**
   * Create the socket inside this network namespace (a name under /run/netns or a path). Needs the
   * native helper and root; the socket stays in that namespace while this process does not.
   */
  netns?: string
  recvBufferSize?: number
  sendBufferSize?: number
}

export interface RoceSocketInterop {
  /** IPv4: IP_MTU_DISCOVER = IP_PMTUDISC_DO (or PROBE) is in effect: IP ID 0 + DF on every packet. */
  pmtudiscDo: boolean
  /** IPv6: UDP_NO_CHECK6_RX is in effect: datagrams with UDP checksum 0 are delivered. */
  noCheck6Rx: boolean
  /** The option this socket's family needs is in effect (pmtudiscDo for IPv4, noCheck6Rx for IPv6). */
  wireCompatible: boolean
}

export interface RoceSocket {
  socket: Socket
  family: 4 | 6
  /** The bound address and port. */
  address: string
  port: number
  interop: RoceSocketInterop
  /** 'native': the helper made the socket; 'none': a plain dgram socket. */
  helper: 'native' | 'none'
  /** With helper 'native': the socket's file descriptor (dgram owns it; the native send path writes to it). */
  fd?: number
  /** With helper 'none': why, what is lost, and how to fix it. */
  reason?: string
}

/** What a plain socket of this family loses against kernel rxe / RoCE NICs. */
export function interopLoss(family: 4 | 6): string {
  return family === 4
    ? 'IPv4 packets sent to kernel rxe or RoCE NICs will be dropped for a bad ICRC (Linux writes a non-zero IP ID that the ICRC covers, unless IP_PMTUDISC_DO is set)'
    : 'IPv6 packets from kernel rxe will be dropped by this host\'s kernel (rxe sends UDP checksum 0, accepted only with UDP_NO_CHECK6_RX)'
}

function fallbackReason(family: 4 | 6, why: string, disabled: boolean): string {
  const fix = disabled
    ? `unset ${DISABLE_ENV}`
    : `build the helper with \`${BUILD_COMMAND}\` (needs python3, make and g++)`
  return `plain node:dgram socket: the native socket-options helper is not used because ${why}. ` +
    `${interopLoss(family)}. Traffic between two softroce endpoints is not affected. Fix: ${fix}.`
}

/** dgram resolves every send's address; answer IP literals at once instead of a dns.lookup round. */
function literalFirstLookup(
  host: string,
  options: LookupOneOptions,
  cb: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  const family = isIP(host)
  if (family !== 0) cb(null, host, family)
  else dnsLookup(host, options, cb)
}

function checkOptions(o: RoceSocketOptions): void {
  if (o.family !== 4 && o.family !== 6) throw new InvalidArgumentError(`openRoceSocket: family must be 4 or 6, got ${String(o.family)}`)
  if (isIP(o.address.replace(/%.*$/, '')) !== o.family) {
    throw new InvalidArgumentError(`openRoceSocket: address must be an IPv${o.family} address, got '${o.address}'`)
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new InvalidArgumentError(`openRoceSocket: port must be 0-65535, got ${String(o.port)}`)
}

function createDgram(o: RoceSocketOptions): Socket {
  return dgram.createSocket({
    type: o.family === 4 ? 'udp4' : 'udp6',
    ipv6Only: o.family === 6,
    reuseAddr: o.reuseAddr === true,
    lookup: literalFirstLookup,
    ...(o.recvBufferSize === undefined ? {} : { recvBufferSize: o.recvBufferSize }),
    ...(o.sendBufferSize === undefined ? {} : { sendBufferSize: o.sendBufferSize }),
  })
}

/** bind() and wait for 'listening'. */
function bindDgram(socket: Socket, how: dgram.BindOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err)
    socket.once('error', onError)
    socket.bind(how, () => {
      socket.off('error', onError)
      resolve()
    })
  })
}

/**
 * Open a RoCEv2 UDP socket. Do not connect() it: a connected IPv4 socket numbers its IP IDs
 * again, even with IP_PMTUDISC_DO. Bind errors (EADDRINUSE, ...) are thrown as the system errors
 * they are (code, errno, syscall); a missing helper is not an error unless `netns` is given.
 */
export async function openRoceSocket(options: RoceSocketOptions): Promise<RoceSocket> {
  checkOptions(options)
  const { family, address, port } = options
  const addon = loadSockoptAddon()

  if (!addon.loaded) {
    if (options.netns !== undefined) {
      throw new RdmaError(ErrorCode.UNSUPPORTED,
        `openRoceSocket: a socket in network namespace '${options.netns}' needs the native socket-options helper, which is not used because ${addon.why}; build it with \`${BUILD_COMMAND}\` (needs python3, make and g++)`,
        { netns: options.netns, why: addon.why })
    }
    const socket = createDgram(options)
    try {
      await bindDgram(socket, { address, port })
    } catch (err) {
      socket.close()
      throw err
    }
    return {
      socket,
      family,
      address,
      port: socket.address().port,
      interop: { pmtudiscDo: false, noCheck6Rx: false, wireCompatible: false },
      helper: 'none',
      reason: fallbackReason(family, addon.why, addon.why.includes(DISABLE_ENV)),
    }
  }

  const fd = addon.addon.createUdpSocket({
    family, address, port,
    ...(options.reuseAddr === undefined ? {} : { reuseAddr: options.reuseAddr }),
    ...(options.netns === undefined ? {} : { netns: options.netns }),
  })
  let report
  const socket = createDgram(options)
  try {
    report = addon.addon.querySocket(fd)
    // Adopting an fd fails only synchronously (ERR_INVALID_FD_TYPE, open errors), and then dgram
    // does not own it: close it here.
    await bindDgram(socket, { fd })
  } catch (err) {
    socket.close()
    closeSync(fd)
    throw err
  }
  const pmtudiscDo = report.pmtudisc === 'do' || report.pmtudisc === 'probe'
  const noCheck6Rx = report.noCheck6Rx === true
  return {
    socket,
    family,
    address,
    port: socket.address().port,
    interop: { pmtudiscDo, noCheck6Rx, wireCompatible: family === 4 ? pmtudiscDo : noCheck6Rx },
    helper: 'native',
    fd,
  }
}
