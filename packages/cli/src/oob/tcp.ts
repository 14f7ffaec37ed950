/**
 * The plain TCP connection the out-of-band exchanges of rdma-core's examples and perftest run
 * over: one client that connects, one server that accepts a single connection on every address
 * (IPv4 and IPv6), and exact-length reads that fail, never hang, when the peer closes or goes
 * silent past a deadline.
 */
import net from 'node:net'

/** A failure of the TCP exchange itself (connect, listen, read, write, deadline). */
export class OobError extends Error {
  override readonly name = 'OobError'
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

/**
 * Reads exactly `n` bytes (or what came before the peer closed, if `orLess`). With `timeoutMs`,
 * rejects with ERR_OOB_TIMEOUT when they have not all come by then.
 */
export function readBytes(socket: net.Socket, n: number, what: string, orLess = false, timeoutMs?: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let have = 0
    const timer = timeoutMs === undefined ? null : setTimeout(() => done(new OobError('ERR_OOB_TIMEOUT', `${have}/${n}: Couldn't read ${what}: nothing more from the peer in ${timeoutMs / 1000} s`)), timeoutMs)
    const done = (err: Error | null, value?: Buffer): void => {
      if (timer !== null) clearTimeout(timer)
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
      done(null, all.subarray(0, n)) // stops listening first: unshift may emit 'data' at once
      if (all.length > n) socket.unshift(all.subarray(n))
    }
    const onEnd = (): void => (orLess ? done(null, Buffer.concat(chunks)) : done(new OobError('ERR_OOB_CLOSED', `${have}/${n}: Couldn't read ${what} (the peer closed the connection)`)))
    const onError = (err: Error): void => done(err)
    socket.on('data', onData)
    socket.once('end', onEnd)
    socket.once('error', onError)
    socket.resume()
  })
}

export function writeAll(socket: net.Socket, bytes: Buffer): Promise<void> {
  return new Promise((resolve, reject) => socket.write(bytes, (err) => (err ? reject(err) : resolve())))
}

/** IPv4 peers of a dual-stack socket show up as ::ffff:a.b.c.d: give the plain address. */
export function unmapAddress(address: string | undefined): string {
  const a = address ?? ''
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(a) ? a.slice(7) : a
}

/** Connects to host:port (Nagle off: the exchanges are small request/answer messages). */
export function connectTcp(host: string, port: number): Promise<net.Socket> {
  return new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ host, port, noDelay: true })
    s.once('connect', () => {
      s.off('error', reject)
      resolve(s)
    })
    s.once('error', (err) => reject(Object.assign(new Error(`Couldn't connect to ${host}:${port} (${err.message})`), { code: (err as NodeJS.ErrnoException).code })))
  })
}

/** Listens on `port` (every address), accepts one connection, stops listening. */
export async function acceptOne(port: number, onListening?: (port: number) => void): Promise<net.Socket> {
  const server = net.createServer({ pauseOnConnect: true, noDelay: true })
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve))
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(Object.assign(new Error(`Couldn't listen to port ${port} (${err.message})`), { code: (err as NodeJS.ErrnoException).code })))
    server.listen({ port, backlog: 1 }, () => resolve())
  })
  onListening?.((server.address() as net.AddressInfo).port)
  const socket = await accepted
  server.close()
  return socket
}

/**
 * Half-closes and drains what the peer still sends up to its FIN, so the socket goes away without
 * a reset (closing with unread bytes would send one); a peer that never closes is cut off after
 * `lingerMs`.
 */
export function finish(socket: net.Socket, lingerMs = 5000): void {
  socket.end()
  socket.resume()
  socket.setTimeout(lingerMs, () => socket.destroy())
}
