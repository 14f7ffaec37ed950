// rc-peer-client.mjs - the host side of rc_peer's line protocol (see README.md "rc_peer"): one
// request line, one reply line, in order. Works on any duplex stream (guest.connect(), net.Socket).
import { createInterface } from 'node:readline'

/** An ERR reply of rc_peer. `reply` is the text after "ERR ", `status` the ibv_wc_status_str if any. */
export class RcPeerError extends Error {
  constructor(request, reply) {
    super(`rc_peer: ${request.split(' ')[0]} failed: ${reply}`)
    this.name = 'RcPeerError'
    this.code = 'RC_PEER_ERR'
    this.request = request
    this.reply = reply
    this.status = /status=(.+?) wc_status=/.exec(reply)?.[1]
  }
}

/** Parse "k=v k=v ..." into an object of strings. */
export function parseFields(text) {
  const out = {}
  for (const tok of text.trim().split(/\s+/)) {
    const i = tok.indexOf('=')
    if (i > 0) out[tok.slice(0, i)] = tok.slice(i + 1)
  }
  return out
}

const hex = (v, digits) => `0x${BigInt(v).toString(16).padStart(digits, '0')}`

export class RcPeerClient {
  /**
   * Wait for rc_peer's greeting on `stream` and return a client.
   * `hello`: { dev, port, gidIndex, gid (Buffer, 16), qpn, psn, rkey, addr (bigint), len, mtu }.
   */
  static async open(stream, { timeoutMs = 30000 } = {}) {
    const client = new RcPeerClient(stream)
    const line = await client.#next(timeoutMs, 'greeting')
    if (!line.startsWith('RC_PEER ')) throw new Error(`rc_peer: unexpected greeting ${JSON.stringify(line)}`)
    const f = parseFields(line.slice(8))
    client.hello = {
      version: Number(f.v),
      dev: f.dev,
      port: Number(f.port),
      gidIndex: Number(f.gid_index),
      gid: Buffer.from(f.gid, 'hex'),
      qpn: Number(f.qpn),
      psn: Number(f.psn),
      rkey: Number(f.rkey),
      addr: BigInt(f.addr),
      len: Number(f.len),
      mtu: Number(f.mtu),
    }
    return client
  }

  #lines = []
  #waiters = []
  #closed = false
  #quit = false
  #queue = Promise.resolve()

