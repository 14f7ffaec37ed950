// The native receive path (NativeDatagramSocket over the helper's recvmmsg), through a real
// device and real UDP, and its batch decoding and full-queue handling against a scripted binding.
import dgram from 'node:dgram'
import { closeSync } from 'node:fs'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createContext, type Context } from '@rdma-session/core'
import { softroce, type SoftRoceDevice } from '../../src/index.js'
import { MAX_DATAGRAM_BYTES, NativeDatagramSocket, RECEIVE_META, RECEIVE_SLOT_BYTES, RECEIVE_SLOTS } from '../../src/socket/native-datagram.js'
import { RECEIVE_DISABLE_ENV, type RoceReceiveAddon, type RoceSockoptAddon } from '../../src/socket/sockopt-addon.js'
import { ensureAddonBuilt } from './helpers.js'

beforeAll(() => {
  const state = ensureAddonBuilt()
  if (!state.loaded) throw new Error(state.why)
}, 200_000)

const contexts: Context[] = []
const sockets: dgram.Socket[] = []
afterEach(async () => {
  for (const s of sockets.splice(0)) s.close()
  for (const c of contexts.splice(0)) await c.close()
  delete process.env[RECEIVE_DISABLE_ENV]
})

async function open(): Promise<{ ctx: Context; device: SoftRoceDevice }> {
  const ctx = await createContext({ provider: softroce({ port: 0 }) })
  contexts.push(ctx)
  return { ctx, device: ctx.device as unknown as SoftRoceDevice }
}

async function plainSocket(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4')
  sockets.push(s)
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve))
  return s
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 5000
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

describe('native receive path, real sockets', () => {
  it('is what a device uses when the helper has it; an RC SEND crosses it both ways', async () => {
    const a = await open()
    const b = await open()
    expect(a.device.diagnostics.receivePath).toBe('native')
    expect(a.device.diagnostics.sendPath).toBe('native')
    expect(a.device.diagnostics.receivePathReason).toBeUndefined()
    const [qa, qb] = [a.ctx.createQp(), b.ctx.createQp()]
    for (const q of [qa, qb]) q.modify({ state: 'INIT', accessFlags: 15, portNum: 1, pkeyIndex: 0 })
    qa.modify({ state: 'RTR', remote: b.ctx.endpoint, pathMtu: 1024, destQpn: qb.qpn, rqPsn: qb.localPsn, maxDestRdAtomic: 4, minRnrTimer: 1 })
    qb.modify({ state: 'RTR', remote: a.ctx.endpoint, pathMtu: 1024, destQpn: qa.qpn, rqPsn: qa.localPsn, maxDestRdAtomic: 4, minRnrTimer: 1 })
    for (const q of [qa, qb]) q.modify({ state: 'RTS', sqPsn: q.localPsn, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 4 })
    const ma = a.ctx.registerMemory(Buffer.alloc(8192), { access: ['local-write'] })
    const mb = b.ctx.registerMemory(Buffer.alloc(8192), { access: ['local-write'] })
    ma.bytes.fill(7, 0, 3000)
    const got = qb.recv(mb.slice(0, 4096))
    await qa.send(ma.slice(0, 3000)) // 3 packets at MTU 1024
    expect((await got).byteLen).toBe(3000)
    expect(mb.bytes.subarray(0, 3000).every((x) => x === 7)).toBe(true)
    for (const q of [qa, qb]) q.close()
  })

  it('takes a burst larger than several batches and counts every datagram and byte; oversized ones are dropped as malformed', async () => {
    const { device } = await open()
    const s = await plainSocket()
    const base = device.counters.snapshot()
    const n = RECEIVE_SLOTS * 9 + 5
    // 8-byte datagrams are shorter than a BTH + ICRC: malformed before any other check.
    for (let i = 0; i < n; i++) s.send(Buffer.alloc(8, i), device.info.port, '127.0.0.1')
    s.send(Buffer.alloc(MAX_DATAGRAM_BYTES + 100, 1), device.info.port, '127.0.0.1')
    await until(() => device.counters.packetsReceived - base.packetsReceived === n + 1, `${n + 1} datagrams`)
    const c = device.counters.snapshot()
    expect(c.drops.malformed - base.drops.malformed).toBe(n + 1)
    expect(c.bytesReceived - base.bytesReceived).toBe(n * 8 + MAX_DATAGRAM_BYTES + 100)
    expect(c.drops.badIcrc - base.drops.badIcrc).toBe(0)
    expect(c.receiveErrors).toBe(0)
  })

  it('an adopted socket of the other family is refused with a clear error', async () => {
    const state = ensureAddonBuilt()
    if (!state.loaded) throw new Error(state.why)
    const fd = state.addon.createUdpSocket({ family: 6, address: '::1', port: 0 })
    try {
      await expect(createContext({ provider: softroce({ address: '127.0.0.1', socket: { fd, pmtudiscDo: true } }) })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('IPv6') })
    } finally {
      closeSync(fd)
    }
  })

  it(`${RECEIVE_DISABLE_ENV}=0 keeps node:dgram and says why`, async () => {
    process.env[RECEIVE_DISABLE_ENV] = '0'
    const { device } = await open()
    expect(device.diagnostics.receivePath).toBe('dgram')
    expect(device.diagnostics.receivePathReason).toContain(RECEIVE_DISABLE_ENV)
    expect(device.diagnostics.sendPath).toBe('native')
  })
})

