/**
 * Receive runs in a device pair on real loopback sockets: WRITEs and SENDs (short last segments,
 * several MTUs, IPv4 and IPv6) land byte-exact with the helper placing their middle packets, the
 * same as with receive runs off; and over a link that loses, duplicates, reorders and corrupts
 * packets while two QPs' messages interleave in the receiver's batches, runs stop at every
 * unusual packet, which the per-packet path drops and counts, and the transfers stay byte-exact.
 */
import { createHash } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import type { WorkCompletion } from '@rdma-session/core'
import { RECEIVE_RUN_DISABLE_ENV, RUN_DISABLE_ENV } from '../../src/socket/sockopt-addon.js'
import { nativeHelperStatus } from '../../src/socket/helper-status.js'
import { connect, openPair, pattern, register, type Pair } from '../rc/harness.js'

const status = nativeHelperStatus()
if (!status.receiveRuns) throw new Error(`the receive-run device tests need the helper's receive runs: ${status.receiveRunsWhy ?? status.why ?? ''}`)

let cleanup: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const c of cleanup.reverse()) await c()
  cleanup = []
})

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

async function openWith(env: Record<string, string>, a: Parameters<typeof openPair>[0] = {}, b: Parameters<typeof openPair>[1] = a): Promise<Pair> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]))
  Object.assign(process.env, env)
  try {
    const p = await openPair(a, b)
    cleanup.push(() => p.close())
    return p
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}

const SIZES = [4096 * 3 + 1, (1 << 20) + 4, (3 << 20) + 100, 1024 * 7 + 1022]

/** WRITEs and SENDs of SIZES from A to B at `mtu`: what B's memory and completions hold afterwards. */
async function transfers(pair: Pair, mtu: 1024 | 4096): Promise<{ memory: string[]; completions: Omit<WorkCompletion, 'wrId' | 'qpn'>[] }> {
  const { qa, qb } = connect(pair, { mtu })
  const memory: string[] = []
  const completions: Omit<WorkCompletion, 'wrId' | 'qpn'>[] = []
  for (const size of SIZES) {
    const ma = register(pair.a, size)
    const mb = register(pair.b, size + 64)
    ma.bytes.set(pattern(size, size & 0xff))
    await qa.write(ma.slice(0, size), mb.region(0, size))
    memory.push(sha(mb.bytes.subarray(0, size)))
    expect(mb.bytes.subarray(size).every((x) => x === 0), 'nothing written past the WRITE').toBe(true)
    ma.bytes.set(pattern(size, (size + 1) & 0xff))
    // The receive is larger than the SEND: its last packet need not fill it.
    const recv = register(pair.b, size + 64)
    const done = qb.recv(recv.slice(0, size + 64))
    await qa.send(ma.slice(0, size))
    const wc = await done
    const { wrId: _w, qpn: _q, ...rest } = wc
    completions.push(rest)
    memory.push(sha(recv.bytes.subarray(0, size)), sha(ma.bytes))
    expect(recv.bytes.subarray(size).every((x) => x === 0), 'nothing written past the SEND').toBe(true)
  }
  return { memory, completions }
}

