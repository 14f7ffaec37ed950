/**
 * `rdma-session perftest`: perftest's exchange messages byte for byte, the result table
 * arithmetic and format, the command line, every test between two softroce stacks on loopback
 * (the command against itself, both roles in one run), and a peer that garbles the exchange or
 * goes silent: an error with a code, never a hang.
 */
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { UsageError } from '../src/command.js'
import { parsePerftestArgs, perftestCommand } from '../src/commands/perftest.js'
import { addressLines, altHex, bwFigures, bwLine, latFigures, latLine } from '../src/perftest/report.js'
import { runPerftest, runSizes, type PerftestOptions, type PerftestResult } from '../src/perftest/run-perftest.js'
import {
  KEY_MSG_SIZE_GID, PINGPONG_DEST_BYTES, decodeBwReport, decodeKeys, decodeKeysBinary, decodeMtu, decodeVersion, encodeBwReport, encodeKeys, encodeKeysBinary,
  encodeMtu, encodeVersion, type PerftestDest,
} from '../src/perftest/wire.js'
import { addressToGid } from '../src/oob/gid.js'
import { freeRocePort, freeTcpPort } from './ports.js'
import { udpSocketDrops } from '../src/oob/udp-socket-drops.js'

const dest: PerftestDest = { lid: 0, outReads: 0x80, qpn: 0x11, psn: 0x8ac5a9, rkey: 0x1ed, vaddr: 0x5563f55e5000, gid: addressToGid('10.77.0.2'), srqn: 0 }

describe('perftest exchange messages', () => {
  it('QP keys are KEY_PRINT_FMT_GID, 108 bytes with the NUL, and parse back', () => {
    const msg = encodeKeys(dest)
    expect(msg.length).toBe(KEY_MSG_SIZE_GID)
    expect(msg.toString('latin1').replace(/\0+$/, '')).toBe('0000:0080:000011:8ac5a9:000001ed:00005563f55e5000:00:00:00:00:00:00:00:00:00:00:ff:ff:0a:4d:00:02:00000000:')
    expect(msg[107]).toBe(0)
    expect(decodeKeys(msg)).toEqual({ ...dest, gid: Buffer.from(dest.gid) })
  })

  it('with -R the QP keys are struct pingpong_dest, 56 bytes, fields big-endian', () => {
    const msg = encodeKeysBinary(dest)
    expect(msg.length).toBe(PINGPONG_DEST_BYTES)
    expect(msg.toString('hex')).toBe(
      '00000000' + '00000080' + '00000011' + '008ac5a9' + '000001ed' + '00000000' + '00005563f55e5000' + '00000000000000000000ffff0a4d0002' + '00000000' + '00000000',
    )
    expect(decodeKeysBinary(msg)).toEqual({ ...dest, gid: Uint8Array.from(dest.gid) })
    expect(() => decodeKeysBinary(msg.subarray(0, 55))).toThrow(expect.objectContaining({ code: 'ERR_PERFTEST_EXCHANGE' }))
    expect(() => decodeKeysBinary(Buffer.concat([msg.subarray(0, 24), Buffer.alloc(8, 0xff), msg.subarray(32)]))).toThrow(expect.objectContaining({ code: 'ERR_PERFTEST_EXCHANGE' }))
  })

  it('versions, MTU and BW reports are what perftest writes', () => {
    expect(encodeVersion()).toEqual(Buffer.concat([Buffer.from('6.06'), Buffer.alloc(12)]))
    expect(decodeVersion(encodeVersion('5.70'))).toEqual({ text: '5.70', value: 5.7 })
    expect(encodeMtu(1024)).toEqual(Buffer.from('3\0', 'latin1'))
    expect(decodeMtu(Buffer.from('5\0', 'latin1'))).toBe(4096)
    const r = { size: 65536, iters: 5000, bwPeak: 117.97, bwAvg: 117.96, msgRate: 0.001887 }
    const fields = encodeBwReport(r, true)
    expect(fields.map((f) => f.length)).toEqual([8, 8, 8, 8, 8])
    expect(fields[0]).toEqual(Buffer.from('0000000000010000', 'hex'))
    expect(decodeBwReport(fields)).toEqual(r)
    expect(encodeBwReport(r, false)[1]).toEqual(Buffer.from('00001388', 'hex'))
    // perftest reports inf when it cannot sample its CPU clock: taken and printed as it prints it
    const inf = decodeBwReport(encodeBwReport({ ...r, bwPeak: Infinity, bwAvg: Infinity, msgRate: Infinity }, true))
    expect(bwLine(inf, false)).toBe(' 65536      5000             inf                inf    \t\t   inf    \n')
  })

  it('refuses garbled messages with ERR_PERFTEST_EXCHANGE and old peers with ERR_PERFTEST_VERSION', () => {
    const bad = [
      () => decodeKeys(Buffer.alloc(108, 0x41)),
      () => decodeKeys(Buffer.from('0000:0080:000011:8ac5a9:000001ed:00005563f55e5000:00:00:zz')),
      () => decodeKeys(encodeKeys({ ...dest }).fill(0x3a, 60, 70)),
      () => decodeVersion(Buffer.from('GET / HTTP/1.1\r\n')),
      () => decodeMtu(Buffer.from('9\0')),
      () => decodeBwReport([Buffer.alloc(8, 0xff), Buffer.alloc(8), Buffer.alloc(8), Buffer.alloc(8), Buffer.alloc(8)]),
    ]
    for (const f of bad) expect(f).toThrow(expect.objectContaining({ code: 'ERR_PERFTEST_EXCHANGE' }))
    expect(() => decodeVersion(encodeVersion('5.60'))).toThrow(expect.objectContaining({ code: 'ERR_PERFTEST_VERSION' }))
  })
})