/** A scripted binding: sendTo answers from `results` (then sends), the receiver's callbacks are kept. */
function scripted(results: number[]) {
  const sent: Buffer[] = []
  let armed = 0
  let closed = 0
  let cb: { slab: Buffer; meta: Int32Array; onBatch: (n: number) => void; onWritable: () => void; onClosed: () => void } | null = null
  const addon = {
    createUdpSocket: () => 99,
    querySocket: () => ({ family: 4 as const }),
    makeSockaddr: () => Buffer.alloc(16),
    sendTo: (_fd: number, data: Uint8Array | readonly Uint8Array[]) => {
      const r = results.shift()
      if (r !== undefined && r < 0) return r
      const b = Buffer.concat(data instanceof Uint8Array ? [data] : [...data])
      sent.push(b)
      return b.length
    },
    openReceiver: (_fd: number, slab: Buffer, meta: Int32Array, _slot: number, onBatch: (n: number) => void, onWritable: () => void, onClosed: () => void) => {
      cb = { slab, meta, onBatch, onWritable, onClosed }
      return {}
    },
    armWritable: () => void armed++,
    closeReceiver: () => {
      closed++
      cb!.onClosed()
    },
    socketAddress: () => ({ address: '127.0.0.1', port: 4791 }),
    setBufferSizes: () => 0,
  } satisfies Required<RoceSockoptAddon> & RoceReceiveAddon
  return { addon, sent, armed: () => armed, closed: () => closed, cb: () => cb! }
}

function events() {
  const log: { datagram?: string; address?: string; port?: number; error?: number; oversized?: number; sendError?: number }[] = []
  const views: Buffer[] = []
  return {
    log,
    views,
    ev: {
      onDatagram: (d: Buffer, address: string, port: number) => {
        views.push(d)
        log.push({ datagram: d.toString('hex'), address, port })
      },
      onReceiveError: (error: number) => log.push({ error }),
      onOversized: (oversized: number) => log.push({ oversized }),
      onSendError: (sendError: number) => log.push({ sendError }),
    },
  }
}