describe('a device pair with receive runs', () => {
  for (const address of ['127.0.0.1', '::1']) {
    it(`WRITEs and SENDs with short last segments land byte-exact over ${address}, the same as with receive runs off`, async () => {
      const on = await openWith({}, { address })
      const off = await openWith({ [RECEIVE_RUN_DISABLE_ENV]: 'off' }, { address })
      expect(on.db.diagnostics.batchedIo?.receiveRuns).toBe(true)
      expect(off.db.diagnostics.batchedIo).toMatchObject({ receiveRuns: false, receiveRunsReason: expect.stringContaining(RECEIVE_RUN_DISABLE_ENV) })
      for (const mtu of [1024, 4096] as const) {
        const a = await transfers(on, mtu)
        const b = await transfers(off, mtu)
        expect(a, `MTU ${mtu}`).toEqual(b)
        for (let k = 0; k < SIZES.length; k++) {
          expect(a.memory[3 * k], 'the WRITE landed').toBe(sha(pattern(SIZES[k]!, SIZES[k]! & 0xff)))
          expect(a.memory[3 * k + 1], 'the SEND landed').toBe(a.memory[3 * k + 2])
          expect(a.completions[k]).toMatchObject({ status: 'SUCCESS', byteLen: SIZES[k] })
        }
      }
      const s = on.db.batchedIo!.stats
      expect(s.receiveRuns, 'receive runs').toBeGreaterThan(0)
      expect(s.receiveRunPackets / s.receiveRuns, 'packets per run').toBeGreaterThan(2)
      expect(off.db.batchedIo!.stats.receiveRuns).toBe(0)
      for (const d of [on.db, off.db]) {
        expect(d.counters.drops.badIcrc).toBe(0)
        expect(d.counters.drops.malformed).toBe(0)
      }
      // Every packet is counted once, whichever path took it.
      expect(on.db.counters.packetsReceived).toBeGreaterThanOrEqual(on.da.counters.packetsSent - on.da.counters.retransmits)
    })
  }

  it(`${RUN_DISABLE_ENV}=off turns receive runs off too`, async () => {
    const pair = await openWith({ [RUN_DISABLE_ENV]: 'off' })
    expect(pair.db.diagnostics.batchedIo).toMatchObject({ receiveRuns: false, receiveRunsReason: expect.stringContaining(RUN_DISABLE_ENV) })
  })

  it('over a link that loses, duplicates, reorders and corrupts, with two QPs interleaved, runs stop at each odd packet and everything lands byte-exact', async () => {
    // Only A's sends are impaired (its impairment layer also keeps A from framing runs): B, the
    // receiver, keeps its receive runs on and meets every kind of unusual packet.
    const impairment = { loss: 0.01, duplicate: 0.02, reorder: 0.02, corrupt: 0.01, seed: 9 }
    const pair = await openWith({}, { impairment, windowBytes: 512 * 1024 }, { windowBytes: 512 * 1024 })
    const one = connect(pair, { mtu: 4096 })
    const two = connect(pair, { mtu: 1024 })
    const size = (4 << 20) + 1000
    const src = register(pair.a, 2 * size)
    src.bytes.set(pattern(size, 1), 0)
    src.bytes.set(pattern(size, 2), size)
    const dst = register(pair.b, 2 * size)
    const recvs = [register(pair.b, size), register(pair.b, size)]
    const sends = recvs.map((r, k) => ({ done: (k === 0 ? one : two).qb.recv(r.slice(0, size)) }))
    await Promise.all([
      one.qa.write(src.slice(0, size), dst.region(0, size)),
      two.qa.write(src.slice(size, size), dst.region(size, size)),
      one.qa.send(src.slice(size, size)),
      two.qa.send(src.slice(0, size)),
    ])
    const wcs = await Promise.all(sends.map((s) => s.done))
    expect(sha(dst.bytes.subarray(0, size))).toBe(sha(pattern(size, 1)))
    expect(sha(dst.bytes.subarray(size))).toBe(sha(pattern(size, 2)))
    expect(sha(recvs[0]!.bytes)).toBe(sha(pattern(size, 2)))
    expect(sha(recvs[1]!.bytes)).toBe(sha(pattern(size, 1)))
    for (const wc of wcs) expect(wc).toMatchObject({ status: 'SUCCESS', byteLen: size })
    const imp = pair.da.impairment.stats
    expect(imp.lost).toBeGreaterThan(0)
    expect(imp.duplicated).toBeGreaterThan(0)
    expect(imp.reordered).toBeGreaterThan(0)
    expect(imp.corrupted).toBeGreaterThan(0)
    const c = pair.db.counters
    // A corrupted packet (bad ICRC) stopped a run and the per-packet path dropped and counted it;
    // duplicates and packets past a gap went that path too.
    expect(c.drops.badIcrc, 'corrupted packets dropped as bad ICRCs').toBeGreaterThan(0)
    expect(c.duplicatesAnswered + c.drops.badPsn, 'duplicates and gaps met').toBeGreaterThan(0)
    const s = pair.db.batchedIo!.stats
    expect(s.receiveRuns).toBeGreaterThan(0)
    expect(s.receiveRunPackets).toBeGreaterThan(1000)
  }, 60_000)
})
