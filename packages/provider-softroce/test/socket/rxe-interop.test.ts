// The socket options against the real thing: the Linux kernel's soft-RoCE (rdma_rxe) in the
// rxe-vm guest (tools/rxe-vm), over the --tap netns. rc_peer in the guest owns an RC QP and a
// buffer; this test sends hand-built RoCEv2 packets from sockets made by openRoceSocket inside
// the netns, and checks rxe's answers and rc_peer's buffer byte for byte.
//  IPv4: the same datagram is dropped by rxe when a plain socket sends it (kernel-chosen IP ID,
//        bad ICRC) and accepted (ACK, data in the buffer) from the native socket (IP ID 0).
//  IPv6: rxe's ACKs (UDP checksum 0) reach the native socket; a plain socket's kernel drops them.
// Needs root and QEMU (installed by ensureBuilt()); RDMA_SESSION_RXE_VM=off skips it.
import { createHash, randomBytes } from 'node:crypto'
import type { Socket } from 'node:dgram'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RcPeerClient, TAP, ensureBuilt, hostSupport, startGuest, type Guest } from '../../../../tools/rxe-vm/index.mjs'
import { environmentSkip } from '../../../../tools/test-env.mjs'
import { openRoceSocket, type RoceSocket } from '../../src/socket/roce-socket.js'
import { ensureAddonBuilt, snmp6 } from './helpers.js'
import { Op, ROCE_PORT, buildPacket, gidOf, icrc, parsePacket, type ParsedPacket } from './roce-packet.js'

const support = hostSupport()
const off = /^(0|off|false|no)$/i.test(process.env.RDMA_SESSION_RXE_VM ?? '')
const skipWhy = environmentSkip('softroce socket <-> kernel rxe', off ? 'RDMA_SESSION_RXE_VM=off' : support.ok ? '' : support.reasons.join('; '))

const MY_QPN = 0x0c0ffe
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

/** Send `datagram` (re-sending every 250 ms) until a packet matching `want` arrives or `ms` pass. */
async function exchange(sock: Socket, datagram: Buffer, to: string, want: (p: ParsedPacket, from: { address: string; port: number }, raw: Buffer) => boolean, ms = 10_000) {
  return new Promise<{ packet: ParsedPacket; from: { address: string; port: number }; raw: Buffer } | undefined>((resolve) => {
    const onMessage = (raw: Buffer, rinfo: { address: string; port: number }): void => {
      const packet = parsePacket(raw)
      if (packet.dqpn === MY_QPN && want(packet, rinfo, raw)) finish({ packet, from: rinfo, raw })
    }
    const finish = (r: Parameters<typeof resolve>[0]): void => {
      clearInterval(timer)
      clearTimeout(stop)
      sock.off('message', onMessage)
      resolve(r)
    }
    sock.on('message', onMessage)
    const tx = (): void => sock.send(datagram, ROCE_PORT, to)
    const timer = setInterval(tx, 250)
    const stop = setTimeout(() => finish(undefined), ms)
    tx()
  })
}

