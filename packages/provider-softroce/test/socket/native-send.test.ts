/**
 * The native send path (roce_sockopt.c sendTo): per-QP DSCP/ECN and hop limit from the QP's
 * encapsulation reach the IP header on the wire. Two softroce devices on loopback (IPv4 and
 * IPv6) exchange SENDs while `tshark -i lo` captures them; each direction must carry its own
 * QP's traffic class and TTL / hop limit. Skips (saying why) only without the helper, without
 * tshark, or without the rights to capture on lo.
 */
import { spawn, spawnSync } from 'node:child_process'
import dgram from 'node:dgram'
import { createContext, type Context, type QueuePair } from '@rdma-session/core'
import { describe, expect, it } from 'vitest'
import { softroce, type SoftRoceDevice } from '../../src/index.js'
import { loadSockoptAddon, nativeSendOf } from '../../src/socket/sockopt-addon.js'
import { ALL_ACCESS_BITS, TEST_TIMERS, register } from '../rc/harness.js'
import { environmentSkip } from '../../../../tools/test-env.mjs'

function whyNot(): string | null {
  const ns = nativeSendOf(loadSockoptAddon())
  if (!ns.ok) return `the native send path is not available: ${ns.why}`
  const t = spawnSync('tshark', ['--version'], { encoding: 'utf8' })
  if (t.error || t.status !== 0) return 'tshark is not installed (apt-get install tshark)'
  const d = spawnSync('tshark', ['-D'], { encoding: 'utf8' })
  if (!/\blo\b/.test(d.stdout ?? '')) return `tshark cannot capture on lo here: ${(d.stderr ?? '').trim().split('\n')[0] ?? ''}`
  return null
}
const skip = environmentSkip('softroce native send path on the wire', whyNot())

interface Frame { src: number; dscp: number; ecn: number; ttl: number }

/**
 * Starts tshark on lo for UDP `port`; resolves once it is capturing; `done()` gives the frames.
 * "Capturing on" comes before the filter is live, so capture is known to be live only when tshark
 * shows a marker datagram (sent from `marker`, a socket of our own, to itself), and `done()` sends
 * a last marker and waits until tshark shows it: lo delivers in order, so every frame before it has
 * been printed then. (A fixed 1 s after "Capturing on" could end before the filter was live.)
 */