describe('perftest output', () => {
  it('prints address lines as ctx_print_pingpong_data (%#0Nx, decimal GID bytes)', () => {
    expect(altHex(0, 4)).toBe('0000')
    expect(altHex(0x11, 6)).toBe('0x0011')
    expect(addressLines('local', dest, 'write')).toBe(' local address: LID 0000 QPN 0x0011 PSN 0x8ac5a9 RKey 0x0001ed VAddr 0x005563f55e5000\n GID: 00:00:00:00:00:00:00:00:00:00:255:255:10:77:00:02\n')
    expect(addressLines('remote', dest, 'read')).toMatch(/^ remote address: LID 0000 QPN 0x0011 PSN 0x8ac5a9 OUT 0x80 RKey/)
    expect(addressLines('local', dest, 'send')).toMatch(/PSN 0x8ac5a9\n GID/)
  })

  it('computes BW average and peak as print_report_bw does, and latency as print_report_lat', () => {
    // 10 WRs of 1 MiB, posted at once, completing every 1000 µs: 1000 MiB/s on average.
    const posted = Array.from({ length: 10 }, () => 0)
    const completed = Array.from({ length: 10 }, (_, i) => (i + 1) * 1000)
    const r = bwFigures(1 << 20, posted, completed, false, 1)
    expect(r.bwAvg).toBeCloseTo(1000, 6)
    expect(r.bwPeak).toBeCloseTo(1000, 6)
    expect(r.msgRate).toBeCloseTo(0.001, 9)
    expect(bwLine(r, false)).toBe(' 1048576    10               1000.00            1000.00\t\t   0.001000\n')
    // posts every 10 µs but one gap of 100: ping-pong halves them; the two largest are dropped.
    const lat = latFigures(2, [0, 10, 20, 30, 130, 140, 150], 2)
    expect(lat).toMatchObject({ size: 2, iters: 7, min: 5, typical: 5, avg: 5, stdev: 0 })
    expect(latLine(lat)).toMatch(/^ 2 {7}7 {10}5\.00 {4}/)
  })
})

