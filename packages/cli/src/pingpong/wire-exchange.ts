/**
 * rc_pingpong's out-of-band exchange (rdma-core libibverbs/examples/rc_pingpong.c), byte for
 * byte: over one TCP connection each side writes a 52-byte message "LLLL:QQQQQQ:PPPPPP:<32 hex>"
 * plus its NUL (LID, QPN, PSN, GID), the client first; the server connects its QP before it
 * answers; the client ends with "done" plus its NUL. The GID goes as 32 hex digits, its 16 bytes in
 * order (gid_to_wire_gid: each 32-bit word htobe32'd and printed %08x).
 */
import { acceptOne, connectTcp, finish, readBytes, unmapAddress, writeAll } from '../oob/tcp.js'

export { addressToGid, formatGid, gidToAddress } from '../oob/gid.js'
export { unmapAddress } from '../oob/tcp.js'

/** sizeof "0000:000000:000000:00000000000000000000000000000000" (with the NUL). */
export const MESSAGE_BYTES = 52
/** sizeof "done" (with the NUL). */
export const DONE_BYTES = 5
const DONE = Buffer.from('done\0', 'latin1')

/** What rc_pingpong calls struct pingpong_dest. */
export interface PingpongDest {
  readonly lid: number
  readonly qpn: number
  readonly psn: number
  /** 16 bytes, network order. */
  readonly gid: Uint8Array
}

const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0')

/** sprintf("%04x:%06x:%06x:%s") into the fixed-size message, NUL-padded. */
export function encodeDest(d: PingpongDest): Buffer {
  if (d.gid.length !== 16) throw new RangeError(`a GID is 16 bytes, got ${d.gid.length}`)
  const text = `${hex(d.lid, 4)}:${hex(d.qpn, 6)}:${hex(d.psn, 6)}:${Buffer.from(d.gid).toString('hex')}`
  const msg = Buffer.alloc(MESSAGE_BYTES)
  msg.write(text, 'latin1')
  return msg
}

/** sscanf("%x:%x:%x:%s") + wire_gid_to_gid, but refusing what rc_pingpong would misread. */
export function decodeDest(msg: Uint8Array): PingpongDest {
  const text = Buffer.from(msg).toString('latin1').replace(/\0[\s\S]*$/, '')
  const m = /^([0-9a-fA-F]{1,8}):([0-9a-fA-F]{1,8}):([0-9a-fA-F]{1,8}):([0-9a-fA-F]{32})$/.exec(text)
  if (m === null) throw new Error(`not an rc_pingpong address message: ${JSON.stringify(text)}`)
  return { lid: parseInt(m[1]!, 16), qpn: parseInt(m[2]!, 16), psn: parseInt(m[3]!, 16), gid: Buffer.from(m[4]!, 'hex') }
}

/** The client side (pp_client_exch_dest): connect, send ours, read theirs, send "done". */
export async function clientExchange(
  host: string,
  port: number,
  local: (tcpLocalAddress: string) => Promise<PingpongDest>,
): Promise<{ remote: PingpongDest; tcpLocalAddress: string }> {
  const socket = await connectTcp(host, port)
  try {
    const tcpLocalAddress = unmapAddress(socket.localAddress)
    await writeAll(socket, encodeDest(await local(tcpLocalAddress)))
    const remote = decodeDest(await readBytes(socket, MESSAGE_BYTES, 'remote address'))
    await writeAll(socket, DONE)
    return { remote, tcpLocalAddress }
  } finally {
    finish(socket)
  }
}

/**
 * The server side (pp_server_exch_dest): accept one connection on `port` (every address, IPv4
 * and IPv6), read the client's message, let `connect` bring the QP to RTS and return ours,
 * send it and wait for "done".
 */
export async function serverExchange(
  port: number,
  connect: (remote: PingpongDest, tcpLocalAddress: string) => Promise<PingpongDest>,
  onListening?: (port: number) => void,
): Promise<{ remote: PingpongDest; tcpLocalAddress: string }> {
  const socket = await acceptOne(port, onListening)
  try {
    const tcpLocalAddress = unmapAddress(socket.localAddress)
    const remote = decodeDest(await readBytes(socket, MESSAGE_BYTES, 'remote address'))
    const local = await connect(remote, tcpLocalAddress)
    await writeAll(socket, encodeDest(local))
    const done = await readBytes(socket, DONE_BYTES, '"done"', true)
    if (done.length !== DONE_BYTES) throw new Error("Couldn't send/recv local address")
    return { remote, tcpLocalAddress }
  } finally {
    finish(socket)
  }
}
