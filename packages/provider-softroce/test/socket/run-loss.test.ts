/**
 * Runs (send-run.ts: middle packets framed by the helper and sent as UDP GSO) that are lost in
 * part or whole, deterministically: two softroce devices on loopback inside a network namespace,
 * with nftables rules there that drop the first transmission of chosen PSNs toward B (and of
 * chosen READ responses toward A). IPv4 and IPv6, selective repeat and go-back-N. Every WR must
 * complete once, byte-exact, with the dropped packets sent again.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { loadSockoptAddon, runOf } from '../../src/socket/sockopt-addon.js'
import { connect, openPair, pattern, register, type Pair } from '../rc/harness.js'
import { makeNetns, netnsUnavailable } from './helpers.js'
import { environmentSkip } from '../../../../tools/test-env.mjs'

function whyNot(): string | null {
  if (netnsUnavailable !== null) return netnsUnavailable
  if (spawnSync('nft', ['--version']).status !== 0) return 'nft is not installed (Debian package nftables)'
  const a = loadSockoptAddon()
  if (!a.loaded) return `the native helper is not loaded: ${a.why}`
  if (runOf(a.addon) === null) return 'the native helper has no run support'
  return null
}
const skip = environmentSkip('softroce runs lost in part', whyNot())

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const cleanup: (() => unknown)[] = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

const MTU = 4096
const PSN_A = 0x100
const PSN_B = 0x700

/**
 * nft rules in `ns`: drop the first transmission of each listed PSN sent to `port`. A quota of
 * 1.5 times the packet's IP length lets exactly one through the drop (nft adds a packet's bytes
 * before it compares): `bytes` is the packet's UDP payload.
 */
function dropFirst(ns: string, family: 4 | 6, rules: { port: number; psn: number; bytes: number }[]): () => Record<string, number> {
  const lines = rules.map(({ port, psn, bytes }) => `    udp dport ${port} @th,136,24 ${psn} quota until ${Math.floor(1.5 * (bytes + 8 + (family === 4 ? 20 : 40)))} bytes counter drop comment "psn ${psn}"`)
  const text = `table inet runloss {\n  chain input {\n    type filter hook input priority 0; policy accept;\n${lines.join('\n')}\n  }\n}\n`
  execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: text, stdio: ['pipe', 'pipe', 'pipe'] })
  return () => {
    const out = execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'table', 'inet', 'runloss'], { encoding: 'utf8' })
    const hits: Record<string, number> = {}
    for (const m of out.matchAll(/counter packets (\d+) bytes \d+ .*?comment "psn (\d+)"/g)) hits[m[2]!] = Number(m[1])
    return hits
  }
}

async function pairIn(ns: string, family: 4 | 6, selectiveRepeat: boolean): Promise<Pair> {
  const addon = loadSockoptAddon()
  if (!addon.loaded) throw new Error(addon.why)
  const address = family === 4 ? '127.0.0.1' : '::1'
  const socket = (): { fd: number; pmtudiscDo: boolean; noCheck6Rx: boolean } => ({ fd: addon.addon.createUdpSocket({ family, address, port: 0, netns: ns }), pmtudiscDo: family === 4, noCheck6Rx: family === 6 })
  const pair = await openPair({ address, selectiveRepeat, socket: socket() }, { address, selectiveRepeat, socket: socket() })
  cleanup.push(() => pair.close())
  return pair
}

describe.skipIf(Boolean(skip))('runs lost in part or whole', () => {
  for (const family of [4, 6] as const) {
    for (const selectiveRepeat of [true, false]) {
      it(`IPv${family}, ${selectiveRepeat ? 'selective repeat' : 'go-back-N'}: WRITE, READ and SEND with packets of runs dropped`, async () => {
        const ns = makeNetns(`runloss${family}${selectiveRepeat ? 's' : 'g'}`)
        cleanup.push(() => ns.remove())
        // lo cuts every UDP GSO message into its datagrams before they reach nftables, so single
        // packets of a run can be dropped (on a veth, a GSO message is lost or kept as a whole).
        execFileSync('ip', ['-n', ns.name, 'link', 'set', 'lo', 'gso_max_segs', '1'])
        const pair = await pairIn(ns.name, family, selectiveRepeat)
        const { qa, qb } = connect(pair, { mtu: MTU, psnA: PSN_A, psnB: PSN_B, timeout: 14 })
        const size = 24 * MTU
        const ma = register(pair.a, 3 * size)
        const mb = register(pair.b, 3 * size)
        const data = pattern(3 * size, 7)
        ma.bytes.set(data.subarray(0, size), 0)
        mb.bytes.set(data.subarray(size, 2 * size), size)
        ma.bytes.set(data.subarray(2 * size), 2 * size)
        // WRITE: PSNs A..A+23 (first, one run of 22 middle packets, last); READ: request and
        // responses A+24..A+47; SEND: A+48..A+71 (first, run, last).
        const seq = (from: number, n: number): number[] => Array.from({ length: n }, (_, k) => PSN_A + from + k)
        // Toward B: two packets inside the WRITE's run, its last run packet and last packet, the
        // READ request, the first 7 packets of the SEND's run and its last run packet. Toward A:
        // two READ responses in the middle and the last one.
        const toB = [...seq(2, 2), ...seq(22, 3), ...seq(49, 7), PSN_A + 70]
        const toA = [...seq(29, 2), PSN_A + 47]
        // UDP payload bytes of each PSN's packets: the READ request is BTH + RETH + ICRC, the rest carry 4096 bytes.
        const bytesOf = (psn: number): number => (psn === PSN_A + 24 ? 32 : MTU + 32)
        const hits = dropFirst(ns.name, family, [
          ...toB.map((psn) => ({ port: pair.db.info.port, psn, bytes: bytesOf(psn) })),
          ...toA.map((psn) => ({ port: pair.da.info.port, psn, bytes: bytesOf(psn) })),
        ])
        const recv = qb.recv(mb.slice(2 * size, size))
        await Promise.all([
          qa.write(ma.slice(0, size), mb.region(0, size)),
          qa.read(ma.slice(size, size), mb.region(size, size)),
          qa.send(ma.slice(2 * size, size)),
        ])
        await recv
        expect(sha(mb.bytes.subarray(0, size)), 'the WRITE landed').toBe(sha(data.subarray(0, size)))
        expect(sha(ma.bytes.subarray(size, 2 * size)), 'the READ returned').toBe(sha(data.subarray(size, 2 * size)))
        expect(sha(mb.bytes.subarray(2 * size)), 'the SEND landed').toBe(sha(data.subarray(2 * size)))
        const dropped = hits()
        const c = pair.da.counters
        console.info(`[run-loss] IPv${family} ${selectiveRepeat ? 'selective repeat' : 'go-back-N'}: runs ${pair.da.batchedIo?.stats.runs} (${pair.da.batchedIo?.stats.runPackets} packets), retransmits ${c.retransmits}, timeouts ${c.timeouts}, SACK NAKs ${c.sackNaksReceived}`)
        expect(pair.da.batchedIo!.stats.runs, 'middle packets left as runs').toBeGreaterThanOrEqual(2)
        for (const p of [...toB, ...toA]) expect(dropped[p], `PSN ${p} dropped once`).toBe(1)
        expect(c.retransmits, 'the dropped packets were sent again').toBeGreaterThan(0)
        if (selectiveRepeat) expect(c.sackNaksReceived, 'gaps reported with SACK NAKs').toBeGreaterThan(0)
        expect(pair.db.counters.drops.badIcrc + pair.da.counters.drops.badIcrc).toBe(0)
      }, 60_000)
    }
  }
})
