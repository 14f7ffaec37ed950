/**
 * Opens the one UDP socket of a device. With the native helper it carries
 * IP_PMTUDISC_DO (IPv4: IP ID 0 + DF, the header our ICRC assumes) or
 * UDP_NO_CHECK6_RX (IPv6: rxe's checksum-0 datagrams are delivered), and the
 * helper also reads and writes it (NativeDatagramSocket) unless its receive
 * path is missing or disabled, when node:dgram adopts the fd (openRoceSocket);
 * without the helper, a plain node:dgram socket, and `helper`/`reason` say what
 * that loses. A socket made elsewhere can be adopted by fd instead (node:dgram).
 */
import dgram, { type Socket } from 'node:dgram'
import { closeSync } from 'node:fs'
import { isIPv4, isIPv6 } from 'node:net'
import { InvalidArgumentError, RdmaError, ErrorCode, isRdmaError } from '@rdma-session/provider-interface'
import { openRoceSocket, type RoceSocket } from './socket/roce-socket.js'
import { NativeDatagramSocket } from './socket/native-datagram.js'
import { loadSockoptAddon, nativeReceiveOf } from './socket/sockopt-addon.js'

export interface DeviceSocket {
  /** node:dgram reads the socket (and sends when the native send path is not used or is full). */
  readonly socket?: Socket
  /** Or the native helper reads and writes it. */
  readonly io?: NativeDatagramSocket
  /** With `socket`: why the helper's receive path is not used. */
  readonly receivePathReason?: string
  readonly family: 4 | 6
  /** The bound address and port. */
  readonly address: string
  readonly port: number
  readonly helper: 'native' | 'none'
  /** The socket's fd when it is known (made by the helper or adopted): the native send path writes to it. */
  readonly fd?: number
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

/**
 * Adopts a bound UDP socket by its fd (e.g. one a launcher made with IP_PMTUDISC_DO /
 * UDP_NO_CHECK6_RX): the native helper reads and writes it when it can, else node:dgram.
 */
export async function adoptDeviceSocket(adopted: AdoptedSocket, family: 4 | 6): Promise<DeviceSocket> {
  const interop = adopted.pmtudiscDo === true || adopted.noCheck6Rx === true
  const nr = nativeReceiveOf(loadSockoptAddon())
  if (nr.ok) {
    const actual = nr.addon.querySocket(adopted.fd).family
    if (actual !== family) throw new InvalidArgumentError(`the adopted socket (fd ${adopted.fd}) is ${actual === 0 ? 'not an IP socket' : `IPv${actual}`}, but the device address is IPv${family}`, { fd: adopted.fd })
    const ds = nativeDeviceSocket(nr.addon, adopted.fd, family, null, { pmtudiscDo: adopted.pmtudiscDo === true, noCheck6Rx: adopted.noCheck6Rx === true })
    return interop ? ds : { ...ds, reason: 'adopted socket without the interop options' }
  }
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
    fd: adopted.fd,
    pmtudiscDo: adopted.pmtudiscDo === true,
    noCheck6Rx: adopted.noCheck6Rx === true,
    recvBufferBytes: tuneBuffers(socket),
    receivePathReason: nr.why,
    ...(interop ? {} : { reason: 'adopted socket without the interop options' }),
  }
}

export async function openDeviceSocket(address: string, port: number): Promise<DeviceSocket> {
  const family = isIPv4(address) ? 4 : isIPv6(address) ? 6 : 0
  if (family === 0) throw new InvalidArgumentError(`softroce address must be an IPv4 or IPv6 address, got '${address}'`)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`softroce port must be 0–65535, got ${String(port)}`)
  const nr = nativeReceiveOf(loadSockoptAddon())
  let rs: RoceSocket
  try {
    if (nr.ok) return openNativeDeviceSocket(nr.addon, family, address, port)
    rs = await openRoceSocket({ family, address, port, recvBufferSize: SOCKET_BUFFER_BYTES, sendBufferSize: SOCKET_BUFFER_BYTES })
  } catch (err) {
    if (isRdmaError(err)) throw err
    const code = (err as NodeJS.ErrnoException).code
    const hint = code === 'EADDRINUSE' ? `; another stack (kernel rdma_rxe or a second softroce device) holds UDP ${port}: pass port: 0 for an ephemeral port` : ''
    throw new RdmaError(ErrorCode.INVALID_ARGUMENT, `cannot bind UDP ${address}:${port} (${code ?? (err as Error).message})${hint}`, { address, port, code })
  }
  let recvBufferBytes = 0
  try {
    recvBufferBytes = rs.socket.getRecvBufferSize()
  } catch {
    recvBufferBytes = 0
  }
  return {
    socket: rs.socket,
    family,
    address: rs.address,
    port: rs.port,
    helper: rs.helper,
    ...(rs.fd === undefined ? {} : { fd: rs.fd }),
    pmtudiscDo: rs.interop.pmtudiscDo,
    noCheck6Rx: rs.interop.noCheck6Rx,
    recvBufferBytes,
    ...(nr.ok ? {} : { receivePathReason: nr.why }),
    ...(rs.reason === undefined ? {} : { reason: rs.reason }),
  }
}

type ReceiveAddon = ConstructorParameters<typeof NativeDatagramSocket>[0]

/** The helper makes, binds, reads and writes the socket; node:dgram is not involved. */
function openNativeDeviceSocket(addon: ReceiveAddon, family: 4 | 6, address: string, port: number): DeviceSocket {
  const fd = addon.createUdpSocket({ family, address, port })
  try {
    const report = addon.querySocket(fd)
    return nativeDeviceSocket(addon, fd, family, address, { pmtudiscDo: report.pmtudisc === 'do' || report.pmtudisc === 'probe', noCheck6Rx: report.noCheck6Rx === true })
  } catch (err) {
    closeSync(fd)
    throw err
  }
}

/** A bound socket the helper reads and writes (`address`: as the caller named it; null: as bound). */
function nativeDeviceSocket(addon: ReceiveAddon, fd: number, family: 4 | 6, address: string | null, interop: { pmtudiscDo: boolean; noCheck6Rx: boolean }): DeviceSocket {
  const recvBufferBytes = addon.setBufferSizes(fd, SOCKET_BUFFER_BYTES)
  const io = new NativeDatagramSocket(addon, fd, family)
  return {
    io,
    family,
    address: address ?? io.address,
    port: io.port,
    helper: interop.pmtudiscDo || interop.noCheck6Rx ? 'native' : 'none',
    fd,
    ...interop,
    recvBufferBytes,
  }
}
