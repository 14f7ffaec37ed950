/**
 * Opens the one UDP socket of a device. Until the native socket-options
 * helper (src/socket/roce-socket.ts) is available this is a plain node:dgram
 * socket: IPv4 packets then leave with an unpredictable IP ID (so kernel rxe
 * drops them: their ICRC assumes ID 0) and IPv6 datagrams with UDP checksum 0
 * are dropped by the kernel. `helper`/`reason` say so.
 */
import dgram, { type Socket } from 'node:dgram'
import { isIPv4, isIPv6 } from 'node:net'
import { InvalidArgumentError, RdmaError, ErrorCode } from '@rdma-session/core'

export interface DeviceSocket {
  readonly socket: Socket
  readonly family: 4 | 6
  /** The bound address and port. */
  readonly address: string
  readonly port: number
  readonly helper: 'native' | 'none'
  readonly pmtudiscDo: boolean
  readonly noCheck6Rx: boolean
  readonly reason?: string
  /** The socket's receive buffer as the kernel granted it (bytes, as getsockopt reports them). */
  readonly recvBufferBytes: number
}

/** Socket buffers large enough for a full send window (the kernel caps them at net.core.[rw]mem_max). */
const SOCKET_BUFFER_BYTES = 4 << 20

/** A UDP socket created elsewhere (already bound, socket options set), adopted by file descriptor. */
export interface AdoptedSocket {
  readonly fd: number
  /** IPv4: IP_MTU_DISCOVER = IP_PMTUDISC_DO is set on it. */
  readonly pmtudiscDo?: boolean
  /** IPv6: UDP_NO_CHECK6_RX is set on it. */
  readonly noCheck6Rx?: boolean
}

function tuneBuffers(socket: Socket): number {
  try {
    socket.setRecvBufferSize(SOCKET_BUFFER_BYTES)
    socket.setSendBufferSize(SOCKET_BUFFER_BYTES)
    return socket.getRecvBufferSize()
  } catch {
    return 0
  }
}

const literalLookup = (family: 4 | 6) => (host: string, _options: unknown, cb: (err: Error | null, address: string, family: number) => void): void => cb(null, host, family)

/** Adopts a bound UDP socket by its fd (e.g. one a launcher made with IP_PMTUDISC_DO / UDP_NO_CHECK6_RX). */
export async function adoptDeviceSocket(adopted: AdoptedSocket, family: 4 | 6): Promise<DeviceSocket> {
  const socket = dgram.createSocket({ type: family === 4 ? 'udp4' : 'udp6', lookup: literalLookup(family) } as dgram.SocketOptions)
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.bind({ fd: adopted.fd }, () => {
      socket.off('error', reject)
      resolve()
    })
  })
  const bound = socket.address()
  return {
    socket,
    family,
    address: bound.address,
    port: bound.port,
    helper: adopted.pmtudiscDo === true || adopted.noCheck6Rx === true ? 'native' : 'none',
    pmtudiscDo: adopted.pmtudiscDo === true,
    noCheck6Rx: adopted.noCheck6Rx === true,
    recvBufferBytes: tuneBuffers(socket),
    ...(adopted.pmtudiscDo === true || adopted.noCheck6Rx === true ? {} : { reason: 'adopted socket without the interop options' }),
  }
}

export async function openDeviceSocket(address: string, port: number): Promise<DeviceSocket> {
  const family = isIPv4(address) ? 4 : isIPv6(address) ? 6 : 0
  if (family === 0) throw new InvalidArgumentError(`softroce address must be an IPv4 or IPv6 address, got '${address}'`)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`softroce port must be 0–65535, got ${String(port)}`)
  const socket = dgram.createSocket({
    type: family === 4 ? 'udp4' : 'udp6',
    ipv6Only: family === 6,
    recvBufferSize: SOCKET_BUFFER_BYTES,
    sendBufferSize: SOCKET_BUFFER_BYTES,
    // Addresses are always literal IPs: answer at once instead of a dns.lookup round per datagram.
    lookup: literalLookup(family),
  } as dgram.SocketOptions)
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      socket.close()
      const code = (err as NodeJS.ErrnoException).code
      const hint = code === 'EADDRINUSE' ? `; another stack (kernel rdma_rxe or a second softroce device) holds UDP ${port}: pass port: 0 for an ephemeral port` : ''
      reject(new RdmaError(ErrorCode.INVALID_ARGUMENT, `cannot bind UDP ${address}:${port} (${code ?? err.message})${hint}`, { address, port, code }))
    }
    socket.once('error', onError)
    socket.bind({ address, port, exclusive: true }, () => {
      socket.off('error', onError)
      resolve()
    })
  })
  const bound = socket.address()
  let recvBufferBytes = 0
  try {
    recvBufferBytes = socket.getRecvBufferSize()
  } catch {
    recvBufferBytes = 0
  }
  return {
    recvBufferBytes,
    socket,
    family,
    address,
    port: bound.port,
    helper: 'none',
    pmtudiscDo: false,
    noCheck6Rx: false,
    reason: 'plain node:dgram socket: the native socket-options helper is not available',
  }
}