describe('command line', () => {
  it('takes perftest\'s options and defaults per test', () => {
    const w = parsePerftestArgs(['write', '-s', '8', '-n0x10', '-q', '2', '10.0.0.1'])
    expect(w).toMatchObject({ verb: 'write', kind: 'bw', host: '10.0.0.1', size: 8, iters: 16, qps: 2, txDepth: 128, tcpPort: 18515 })
    expect(parsePerftestArgs(['write', 'lat'])).toMatchObject({ kind: 'lat', size: 2, iters: 1000, txDepth: 1 })
    expect(parsePerftestArgs(['atomic', '-A', 'CMP_AND_SWAP'])).toMatchObject({ size: 8, atomicType: 'CMP_AND_SWAP', iters: 5000 })
    expect(parsePerftestArgs(['send', 'bw', '-a', '-x', '1', '--report_gbits'])).toMatchObject({ allSizes: true, gidIndex: 1, gbits: true })
    expect(runSizes({ verb: 'write', size: 7, allSizes: true })).toEqual(Array.from({ length: 23 }, (_, i) => 2 ** (i + 1)))
    expect(runSizes({ verb: 'atomic', size: 8, allSizes: false })).toEqual([8])
    expect(parsePerftestArgs(['read', '-D', '8'])).toMatchObject({ duration: { seconds: 8, margin: 2 } })
    expect(parsePerftestArgs(['write', '-D', '3', '-f', '1'])).toMatchObject({ duration: { seconds: 3, margin: 1 } })
    expect(parsePerftestArgs(['write', '-R', '10.0.0.1'])).toMatchObject({ rdmaCm: true, host: '10.0.0.1' })
    expect(parsePerftestArgs(['send', 'lat', '--rdma_cm', '--address', '10.0.0.2'])).toMatchObject({ rdmaCm: true, address: '10.0.0.2' })
    expect(parsePerftestArgs(['write'])).not.toHaveProperty('rdmaCm')
    expect(() => parsePerftestArgs(['write', '-R'])).toThrow(/needs --address/)
    expect(() => parsePerftestArgs(['write', '-R', 'server.example'])).toThrow(/IP address/)
    expect(() => parsePerftestArgs(['write', '-z', '10.0.0.1'])).toThrow(UsageError)
    for (const bad of [[], ['rdma'], ['write', '-R'], ['write', 'lat', '-D', '5'], ['send', '-D', '5'], ['write', '-D', '4', '-f', '2'], ['write', '-f', '1'], ['read', '-b'], ['send', '-c', 'UD'], ['write', 'lat', '-q', '2'], ['atomic', '-a'], ['write', '-m', '1000'], ['write', '-n', '3'], ['write', 'a', 'b']]) {
      expect(() => parsePerftestArgs(bad), bad.join(' ')).toThrow(UsageError)
    }
  })
})

interface Pair { server: PerftestResult; client: PerftestResult; serverOut: string; clientOut: string }

async function pair(common: Partial<PerftestOptions> & Pick<PerftestOptions, 'verb' | 'kind'>): Promise<Pair> {
  const roce = await freeRocePort()
  const tcp = await freeTcpPort()
  let serverOut = ''
  let clientOut = ''
  let listening!: () => void
  const ready = new Promise<void>((r) => (listening = r))
  const args = [common.verb, common.kind]
  const base = { ...parsePerftestArgs(args), tcpPort: tcp, rocePort: roce, iters: 200, ...common }
  const server = runPerftest({ ...base, address: '127.0.0.1', out: (t) => (serverOut += t), onListening: () => listening() })
  await ready
  const client = runPerftest({ ...base, host: '127.0.0.1', address: '127.0.0.2', out: (t) => (clientOut += t) })
  const [s, c] = await Promise.all([server, client])
  return { server: s, client: c, serverOut, clientOut }
}

const BW_ROW = /^ (\d+) +(\d+) +(\d+\.\d\d) +(\d+\.\d\d) *\t\t {3}(\d+\.\d{6})$/m
const LAT_ROW = /^ (\d+) +(\d+) +(\d+\.\d\d) +(\d+\.\d\d) +(\d+\.\d\d)\s+(\d+\.\d\d)\s+(\d+\.\d\d)\s+(\d+\.\d\d)\s+(\d+\.\d\d) *$/m