describe('NativeDatagramSocket against a scripted binding', () => {
  const EAGAIN = -11

  it('decodes a batch: each datagram is its slot view, with the source address as text', () => {
    const s = scripted([])
    const sock = new NativeDatagramSocket(s.addon, 99, 6)
    const { log, views, ev } = events()
    sock.start(ev)
    const { slab, meta, onBatch } = s.cb()
    const put = (i: number, bytes: number[], port: number, family: number, words: number[]) => {
      slab.set(bytes, i * RECEIVE_SLOT_BYTES)
      meta.set([bytes.length, port, family, ...words, 0, 0, 0, 0].slice(0, 7).concat([i * RECEIVE_SLOT_BYTES]), i * RECEIVE_META)
    }
    put(0, [1, 2], 4791, 4, [(127 << 24) | 1])
    put(1, [3], 1000, 6, [0xfd990000 | 0, 0, 0, 1])
    put(2, [4], 1001, 6, [0, 0, 0, 1])
    put(3, [5], 1002, 6, [0x20010db8 | 0, 0x00000001, 0, 1])
    put(4, [6], 1003, 6, [0x00010000, 0x00000002, 0, 3])
    put(5, [7], 1004, 6, [0, 0, 0, 0])
    put(6, [8], 1005, 6, [0, 0, 0xffff, (10 << 24) | 1])
    meta.set([-9000], 7 * RECEIVE_META)
    onBatch(8)
    onBatch(-104)
    expect(log).toEqual([
      { datagram: '0102', address: '127.0.0.1', port: 4791 },
      { datagram: '03', address: 'fd99::1', port: 1000 },
      { datagram: '04', address: '::1', port: 1001 },
      { datagram: '05', address: '2001:db8:0:1::1', port: 1002 },
      { datagram: '06', address: '1:0:0:2::3', port: 1003 },
      { datagram: '07', address: '::', port: 1004 },
      { datagram: '08', address: '::ffff:10.0.0.1', port: 1005 },
      { oversized: 9000 },
      { error: 104 },
    ])
    // Views into the slab, not copies: slot i starts at i * RECEIVE_SLOT_BYTES.
    views.forEach((v, i) => {
      expect(v.buffer).toBe(slab.buffer)
      expect(v.byteOffset - slab.byteOffset).toBe(i * RECEIVE_SLOT_BYTES)
    })
  })

  it('a full kernel queue: the datagram is copied and waits, later ones queue behind it, all leave in order once writable', () => {
    const s = scripted([EAGAIN, EAGAIN])
    const sock = new NativeDatagramSocket(s.addon, 99, 4)
    const { log, ev } = events()
    sock.start(ev)
    const target = sock.sender.target('127.0.0.1', 4791, 0, 0)
    const first = Buffer.from('aa', 'hex')
    expect(sock.send(first, target)).toBe(false)
    first[0] = 0xff // the caller reuses its buffer: the queued copy keeps what was sent
    expect(sock.send([Buffer.from('bb', 'hex'), Buffer.from('cc', 'hex')], target)).toBe(false)
    expect(sock.queued).toBe(2)
    expect(s.armed()).toBe(1)
    expect(s.sent).toEqual([])
    s.cb().onWritable() // the first retry finds the queue still full
    expect(s.armed()).toBe(2)
    expect(sock.queued).toBe(2)
    s.cb().onWritable()
    expect(s.sent.map((b) => b.toString('hex'))).toEqual(['aa', 'bbcc'])
    expect(sock.queued).toBe(0)
    expect(sock.send(Buffer.from('dd', 'hex'), target)).toBe(true)
    expect(s.sent.at(-1)!.toString('hex')).toBe('dd')
    expect(log).toEqual([])
  })

  it('another send error drops the datagram and reports it; close drops the queue and closes once', async () => {
    const s = scripted([-90, EAGAIN])
    const sock = new NativeDatagramSocket(s.addon, 99, 4)
    const { log, ev } = events()
    sock.start(ev)
    const target = sock.sender.target('127.0.0.1', 4791, 0, 0)
    expect(sock.send(Buffer.from('01', 'hex'), target)).toBe(true)
    expect(log).toEqual([{ sendError: 90 }])
    expect(sock.send(Buffer.from('02', 'hex'), target)).toBe(false)
    const closing = sock.close()
    expect(sock.close()).toBe(closing)
    await closing
    expect(s.closed()).toBe(1)
    expect(sock.queued).toBe(0)
    expect(sock.send(Buffer.from('03', 'hex'), target)).toBe(true) // after close: nothing is sent
    expect(s.sent).toEqual([])
  })
})