async function captureLo(family: 4 | 6, port: number): Promise<{ done: () => Promise<{ frames: Frame[]; report: string }> }> {
  const marker = dgram.createSocket(family === 4 ? 'udp4' : 'udp6')
  await new Promise<void>((resolve) => marker.bind(0, family === 4 ? '127.0.0.1' : '::1', resolve))
  const markerPort = marker.address().port
  const ping = (): void => marker.send(Buffer.from('marker'), markerPort, family === 4 ? '127.0.0.1' : '::1')
  const f = family === 4 ? ['ip.dsfield.dscp', 'ip.dsfield.ecn', 'ip.ttl'] : ['ipv6.tclass.dscp', 'ipv6.tclass.ecn', 'ipv6.hlim']
  // -B 16: a 16 MiB kernel buffer, so a capture process starved of CPU under load loses nothing
  // (tshark reports drops on stderr, which the assertions show).
  const p = spawn('tshark', ['-i', 'lo', '-B', '16', '-f', `udp port ${port} or udp port ${markerPort}`, '-a', 'duration:120', '-l', '-T', 'fields', '-e', 'udp.srcport', ...f.flatMap((x) => ['-e', x])], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  p.stdout.on('data', (d: Buffer) => (out += d.toString()))
  p.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<void>((resolve) => p.on('exit', () => resolve()))
  let ended = false
  void exited.then(() => (ended = true))
  const parse = (): Frame[] => out.trim().split('\n').filter((l) => l !== '').map((l) => {
    const [src, dscp, ecn, ttl] = l.split('\t').map((x) => Number.parseInt(x, x.startsWith('0x') ? 16 : 10))
    return { src: src!, dscp: dscp!, ecn: ecn!, ttl: ttl! }
  })
  const markers = (): number => parse().filter((fr) => fr.src === markerPort).length
  /** Sends markers every 50 ms until tshark has shown more than `seen` of them (20 s deadline). */
  const markerShown = async (seen: number, what: string): Promise<void> => {
    const deadline = performance.now() + 20_000
    while (markers() <= seen) {
      if (ended || performance.now() > deadline) {
        p.kill('SIGKILL')
        marker.close()
        throw new Error(`tshark ${what}: ${ended ? 'exited' : 'no marker datagram shown within 20 s'}; stderr: ${err}; stdout: ${out}`)
      }
      ping()
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  await markerShown(0, 'did not start capturing')
  return {
    done: async () => {
      await markerShown(markers(), 'did not show the closing marker')
      marker.close()
      p.kill('SIGINT')
      await exited
      const frames = parse().filter((fr) => fr.src !== markerPort)
      return { frames, report: `${frames.length} frames besides ${markers()} markers; tshark stderr: ${err.trim()}` }
    },
  }
}

function connectWith(a: Context, b: Context, encA: object, encB: object): { qa: QueuePair; qb: QueuePair } {
  const qa = a.createQp({ caps: {} })
  const qb = b.createQp({ caps: {} })
  for (const q of [qa, qb]) q.modify({ state: 'INIT', accessFlags: ALL_ACCESS_BITS, portNum: 1, pkeyIndex: 0 })
  qa.modify({ state: 'RTR', remote: b.endpoint, pathMtu: 1024, destQpn: qb.qpn, rqPsn: qb.localPsn, maxDestRdAtomic: 16, minRnrTimer: 1, encapsulation: encA } as never)
  qb.modify({ state: 'RTR', remote: a.endpoint, pathMtu: 1024, destQpn: qa.qpn, rqPsn: qa.localPsn, maxDestRdAtomic: 16, minRnrTimer: 1, encapsulation: encB } as never)
  const rts = { timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 16 }
  qa.modify({ state: 'RTS', sqPsn: qa.localPsn, ...rts })
  qb.modify({ state: 'RTS', sqPsn: qb.localPsn, ...rts })
  qa.remoteQpn = qb.qpn
  qb.remoteQpn = qa.qpn
  return { qa, qb }
}

describe.skipIf(Boolean(skip))('native send path: per-QP traffic class and hop limit on the wire', () => {
  for (const [family, address] of [[4, '127.0.0.1'], [6, '::1']] as const) {
    it(`IPv${family}: DSCP/ECN and ${family === 4 ? 'TTL' : 'hop limit'} of each QP's packets as its encapsulation says`, async () => {
      const a = await createContext({ provider: softroce({ address, port: 0, timers: TEST_TIMERS }) })
      const b = await createContext({ provider: softroce({ address, port: 0, timers: TEST_TIMERS }) })
      try {
        const da = a.device as SoftRoceDevice
        const db = b.device as SoftRoceDevice
        expect(da.diagnostics.sendPath).toBe('native')
        expect(da.diagnostics.trafficClassApplied).toBe(true)
        const { qa, qb } = connectWith(a, b, { udpSourcePort: 0, dscp: 46, ecn: 1, hopLimit: 17 }, { udpSourcePort: 0, dscp: 10, ecn: 2, hopLimit: 99 })
        const ma = register(a, 65536)
        const mb = register(b, 65536)
        const SENDS = 4
        const cap = await captureLo(family, da.info.port)
        for (let i = 0; i < SENDS; i++) {
          const got = qb.recv(mb.slice(0, 8192))
          await qa.send(ma.slice(0, 100 + i * 1500)) // one- and multi-packet SENDs (iovec pieces)
          await got
        }
        for (let i = 0; i < SENDS; i++) {
          const got = qa.recv(ma.slice(0, 4096))
          await qb.send(mb.slice(0, 64))
          await got
        }
        const { frames, report } = await cap.done()
        const fromA = frames.filter((f) => f.src === da.info.port)
        const fromB = frames.filter((f) => f.src === db.info.port)
        // Each SEND leaves in at least one frame (a UDP GSO message of several datagrams is one
        // frame on lo), and no side sends more frames than datagrams (counters).
        expect(fromA.length, `A's frames (${report}; ${JSON.stringify(frames)})`).toBeGreaterThanOrEqual(SENDS)
        expect(fromA.length).toBeLessThanOrEqual(da.counters.packetsSent)
        expect(fromB.length, `B's frames (${report})`).toBeGreaterThanOrEqual(SENDS)
        expect(fromB.length).toBeLessThanOrEqual(db.counters.packetsSent)
        for (const f of fromA) expect(f).toEqual({ src: da.info.port, dscp: 46, ecn: 1, ttl: 17 })
        for (const f of fromB) expect(f).toEqual({ src: db.info.port, dscp: 10, ecn: 2, ttl: 99 })
        expect(da.counters.sendErrors + db.counters.sendErrors).toBe(0)
      } finally {
        await Promise.all([a.close(), b.close()])
      }
    }, 60_000)
  }

  it('RDMA_SESSION_SOFTROCE_NATIVE_SEND=off: node:dgram sends, and diagnostics say why', async () => {
    process.env.RDMA_SESSION_SOFTROCE_NATIVE_SEND = 'off'
    try {
      const a = await createContext({ provider: softroce({ port: 0, timers: TEST_TIMERS }) })
      const d = a.device as SoftRoceDevice
      expect(d.diagnostics.sendPath).toBe('dgram')
      expect(d.diagnostics.trafficClassApplied).toBe(false)
      expect(d.diagnostics.sendPathReason).toMatch(/RDMA_SESSION_SOFTROCE_NATIVE_SEND/)
      await a.close()
    } finally {
      delete process.env.RDMA_SESSION_SOFTROCE_NATIVE_SEND
    }
  })
})