describe('softroce <-> softroce over loopback (the command against itself)', () => {
  for (const verb of ['write', 'read', 'atomic'] as const) {
    it(`${verb} bw: the client measures, the server prints the client's figures`, async () => {
      const r = await pair({ verb, kind: 'bw', ...(verb === 'atomic' ? {} : { size: 4096 }) })
      const size = verb === 'atomic' ? 8 : 4096
      expect(r.client.bw).toHaveLength(1)
      expect(r.client.bw[0]).toMatchObject({ size, iters: 200 })
      expect(r.client.bw[0]!.bwAvg).toBeGreaterThan(0)
      expect(r.client.bw[0]!.bwPeak).toBeGreaterThanOrEqual(r.client.bw[0]!.bwAvg * 0.999)
      expect(r.server.peerBw).toEqual(r.client.bw)
      for (const out of [r.serverOut, r.clientOut]) {
        const row = BW_ROW.exec(out)
        expect(row, out).not.toBeNull()
        expect(Number(row![1])).toBe(size)
        expect(Number(row![2])).toBe(200)
        expect(out).toMatch(/ local address: LID 0000 QPN 0x[0-9a-f]{4,6} PSN (?:0x[0-9a-f]{4,6}|0000)/)
        expect(out).toMatch(/ GID: 00:00:00:00:00:00:00:00:00:00:255:255:127:00:00:0[12]\n/)
      }
      expect(r.client.remote[0]!.qpn).toBe(r.server.local[0]!.qpn)
      expect(r.server.remote[0]!.psn).toBe(r.client.local[0]!.psn)
      expect(r.client.peerVersion).toBe('6.06')
    })
  }

  it('write bw -D 2 -f 0: the client counts what completed in the window, the server prints it', async () => {
    const r = await pair({ verb: 'write', kind: 'bw', size: 4096, duration: { seconds: 2, margin: 0 } })
    const f = r.client.bw[0]!
    expect(f.iters).toBeGreaterThan(0)
    expect(f.bwPeak).toBe(0) // perftest reports no peak in duration mode
    expect(f.bwAvg).toBeCloseTo((f.iters * 4096) / 2 / 2 ** 20, 6)
    expect(r.server.peerBw).toEqual(r.client.bw)
  })

  it('send bw: both sides report 200 SENDs of 4096 bytes', async () => {
    const r = await pair({ verb: 'send', kind: 'bw', size: 4096, rxDepth: 64 })
    for (const side of [r.server, r.client]) expect(side.bw[0]).toMatchObject({ size: 4096, iters: 200 })
    expect(r.server.bw[0]!.bwAvg).toBeGreaterThan(0)
  })

  it('write bw with 2 QPs: every QP runs the iterations, each naming its own target block', async () => {
    const r = await pair({ verb: 'write', kind: 'bw', qps: 2, size: 64 })
    expect(r.client.bw[0]).toMatchObject({ size: 64, iters: 400 })
    expect(r.client.local.map((d) => d.vaddr)).toEqual([r.client.local[0]!.vaddr, r.client.local[0]!.vaddr + 4096])
  })

  for (const [verb, kind] of [['write', 'bw'], ['send', 'bw'], ['write', 'lat'], ['send', 'lat']] as const) {
    it(`${verb} ${kind} -a: a row for every size from 2 to 2^23 on both sides that measure`, async () => {
      const r = await pair({ verb, kind, allSizes: true, iters: 5 })
      const sizes = Array.from({ length: 23 }, (_, i) => 2 ** (i + 1))
      const rows = (side: PerftestResult): number[] => (kind === 'bw' ? side.bw : side.lat).map((x) => x.size)
      expect(rows(r.client)).toEqual(sizes)
      if (kind === 'lat' || verb === 'send') expect(rows(r.server)).toEqual(sizes)
      else expect(r.server.peerBw.map((x) => x.size)).toEqual([2 ** 23]) // perftest reports the last size to its server
    }, 60_000)
  }

  for (const verb of ['write', 'read', 'send', 'atomic'] as const) {
    it(`${verb} lat: figures from the ${verb === 'write' || verb === 'send' ? 'both sides' : 'client'}`, async () => {
      const r = await pair({ verb, kind: 'lat', iters: 100 })
      const measuring = verb === 'write' || verb === 'send' ? [r.server, r.client] : [r.client]
      for (const side of measuring) {
        expect(side.lat).toHaveLength(1)
        const f = side.lat[0]!
        expect(f.iters).toBe(100)
        expect(f.min).toBeGreaterThan(0)
        expect(f.min).toBeLessThanOrEqual(f.typical)
        expect(f.typical).toBeLessThanOrEqual(f.max)
      }
      expect(LAT_ROW.exec(r.clientOut), r.clientOut).not.toBeNull()
      if (verb === 'read' || verb === 'atomic') expect(r.server.lat).toHaveLength(0)
    })
  }
})

