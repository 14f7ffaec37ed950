/**
 * rc_pingpong's out-of-band exchange (rdma-core libibverbs/examples/rc_pingpong.c), byte for
 * byte: over one TCP connection each side writes a 52-byte message "LLLL:QQQQQQ:PPPPPP:<32 hex>"
 * plus its NUL (LID, QPN, PSN, GID), the client first; the server connects its QP before it
 * answers; the client ends with "done" plus its NUL. The GID goes as 32 hex digits, its 16 bytes in
 * order (gid_to_wire_gid: each 32-bit word htobe32'd and printed %08x).
 */
import net from 'node:net'

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

const V4_MAPPED = Buffer.from('00000000000000000000ffff', 'hex')

/** The IP address a RoCEv2 GID stands for: ::ffff:a.b.c.d is IPv4, anything else IPv6. */
export function gidToAddress(gid: Uint8Array): { family: 4 | 6; address: string } {
  const b = Buffer.from(gid)
  if (b.subarray(0, 12).equals(V4_MAPPED)) return { family: 4, address: [...b.subarray(12)].join('.') }
  return { family: 6, address: formatGid(b) }
}

/** The GID of a local address: ::ffff:a.b.c.d for IPv4, the address itself for IPv6. */
export function addressToGid(address: string): Uint8Array {
  const plain = address.replace(/%.*$/, '')
  if (net.isIPv4(plain)) return Buffer.concat([V4_MAPPED, Buffer.from(plain.split('.').map(Number))])
  if (!net.isIPv6(plain)) throw new Error(`not an IP address: '${address}'`)
  const [head = '', tail] = plain.split('::') as [string, string?]
  const words = (s: string): number[] => (s === '' ? [] : s.split(':').flatMap((w) => (w.includes('.') ? ipv4Words(w) : [parseInt(w, 16)])))
  const h = words(head)
  const t = tail === undefined ? [] : words(tail)
  const all = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t]
  const out = Buffer.alloc(16)
  all.forEach((w, i) => out.writeUInt16BE(w, 2 * i))
  return out
}

function ipv4Words(dotted: string): number[] {
  const [a = 0, b = 0, c = 0, d = 0] = dotted.split('.').map(Number)
  return [(a << 8) | b, (c << 8) | d]
}

/** inet_ntop(AF_INET6) as glibc writes it: longest zero run as '::', ::ffff:a.b.c.d and ::a.b.c.d dotted. */
export function formatGid(gid: Uint8Array): string {
  const words = Array.from({ length: 8 }, (_, i) => ((gid[2 * i] ?? 0) << 8) | (gid[2 * i + 1] ?? 0))
  let best = { base: -1, len: 0 }
  let cur = { base: -1, len: 0 }
  for (let i = 0; i <= 8; i++) {
    if (i < 8 && words[i] === 0) {
      cur = cur.base === -1 ? { base: i, len: 1 } : { base: cur.base, len: cur.len + 1 }
    } else if (cur.base !== -1) {
      if (best.base === -1 || cur.len > best.len) best = cur
      cur = { base: -1, len: 0 }
    }
  }
  if (best.len < 2) best = { base: -1, len: 0 }
  let out = ''
  for (let i = 0; i < 8; i++) {
    if (best.base !== -1 && i >= best.base && i < best.base + best.len) {
      if (i === best.base) out += ':'
      continue
    }
    if (i !== 0) out += ':'
    if (i === 6 && best.base === 0 && (best.len === 6 || (best.len === 5 && words[5] === 0xffff))) {
      out += [...gid.subarray(12, 16)].join('.')
      return out
    }
    out += words[i]!.toString(16)
  }
  if (best.base !== -1 && best.base + best.len === 8) out += ':'
  return out
}

/** Reads exactly `n` bytes (or what came before the peer closed, if `orLess`). */
function readBytes(socket: net.Socket, n: number, what: string, orLess = false): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let have = 0
    const done = (err: Error | null, value?: Buffer): void => {
      socket.off('data', onData)
      socket.off('end', onEnd)
      socket.off('error', onError)
      socket.pause()
      if (err !== null) reject(err)
      else resolve(value!)
    }
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
      have += chunk.length
      if (have < n) return
      const all = Buffer.concat(chunks)
      if (all.length > n) socket.unshift(all.subarray(n))
      done(null, all.subarray(0, n))
    }
    const onEnd = (): void => (orLess ? done(null, Buffer.concat(chunks)) : done(new Error(`${have}/${n}: Couldn't read ${what} (the peer closed the connection)`)))
    const onError = (err: Error): void => done(err)
    socket.on('data', onData)
    socket.once('end', onEnd)
    socket.once('error', onError)
    socket.resume()
  })
}

function writeAll(socket: net.Socket, bytes: Buffer): Promise<void> {
  return new Promise((resolve, reject) => socket.write(bytes, (err) => (err ? reject(err) : resolve())))
}

/** IPv4 peers of a dual-stack socket show up as ::ffff:a.b.c.d: give the plain address. */
export function unmapAddress(address: string | undefined): string {
  const a = address ?? ''
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(a) ? a.slice(7) : a
}

/** The client side (pp_client_exch_dest): connect, send ours, read theirs, send "done". */
export async function clientExchange(
  host: string,
  port: number,
  local: (tcpLocalAddress: string) => Promise<PingpongDest>,
): Promise<{ remote: PingpongDest; tcpLocalAddress: string }> {
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ host, port })
    s.once('connect', () => {
      s.off('error', reject)
      resolve(s)
    })
    s.once('error', (err) => reject(Object.assign(new Error(`Couldn't connect to ${host}:${port} (${err.message})`), { code: (err as NodeJS.ErrnoException).code })))
  })
  try {
    const tcpLocalAddress = unmapAddress(socket.localAddress)
    await writeAll(socket, encodeDest(await local(tcpLocalAddress)))
    const remote = decodeDest(await readBytes(socket, MESSAGE_BYTES, 'remote address'))
    await writeAll(socket, DONE)
    return { remote, tcpLocalAddress }
  } finally {
    socket.end()
    socket.resume() // read the peer's FIN so the socket closes
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
  const server = net.createServer({ pauseOnConnect: true })
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve))
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(Object.assign(new Error(`Couldn't listen to port ${port} (${err.message})`), { code: (err as NodeJS.ErrnoException).code })))
    server.listen({ port, backlog: 1 }, () => resolve())
  })
  onListening?.((server.address() as net.AddressInfo).port)
  const socket = await accepted
  server.close()
  try {
    const tcpLocalAddress = unmapAddress(socket.localAddress)
    const remote = decodeDest(await readBytes(socket, MESSAGE_BYTES, 'remote address'))
    const local = await connect(remote, tcpLocalAddress)
    await writeAll(socket, encodeDest(local))
    const done = await readBytes(socket, DONE_BYTES, '"done"', true)
    if (done.length !== DONE_BYTES) throw new Error("Couldn't send/recv local address")
    return { remote, tcpLocalAddress }
  } finally {
    socket.end()
    socket.resume() // read the peer's FIN so the socket closes
  }
}
