// rdma_cm between two softroce devices on loopback: REQ/REP/RTU, data over the connected RC QPs,
// DREQ/DREP, REJ (by the application, for a port nobody listens on), MRA while the application
// decides, and a timeout when nothing answers.
import dgram from 'node:dgram'
import { isRdmaError, type QueuePair } from '@rdma-session/core'
import { encodeCmMad, type CmMessage } from '../../src/cm/cm-messages.js'
import { encodeUdPacket } from '../../src/ud/ud-packet.js'
import { writeIcrc } from '../../src/wire/icrc.js'
import { createCm, type SoftRoceDevice } from '../../src/index.js'
import { afterEach, describe, expect, it } from 'vitest'
import { RejReason, type CmConnection } from '../../src/index.js'
import { FAST_CM, openCmPair, type CmPair } from './cm-pair.js'
import { pingData, rpingClient, rpingListenOptions, rpingServer } from './rping-peer.js'

let pair: CmPair | null = null
afterEach(async () => {
  await pair?.close()
  pair = null
})

async function exchange(p: CmPair, client: CmConnection, server: CmConnection): Promise<void> {
  const msg = Buffer.from('hello over rdma_cm')
  const rx = Buffer.alloc(64)
  const rxMr = p.b.registerMemory(rx, { access: ['local-write', 'remote-write'] })
  const recv = server.qp!.recv(rxMr.slice(0, 64))
  await client.qp!.send(msg)
  const wc = await recv
  expect(rx.subarray(0, wc.byteLen).toString()).toBe('hello over rdma_cm')
  const target = Buffer.alloc(32)
  const mr = p.a.registerMemory(target, { access: ['local-write', 'remote-write'] })
  await server.qp!.write(Buffer.from('written back'), mr.region())
  expect(target.subarray(0, 12).toString()).toBe('written back')
}

async function closeQp(qp: QueuePair | null): Promise<void> {
  await qp?.close()
}