describe('-R (rdma_cm) between two softroce stacks over loopback', () => {
  for (const [verb, kind] of [['write', 'bw'], ['read', 'bw'], ['send', 'bw'], ['atomic', 'bw'], ['write', 'lat'], ['read', 'lat'], ['send', 'lat'], ['atomic', 'lat']] as const) {
    it(`${verb} ${kind}: QPs connected by rdma_cm, keys exchanged on the control QP, both sides measure as without -R`, async () => {
      const r = await pair({ verb, kind, rdmaCm: true, iters: 100, ...(verb === 'atomic' ? {} : { size: 4096 }) })
      const size = verb === 'atomic' ? 8 : 4096
      if (kind === 'bw') {
        expect(r.client.bw[0]).toMatchObject({ size, iters: 100 })
        if (verb === 'send') expect(r.server.bw[0]).toMatchObject({ size, iters: 100 })
        else expect(r.server.peerBw).toEqual(r.client.bw)
      } else {
        expect(r.client.lat[0]).toMatchObject({ size, iters: 100 })
        expect(r.server.lat).toHaveLength(verb === 'write' || verb === 'send' ? 1 : 0)
      }
      // The keys came over the control QP (struct pingpong_dest): each side names the other's QP and buffer.
      expect(r.client.remote[0]).toMatchObject({ qpn: r.server.local[0]!.qpn, rkey: r.server.local[0]!.rkey, vaddr: r.server.local[0]!.vaddr })
      expect(r.server.remote[0]).toMatchObject({ qpn: r.client.local[0]!.qpn, rkey: r.client.local[0]!.rkey, vaddr: r.client.local[0]!.vaddr })
      expect(r.client.peerVersion).toBe('6.06')
      for (const out of [r.serverOut, r.clientOut]) expect(out).toContain(' rdma_cm QPs\t : ON\n Data ex. method : rdma_cm\n')
      expect(r.serverOut).toContain(' Waiting for client rdma_cm QP to connect\n')
    })
  }

  it('nobody listens on the rdma_cm port: ERR_PERFTEST_CONNECT after perftest\'s 10 tries, no hang', async () => {
    const roce = await freeRocePort()
    const tcp = await freeTcpPort()
    // A softroce CM at 127.0.0.1 that listens elsewhere: every REQ to `tcp` gets REJ invalid service ID.
    const { softroce, createCm } = await import('@rdma-session/provider-softroce')
    const { createContext } = await import('@rdma-session/core')
    const ctx = await createContext({ provider: softroce({ address: '127.0.0.1', port: roce }) })
    const cm = createCm(ctx, { peerRocePort: roce })
    cm.listen({ port: tcp === 65535 ? 1 : tcp + 1 })
    try {
      const t0 = Date.now()
      const err = await runPerftest({ ...parsePerftestArgs(['write', '-R', '127.0.0.1']), tcpPort: tcp, rocePort: roce, address: '127.0.0.2', out: () => {} }).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'ERR_PERFTEST_CONNECT', message: expect.stringMatching(/Couldn't connect to 127\.0\.0\.1:\d+ through rdma_cm .*INVALID_SERVICE_ID/) })
      expect(cm.snapshot().received.REQ).toBe(10)
      expect(Date.now() - t0).toBeGreaterThanOrEqual(9 * 100)
    } finally {
      cm.close()
      await ctx.close()
    }
  })

  it('a client refused before the server listens: it retries, and the flushed receives of the refused attempts are not taken for the peer\'s', async () => {
    const roce = await freeRocePort()
    const tcp = await freeTcpPort()
    const base = { ...parsePerftestArgs(['write', 'bw', '-R', '--address', '127.0.0.1']), tcpPort: tcp, rocePort: roce, iters: 50, size: 4096 }
    // At first a CM at 127.0.0.1 that listens on nothing: the client's REQs get REJ invalid service ID.
    const { softroce, createCm } = await import('@rdma-session/provider-softroce')
    const { createContext } = await import('@rdma-session/core')
    const ctx = await createContext({ provider: softroce({ address: '127.0.0.1', port: roce }) })
    const early = createCm(ctx, { peerRocePort: roce })
    const client = runPerftest({ ...base, host: '127.0.0.1', address: '127.0.0.2', out: () => {} })
    client.catch(() => {})
    const deadline = Date.now() + 10_000
    while (early.snapshot().sent.REJ < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
    expect(early.snapshot().sent.REJ).toBeGreaterThanOrEqual(2)
    early.close()
    await ctx.close()
    // Then the real server: the client's next REQ (or its resend) reaches it.
    const server = runPerftest({ ...base, out: () => {} })
    const [s, c] = await Promise.all([server, client])
    expect(c.bw[0]).toMatchObject({ size: 4096, iters: 50 })
    expect(s.peerBw).toEqual(c.bw)
  })

  it('IPv6: two of these commands connect through rdma_cm on ::1 (perftest itself resolves -R addresses as IPv4 only)', async () => {
    const [ra, rb] = [await freeRocePort(), await freeRocePort()]
    const tcp = await freeTcpPort()
    const base = { ...parsePerftestArgs(['write', 'bw', '-R', '--address', '::1']), tcpPort: tcp, iters: 50, size: 4096 }
    let listening!: () => void
    const ready = new Promise<void>((r) => (listening = r))
    let serverOut = ''
    const server = runPerftest({ ...base, rocePort: ra, remoteRocePort: rb, out: (t) => (serverOut += t), onListening: () => listening() })
    await ready
    const client = runPerftest({ ...base, host: '::1', rocePort: rb, remoteRocePort: ra, out: () => {} })
    const [s, c] = await Promise.all([server, client])
    expect(c.bw[0]).toMatchObject({ size: 4096, iters: 50 })
    expect(s.peerBw).toEqual(c.bw)
    expect(serverOut).toMatch(/ GID: 00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:01\n/)
  })

  it('write bw with 2 QPs: two rdma_cm connections on the one port', async () => {
    const r = await pair({ verb: 'write', kind: 'bw', qps: 2, size: 64, rdmaCm: true })
    expect(r.client.bw[0]).toMatchObject({ size: 64, iters: 400 })
    expect(new Set(r.client.remote.map((d) => d.qpn))).toEqual(new Set(r.server.local.map((d) => d.qpn)))
  })
})

/** A fake perftest peer on TCP that answers with `script` and records what it got. */
async function fakePeer(script: (socket: net.Socket) => void): Promise<{ port: number; close: () => void }> {
  const server = net.createServer(script)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() }
}

describe('a peer that garbles the exchange or goes silent', () => {
  const io = { out: () => {}, err: () => {}, errIsTty: false, env: {}, cwd: '.' }
  it('garbled version: ERR_PERFTEST_EXCHANGE at once', async () => {
    const peer = await fakePeer((s) => s.write('HTTP/1.1 400 Bad Request\r\n\r\n'))
    try {
      const err = await perftestCommand.run(['write', '-p', String(peer.port), '127.0.0.1'], io).catch((e: Error) => e)
      expect(err).toMatchObject({ code: 'ERR_PERFTEST_EXCHANGE' })
      expect(String((err as Error).message)).toMatch(/^not a perftest version message: "HTTP\/1\.1 400 Bad/)
    } finally {
      peer.close()
    }
  })

  it('garbled QP keys after a good version: ERR_PERFTEST_EXCHANGE', async () => {
    const roce = await freeRocePort()
    const peer = await fakePeer((s) => {
      let got = 0
      s.on('data', (d) => {
        got += d.length
        if (got === 16) s.write(encodeVersion('6.06'))
        else if (got === 20) s.write(Buffer.from('00001000', 'hex'))
        else if (got === 24) s.write(Buffer.from('00000040', 'hex'))
        else if (got === 26) s.write('3\0')
        else if (got === 26 + 108) s.write(Buffer.alloc(108, 0x7a))
      })
    })
    try {
      const err = await perftestCommand.run(['write', '-p', String(peer.port), '--roce-port', String(roce), '127.0.0.1'], io).catch((e: Error) => e)
      expect(err).toMatchObject({ code: 'ERR_PERFTEST_EXCHANGE' })
      expect(String((err as Error).message)).toMatch(/not a perftest QP message/)
    } finally {
      peer.close()
    }
  })

  it('a peer that never answers: ERR_OOB_TIMEOUT after --exchange-timeout', async () => {
    const peer = await fakePeer(() => {})
    try {
      const err = await perftestCommand.run(['write', '-p', String(peer.port), '--exchange-timeout', '1', '127.0.0.1'], io).catch((e: Error) => e)
      expect(err).toMatchObject({ code: 'ERR_OOB_TIMEOUT' })
    } finally {
      peer.close()
    }
  })

  it('a peer that goes away during the test: ERR_PERFTEST_PEER_GONE, not a wait for ever', async () => {
    // A fake ib_write_lat client: the whole setup exchange, then it closes instead of writing.
    const roce = await freeRocePort()
    const tcp = await freeTcpPort()
    let listening!: () => void
    const ready = new Promise<void>((r) => (listening = r))
    let counters: Record<string, unknown> | null | undefined
    const server = runPerftest({
      ...parsePerftestArgs(['write', 'lat']), tcpPort: tcp, rocePort: roce, address: '127.0.0.1', out: () => {}, onListening: () => listening(),
      onCounters: (c) => (counters = c),
    }).catch((e: Error) => e)
    await ready
    const s = net.connect({ host: '127.0.0.1', port: tcp })
    let waiting: { n: number; resolve: (b: Buffer) => void } | null = null
    let buffered = Buffer.alloc(0)
    const pump = (): void => {
      if (waiting !== null && buffered.length >= waiting.n) {
        const { n, resolve } = waiting
        waiting = null
        const b = buffered.subarray(0, n)
        buffered = buffered.subarray(n)
        resolve(b)
      }
    }
    s.on('data', (d: Buffer) => {
      buffered = Buffer.concat([buffered, d])
      pump()
    })
    const xchg = async (mine: Buffer, n: number): Promise<Buffer> => {
      s.write(mine)
      const got = new Promise<Buffer>((resolve) => (waiting = { n, resolve }))
      pump()
      return got
    }
    await xchg(encodeVersion('6.06'), 16)
    await xchg(Buffer.from('00001000', 'hex'), 4)
    await xchg(Buffer.from('00000040', 'hex'), 4)
    await xchg(Buffer.from('3\0', 'latin1'), 2)
    const fake = encodeKeys({ ...dest, gid: addressToGid('127.0.0.2') })
    for (let i = 0; i < 4; i++) decodeKeys(await xchg(fake, KEY_MSG_SIZE_GID))
    s.destroy()
    expect(await server).toMatchObject({ code: 'ERR_PERFTEST_PEER_GONE' })
    // --stats still gets softroce's counters of the failed run
    expect(counters).toMatchObject({ packetsSent: expect.any(Number), drops: expect.any(Object), kernelSocketDrops: 0 })
  })

  it('a peer that closes mid-exchange: ERR_OOB_CLOSED', async () => {
    const peer = await fakePeer((s) => s.end(encodeVersion('6.06')))
    try {
      const err = await perftestCommand.run(['read', '-p', String(peer.port), '127.0.0.1'], io).catch((e: Error) => e)
      expect(err).toMatchObject({ code: 'ERR_OOB_CLOSED' })
    } finally {
      peer.close()
    }
  })
})

describe('udpSocketDrops', () => {
  const header = '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n'
  it('sums the drops column of the sockets bound to the port, IPv4 and IPv6', () => {
    const files: Record<string, string> = {
      '/proc/net/udp': `${header}  1: 0100007F:12B7 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 11 2 0000000000000000 17\n  2: 0100007F:12B8 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 12 2 0000000000000000 99\n`,
      '/proc/net/udp6': `${header}  3: 00000000000000000000000001000000:12B7 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 13 2 0000000000000000 5\n`,
    }
    expect(udpSocketDrops(4791, (p) => files[p]!)).toBe(22)
    expect(udpSocketDrops(4792, (p) => files[p]!)).toBe(99)
    expect(udpSocketDrops(1, (p) => files[p]!)).toBe(0)
  })
  it('null where /proc/net/udp cannot be read; this host\'s own file parses', () => {
    expect(udpSocketDrops(4791, () => { throw new Error('ENOENT') })).toBeNull()
    expect(udpSocketDrops(65535)).toBe(0)
  })
})