/** In the netns, send `datagram` from a plain node:dgram socket (what openRoceSocket falls back to). */
async function sendFromPlainSocket(guest: Guest, family: 4 | 6, local: string, remote: string, datagram: Buffer, waitMs: number) {
  const script = `
    const dgram = require('node:dgram'); const [fam, local, remote, hex, wait] = process.argv.slice(1)
    const s = dgram.createSocket({ type: fam === '4' ? 'udp4' : 'udp6', ipv6Only: fam === '6' })
    let received = 0
    s.on('message', () => received++)
    s.bind(${ROCE_PORT}, local, () => {
      const d = Buffer.from(hex, 'hex'); let n = 0
      const t = setInterval(() => { s.send(d, ${ROCE_PORT}, remote); if (++n === 3) clearInterval(t) }, 100)
      setTimeout(() => { console.log(JSON.stringify({ sent: n, received })); s.close() }, Number(wait))
    })`
  const child = guest.spawn(process.execPath, ['-e', script, String(family), local, remote, datagram.toString('hex'), String(waitMs)], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
  await new Promise((r) => child.on('close', r))
  return JSON.parse(out) as { sent: number; received: number }
}

describe.skipIf(Boolean(skipWhy))('openRoceSocket <-> kernel rxe (rxe-vm guest over --tap)', () => {
  let guest: Guest
  let v4peer: RcPeerClient
  let v6peer: RcPeerClient
  const sockets: RoceSocket[] = []

  beforeAll(async () => {
    ensureAddonBuilt()
    const built = await ensureBuilt()
    console.log(`rxe-vm ensureBuilt: ${built.ms} ms`)
    const t0 = Date.now()
    guest = await startGuest({ command: 'rc_peer -l 18600 -g 1 & rc_peer -l 18601 -g 2 & wait', timeoutMs: 300_000 })
    await guest.ready
    console.log(`rxe-vm guest ready after ${Date.now() - t0} ms (netns ${guest.netns})`)
    v4peer = await RcPeerClient.open(await guest.connect(18600), { timeoutMs: 60_000 })
    v6peer = await RcPeerClient.open(await guest.connect(18601), { timeoutMs: 60_000 })
  }, 600_000)

  afterAll(async () => {
    for (const s of sockets) s.socket.close()
    await v4peer?.quit().catch(() => {})
    await v6peer?.quit().catch(() => {})
    if (guest) {
      const r = await Promise.race([guest.exited, new Promise((r) => setTimeout(r, 10_000))])
      if (r === undefined) await guest.kill()
    }
  }, 60_000)

  it('IPv4: the same RDMA WRITE is dropped from a plain socket and accepted from the native one', async () => {
    const psn = 0x001000
    expect(await v4peer.connectQp({ qpn: MY_QPN, psn, gid: gidOf(TAP.hostIpv4), mtu: 1024 })).toBe('state=RTS')
    const data = randomBytes(1024)
    const write = buildPacket({
      src: TAP.hostIpv4, dst: TAP.guestIpv4, sport: ROCE_PORT, opcode: Op.RDMA_WRITE_ONLY, dqpn: v4peer.hello.qpn, psn, ackReq: true,
      reth: { va: v4peer.hello.addr + 4096n, rkey: v4peer.hello.rkey, length: data.length }, payload: data,
    })
    const before = await v4peer.counters()

    // 1. A plain dgram socket: the kernel picks the IP ID, the ICRC (computed for ID 0) fails.
    const plain = await sendFromPlainSocket(guest, 4, TAP.hostIpv4, TAP.guestIpv4, write, 1500)
    expect(plain).toEqual({ sent: 3, received: 0 })
    expect((await v4peer.counters()).rcvd_pkts).toBe(before.rcvd_pkts)
    expect(await v4peer.sha256(4096, 1024)).toBe(sha256(Buffer.alloc(1024)))

    // 2. The native socket, the same bytes: rxe ACKs and the data is in rc_peer's buffer.
    const s = await openRoceSocket({ family: 4, address: TAP.hostIpv4, port: ROCE_PORT, netns: guest.netns! })
    sockets.push(s)
    expect(s).toMatchObject({ helper: 'native', interop: { pmtudiscDo: true, wireCompatible: true } })
    const ack = await exchange(s.socket, write, TAP.guestIpv4, (p) => p.opcode === Op.ACK && p.psn === psn)
    expect(ack, 'rxe ACKed the WRITE').toBeDefined()
    expect(ack!.packet.syndrome! & 0xe0).toBe(0) // ACK, not NAK
    expect(await v4peer.sha256(4096, 1024)).toBe(sha256(data))
    // rxe counts the packet after its ICRC check; hw_counters are refreshed lazily, so wait for it.
    const after = await v4peer.waitForCounters((c) => c.rcvd_pkts > before.rcvd_pkts)
    expect(after.rcvd_pkts).toBeGreaterThan(before.rcvd_pkts)

    // 3. RDMA READ back through the same socket: rxe's response carries the bytes.
    const read = buildPacket({
      src: TAP.hostIpv4, dst: TAP.guestIpv4, sport: ROCE_PORT, opcode: Op.RDMA_READ_REQUEST, dqpn: v4peer.hello.qpn, psn: psn + 1, ackReq: true,
      reth: { va: v4peer.hello.addr + 4096n + 100n, rkey: v4peer.hello.rkey, length: 512 },
    })
    const resp = await exchange(s.socket, read, TAP.guestIpv4, (p) => p.opcode === Op.RDMA_READ_RESPONSE_ONLY && p.psn === psn + 1)
    expect(resp, 'rxe answered the READ').toBeDefined()
    expect(resp!.packet.payload).toEqual(data.subarray(100, 612))
  }, 60_000)

  it('IPv6: rxe\'s zero-checksum ACKs reach the native socket; a plain socket\'s kernel drops them', async () => {
    const psn = 0x002000
    expect(await v6peer.connectQp({ qpn: MY_QPN, psn, gid: gidOf(TAP.hostIpv6), mtu: 1024 })).toBe('state=RTS')
    const packet = (n: number, data: Buffer): Buffer => buildPacket({
      src: TAP.hostIpv6, dst: TAP.guestIpv6, sport: ROCE_PORT, opcode: Op.RDMA_WRITE_ONLY, dqpn: v6peer.hello.qpn, psn: psn + n, ackReq: true,
      reth: { va: v6peer.hello.addr + BigInt(n * 1024), rkey: v6peer.hello.rkey, length: data.length }, payload: data,
    })

    // 1. Plain socket: IPv6 sending needs nothing, so rxe takes the WRITE, but its ACK
    //    (UDP checksum 0) never reaches the socket: the netns kernel counts a checksum error.
    const first = randomBytes(256)
    const csumBefore = snmp6('Udp6InCsumErrors', guest.netns!)
    const plain = await sendFromPlainSocket(guest, 6, TAP.hostIpv6, TAP.guestIpv6, packet(0, first), 1500)
    expect(plain).toEqual({ sent: 3, received: 0 })
    // (TCG guests can be slow under load: poll rather than expect it at once)
    await expect.poll(() => snmp6('Udp6InCsumErrors', guest.netns!) - csumBefore, { timeout: 10_000 }).toBeGreaterThanOrEqual(1)
    expect(await v6peer.dump(0, 256)).toEqual(first)

    // 2. Native socket: the ACK arrives, and its ICRC checks out over the IPv6 pseudo header.
    const s = await openRoceSocket({ family: 6, address: TAP.hostIpv6, port: ROCE_PORT, netns: guest.netns! })
    sockets.push(s)
    expect(s).toMatchObject({ helper: 'native', interop: { noCheck6Rx: true, wireCompatible: true } })
    const second = randomBytes(1024)
    const ack = await exchange(s.socket, packet(1, second), TAP.guestIpv6, (p) => p.opcode === Op.ACK && p.psn === psn + 1)
    expect(ack, 'the ACK for the second WRITE arrived').toBeDefined()
    expect(ack!.from.address).toBe(TAP.guestIpv6)
    expect(icrc(TAP.guestIpv6, TAP.hostIpv6, ack!.from.port, ROCE_PORT, ack!.raw.subarray(0, -4))).toBe(ack!.packet.icrc)
    expect(await v6peer.sha256(1024, 1024)).toBe(sha256(second))
  }, 60_000)
})