describe('rdma_cm over loopback (softroce <-> softroce)', () => {
  it('ackTimeout: the active QP\'s ACK timeout, announced in the REQ and taken by the passive QP (default 14)', async () => {
    pair = await openCmPair()
    const p = pair
    const listener = p.cmB.listen({ port: 7479 })
    const accepted = listener.accept()
    const client = await p.cmA.connect({ host: '127.0.0.1', port: 7479, ackTimeout: 17 })
    const server = await accepted
    expect(client.req!.primary.localAckTimeout).toBe(17)
    expect(client.qp!.query().timeout).toBe(17)
    expect(server.qp!.query().timeout).toBe(17)
    const plainAccepted = listener.accept()
    const plain = await p.cmA.connect({ host: '127.0.0.1', port: 7479 })
    expect(plain.qp!.query().timeout).toBe(14)
    expect((await plainAccepted).qp!.query().timeout).toBe(14)
    await expect(p.cmA.connect({ host: '127.0.0.1', port: 7479, ackTimeout: 32 })).rejects.toThrow(/ackTimeout must be 1\.\.31/)
  })

  it('connects with private data both ways, moves data, and disconnects cleanly', async () => {
    pair = await openCmPair()
    const p = pair
    const listener = p.cmB.listen({ port: 7471, onRequest: (r) => ({ privateData: Buffer.from(`welcome ${Buffer.from(r.privateData.subarray(0, 5)).toString()}`) }) })
    const accepted = listener.accept()
    const client = await p.cmA.connect({ host: '127.0.0.1', port: 7471, privateData: Buffer.from('alice') })
    const server = await accepted
    expect(client.state).toBe('ESTABLISHED')
    expect(server.state).toBe('ESTABLISHED')
    expect(Buffer.from(client.privateData.subarray(0, 13)).toString()).toBe('welcome alice')
    expect(Buffer.from(server.privateData.subarray(0, 5)).toString()).toBe('alice')
    expect(server.remote).toEqual({ address: '127.0.0.1', port: client.local.port })
    expect(server.local).toEqual({ address: '127.0.0.1', port: 7471 })
    expect(client.qp!.state).toBe('RTS')
    expect(server.qp!.state).toBe('RTS')
    await exchange(p, client, server)

    await client.disconnect()
    expect(client.state).toBe('TIMEWAIT')
    expect(await server.disconnected).toMatchObject({ by: 'remote' })
    expect(server.qp!.state).toBe('ERR')
    const a = p.cmA.snapshot()
    const b = p.cmB.snapshot()
    // (a resend only when the host was too busy to answer within the ~260 ms wait)
    expect(a.sent.REQ + a.sent.DREQ).toBe(2 + a.retransmits)
    expect(a.sent.RTU).toBeGreaterThanOrEqual(1)
    expect(b.sent.REP).toBe(1 + b.retransmits)
    expect(b.sent.DREP).toBeGreaterThanOrEqual(1)
    for (const [s, other] of [[a, b], [b, a]] as const) {
      const { wrongState, ...rest } = s.drops
      expect(Object.values(rest).reduce((x, y) => x + y, 0)).toBe(0)
      expect(wrongState).toBeLessThanOrEqual(other.retransmits)
    }
    await Promise.all([closeQp(client.qp), closeQp(server.qp)])
    // TIMEWAIT ends and the connections are forgotten
    await expect.poll(() => p.cmA.connectionCount + p.cmB.connectionCount, { timeout: 5_000 }).toBe(0)
  })

  it('the passive side disconnects too', async () => {
    pair = await openCmPair()
    const p = pair
    const listener = p.cmB.listen({ port: 9000 })
    const accepted = listener.accept()
    const client = await p.cmA.connect({ host: '127.0.0.1', port: 9000 })
    const server = await accepted
    await server.disconnect(Buffer.from('bye'))
    const info = await client.disconnected
    expect(info.by).toBe('remote')
    expect(Buffer.from(info.privateData.subarray(0, 3)).toString()).toBe('bye')
    await Promise.all([closeQp(client.qp), closeQp(server.qp)])
  })

  it('a rejected request fails connect() with ERR_CONNECTION_REFUSED and the REJ private data', async () => {
    pair = await openCmPair()
    const p = pair
    p.cmB.listen({ port: 9001, onRequest: () => ({ reject: true, privateData: Buffer.from('go away') }) })
    const err = await p.cmA.connect({ host: '127.0.0.1', port: 9001 }).catch((e: unknown) => e)
    expect(isRdmaError(err, 'ERR_CONNECTION_REFUSED')).toBe(true)
    expect((err as { details: { rejReason: number; privateData: Uint8Array } }).details.rejReason).toBe(RejReason.CONSUMER_DEFINED)
    expect(Buffer.from((err as { details: { privateData: Uint8Array } }).details.privateData.subarray(0, 7)).toString()).toBe('go away')
    // no QP left behind on either side
    await expect.poll(() => p.a.handles.qps + p.b.handles.qps).toBe(0)
  })

  it('refuses oversized private data with clear errors, never a crash', async () => {
    pair = await openCmPair()
    const p = pair
    await expect(p.cmA.connect({ host: '127.0.0.1', port: 9005, privateData: new Uint8Array(57) })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await expect(p.cmA.connect({ host: 'localhost', port: 9005 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await expect(p.cmA.connect({ host: '::1', port: 9005 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect(() => p.cmB.listen({ port: 0 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    expect(() => createCm(p.a)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
    // an application answering with a REP private data too large for a REP: the request is rejected instead
    p.cmB.listen({ port: 9005, onRequest: () => ({ privateData: new Uint8Array(197) }) })
    const err = await p.cmA.connect({ host: '127.0.0.1', port: 9005 }).catch((e: unknown) => e)
    expect((err as { details: { rejReason: number } }).details.rejReason).toBe(RejReason.CONSUMER_DEFINED)
    const listener = p.cmB.listen({ port: 9006 })
    const accepted = listener.accept()
    const client = await p.cmA.connect({ host: '127.0.0.1', port: 9006 })
    const server = await accepted
    await expect(client.disconnect(new Uint8Array(221))).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    expect(client.state).toBe('ESTABLISHED')
    await client.disconnect()
    await Promise.all([closeQp(client.qp), closeQp(server.qp)])
  })

  it('a port nobody listens on gets REJ invalid service ID', async () => {
    pair = await openCmPair()
    const err = await pair.cmA.connect({ host: '127.0.0.1', port: 9002 }).catch((e: unknown) => e)
    expect((err as { details: { rejReason: number } }).details.rejReason).toBe(RejReason.INVALID_SERVICE_ID)
    expect(pair.cmB.snapshot().drops.noListener).toBe(1)
  })

  it('answers duplicate REQs with an MRA while the application decides, and still connects', async () => {
    pair = await openCmPair({ ...FAST_CM, maxRetries: 15 })
    const p = pair
    let release!: () => void
    const decided = new Promise<void>((r) => (release = r))
    const listener = p.cmB.listen({ port: 9003, onRequest: async () => { await decided } })
    const accepted = listener.accept()
    const connecting = p.cmA.connect({ host: '127.0.0.1', port: 9003 })
    await expect.poll(() => p.cmA.snapshot().received.MRA, { timeout: 5_000 }).toBeGreaterThan(0)
    release()
    const client = await connecting
    const server = await accepted
    expect(p.cmB.snapshot().sent.MRA).toBeGreaterThan(0)
    await exchange(p, client, server)
    await client.disconnect()
    await Promise.all([closeQp(client.qp), closeQp(server.qp)])
  })

  it('times out (then REJ timeout) when no CM answers', async () => {
    pair = await openCmPair()
    const p = pair
    ;(p.b.device as unknown as { impairment: { blackhole: boolean } }).impairment.blackhole = true
    const t0 = performance.now()
    const err = await p.cmA.connect({ host: '127.0.0.1', port: 9004 }).catch((e: unknown) => e)
    expect(isRdmaError(err, 'ERR_TIMEOUT')).toBe(true)
    const s = p.cmA.snapshot()
    expect(s.sent.REQ).toBe(1 + FAST_CM.maxRetries!)
    expect(s.sent.REJ).toBe(1)
    expect(performance.now() - t0).toBeGreaterThan(30)
    await expect.poll(() => p.a.handles.qps).toBe(0)
  })
})

describe('rping protocol over rdma_cm on loopback', () => {
  it('runs rping client and server (softroce both sides), data verified, clean disconnect', async () => {
    pair = await openCmPair()
    const p = pair
    const { options, state } = rpingListenOptions(p.b, 7474)
    const listener = p.cmB.listen(options)
    const served = rpingServer(listener, state)
    const client = await rpingClient(p.a, p.cmA, { host: '127.0.0.1', port: 7474, count: 5 })
    const server = await served
    expect(client).toMatchObject({ pings: 5, verified: 5, disconnect: 'local' })
    expect(server).toMatchObject({ pings: 5, disconnect: 'remote' })
    expect(client.lines[4]).toBe(`ping data: ${pingData(4, 64).subarray(0, 63).toString('latin1')}`)
    expect(server.lines[0]).toBe(`server ping data: ${pingData(0, 64).subarray(0, 63).toString('latin1')}`)
  })
})

describe('rdma_cm: IPv6 and out-of-state MADs', () => {
  it('connects over IPv6 (::1)', async () => {
    pair = await openCmPair(FAST_CM, '::1')
    const p = pair
    const { options, state } = rpingListenOptions(p.b, 7475)
    const served = rpingServer(p.cmB.listen(options), state)
    const client = await rpingClient(p.a, p.cmA, { host: '::1', port: 7475, count: 3 })
    expect(client).toMatchObject({ pings: 3, verified: 3, disconnect: 'local' })
    expect(await served).toMatchObject({ pings: 3, disconnect: 'remote' })
  })

  it('drops valid MADs that a connection\'s state does not expect (counted wrongState), and the connection lives on', async () => {
    pair = await openCmPair()
    const p = pair
    const listener = p.cmB.listen({ port: 9010 })
    const accepted = listener.accept()
    const client = await p.cmA.connect({ host: '127.0.0.1', port: 9010 })
    const server = await accepted
    const sock = dgram.createSocket('udp4')
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()))
    const da = p.a.device as SoftRoceDevice
    const to = (msg: CmMessage): void => {
      const d = encodeUdPacket({ destQpn: 1, psn: 0, pkey: 0xffff, qkey: 0x80010000, srcQpn: 1, solicited: false, payload: encodeCmMad(msg, 7n) })
      writeIcrc(d, d.length - 4, { family: 4, src: '127.0.0.1', dst: '127.0.0.1', srcPort: sock.address().port, dstPort: da.info.port, ipId: 0, df: true })
      sock.send(d, da.info.port, '127.0.0.1')
    }
    const ids = { localCommId: client.remoteCommId, remoteCommId: client.localCommId }
    const E = new Uint8Array(0)
    to({ type: 'MRA', ...ids, messageMraed: 0, serviceTimeout: 20, privateData: E }) // MRA after the REP
    to({ type: 'RTU', ...ids, privateData: E }) // the active side never gets an RTU
    to({ type: 'DREP', ...ids, privateData: E }) // no DREQ was sent
    to({ type: 'RTU', localCommId: 12345, remoteCommId: client.localCommId, privateData: E }) // the wrong peer ID
    await expect.poll(() => p.cmA.snapshot().drops.wrongState, { timeout: 5_000 }).toBe(3)
    await expect.poll(() => p.cmA.snapshot().drops.unknownCommId, { timeout: 5_000 }).toBe(1)
    sock.close()
    expect(client.state).toBe('ESTABLISHED')
    await exchange(p, client, server)
    await client.disconnect()
    await Promise.all([closeQp(client.qp), closeQp(server.qp)])
  })
})