  constructor(stream) {
    this.stream = stream
    const rl = createInterface({ input: stream, crlfDelay: Infinity })
    rl.on('line', (l) => (this.#waiters.length ? this.#waiters.shift().resolve(l) : this.#lines.push(l)))
    rl.on('close', () => {
      this.#closed = true
      for (const w of this.#waiters.splice(0)) w.reject(new Error('rc_peer: connection closed'))
    })
    stream.on('error', () => {})
  }

  #next(timeoutMs, what) {
    if (this.#lines.length) return Promise.resolve(this.#lines.shift())
    if (this.#closed) return Promise.reject(new Error('rc_peer: connection closed'))
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`rc_peer: no ${what} within ${timeoutMs} ms`)), timeoutMs)
      this.#waiters.push({
        resolve: (l) => (clearTimeout(t), resolve(l)),
        reject: (e) => (clearTimeout(t), reject(e)),
      })
    })
  }

  /** Send one command line; resolve with the text after "OK" (trimmed), reject with RcPeerError on ERR. */
  request(line, { timeoutMs = 30000 } = {}) {
    const run = async () => {
      this.stream.write(`${line}\n`)
      const reply = await this.#next(timeoutMs, `reply to ${line.split(' ')[0]}`)
      if (reply === 'OK' || reply.startsWith('OK ')) return reply.slice(3)
      throw new RcPeerError(line, reply.startsWith('ERR ') ? reply.slice(4) : reply)
    }
    const p = this.#queue.then(run, run)
    this.#queue = p.catch(() => {})
    return p
  }

  /**
   * Connect rc_peer's QP to ours (INIT -> RTR -> RTS). `gid`: Buffer(16) or 32 hex digits.
   * Optional: rkey, addr, len (our MR, the target of rc_peer's WRITE/READ/atomics), mtu, timeout,
   * retry, rnrRetry, rdAtomic, sl, tclass, hopLimit, flowLabel.
   */
  async connectQp(p) {
    const gid = Buffer.isBuffer(p.gid) ? p.gid.toString('hex') : p.gid
    const opt = { rkey: p.rkey, addr: p.addr, len: p.len, mtu: p.mtu, timeout: p.timeout, retry: p.retry,
      rnr_retry: p.rnrRetry, rd_atomic: p.rdAtomic, sl: p.sl, tclass: p.tclass, hop_limit: p.hopLimit, flow_label: p.flowLabel }
    const extra = Object.entries(opt).filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${k === 'addr' ? hex(v, 16) : String(v)}`)
    return this.request(`PEER qpn=${hex(p.qpn, 6)} psn=${hex(p.psn, 6)} gid=${gid} ${extra.join(' ')}`.trim())
  }

  info() { return this.request('INFO').then(parseFields) }
  fill(off, len, byte) { return this.request(`FILL ${off} ${len} ${byte}`) }
  set(off, bytes) { return this.request(`SET ${off} ${Buffer.from(bytes).toString('hex')}`) }
  async dump(off = 0, len = this.hello.len) { return Buffer.from(await this.request(`DUMP ${off} ${len}`), 'hex') }
  sha256(off = 0, len = this.hello.len) { return this.request(`SHA256 ${off} ${len}`) }
  write(loff, roff, len, opts) { return this.request(`WRITE ${loff} ${roff} ${len}${fmtOpts(opts)}`) }
  read(loff, roff, len, opts) { return this.request(`READ ${loff} ${roff} ${len}${fmtOpts(opts)}`) }
  send(loff, len, opts) { return this.request(`SEND ${loff} ${len}${fmtOpts(opts)}`) }
  recv(loff, len) { return this.request(`RECV ${loff} ${len}`) }
  async waitRecv(timeoutMs) {
    const f = parseFields(await this.request(`WAIT_RECV${timeoutMs === undefined ? '' : ` ${timeoutMs}`}`))
    return { opcode: f.opcode, len: Number(f.len), loff: Number(f.loff), imm: f.imm === undefined ? undefined : Number(f.imm) }
  }
  /** CMP_SWAP: resolves with the original remote value. */
  async cas(loff, roff, compare, swap, opts) {
    const f = parseFields(await this.request(`CAS ${loff} ${roff} ${hex(compare, 1)} ${hex(swap, 1)}${fmtOpts(opts)}`))
    return BigInt(f.old)
  }
  /** FETCH_ADD: resolves with the original remote value. */
  async fadd(loff, roff, add, opts) {
    return BigInt(parseFields(await this.request(`FADD ${loff} ${roff} ${hex(add, 1)}${fmtOpts(opts)}`)).old)
  }
  /** The device port's hw_counters (rcvd_pkts, sent_pkts, ...) as numbers. */
  async counters() {
    return Object.fromEntries(Object.entries(parseFields(await this.request('COUNTERS'))).map(([k, v]) => [k, Number(v)]))
  }
  /**
   * Poll counters() until `until(counters)` holds; resolves with them. The kernel refreshes
   * hw_counters lazily (a read may return a value cached a few ms earlier, longer in a slow TCG
   * guest), so a counter is asserted on by waiting for it, never by one read right after an event.
   * Rejects after `timeoutMs` (10 s) naming what was seen last.
   */
  async waitForCounters(until, { timeoutMs = 10_000, intervalMs = 100 } = {}) {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const c = await this.counters()
      if (until(c)) return c
      if (Date.now() >= deadline) throw new Error(`rc_peer counters did not reach the expected values within ${timeoutMs} ms; last seen: ${JSON.stringify(c)}`)
      await new Promise((r) => setTimeout(r, intervalMs))
    }
  }
  /** QUIT (rc_peer exits) and end the stream; a second call does nothing. */
  async quit() {
    if (this.#quit || this.#closed) return
    this.#quit = true
    try { await this.request('QUIT', { timeoutMs: 5000 }) } finally { this.stream.end?.() }
  }
}

function fmtOpts(opts = {}) {
  let s = ''
  if (opts.imm !== undefined) s += ` imm=${hex(opts.imm, 8)}`
  if (opts.rkey !== undefined) s += ` rkey=${hex(opts.rkey, 8)}`
  if (opts.raddr !== undefined) s += ` raddr=${hex(opts.raddr, 16)}`
  return s
}
