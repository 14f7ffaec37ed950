/**
 * Real impairment between two network namespaces: 256 MiB of mixed RDMA WRITE / READ / SEND over
 * IPv4 with selective repeat and with go-back-N (and 64 MiB over IPv6, selective repeat) between two softroce hosts whose datagrams cross veth links, 5 % kernel-level loss each way
 * (nftables `numgen random mod 100 < 5 drop`), and a relay process that delays every datagram
 * 10 ms, duplicates 1 % and reorders 1 % (netns-lab.ts, udp-impairment-relay.mjs). Both ends
 * must be sha256-identical, with exactly one completion per send and receive WR.
 *
 * Each host is its own process (stack-host.ts, bundled with tsup) whose socket the native helper
 * made inside the host's namespace; the relay is a third process. RDMA_NETNS_MIB (default 256),
 * RDMA_NETNS_MIB6 (the IPv6 run, default 64),
 * RDMA_NETNS_QPS, RDMA_NETNS_WINDOW_KIB and RDMA_NETNS_TIMEOUT_MS change the run. Skipped, with the reason printed, without root, `ip netns` or nft.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { loadSockoptAddon } from '../../src/socket/sockopt-addon.js'
import type { DeviceCountersSnapshot } from '../../src/index.js'
import { bundleHost } from '../bundle-host.js'
import { createImpairedPath, labUnavailable, type ImpairedPath } from './netns-lab.js'
import type { CompletionTally, Op } from './stack-host.js'
import { seededRandom } from '@rdma-session/core'
import { environmentSkip } from '../../../../tools/test-env.mjs'

const why = environmentSkip('softroce netns impaired link', labUnavailable())

const here = dirname(fileURLToPath(import.meta.url))
const MiB = 1 << 20
/** Bytes moved by the IPv4 run and by the IPv6 run. */
const TOTAL = { 4: Number(process.env.RDMA_NETNS_MIB ?? 256) * MiB, 6: Number(process.env.RDMA_NETNS_MIB6 ?? 64) * MiB }
/**
 * QP pairs sharing the link, and the bytes each may have unacknowledged: 1 MiB in flight in all.
 * Small windows lose less to go-back-N per loss, and the bursts after a timeout fit the relay's
 * and the hosts' socket buffers even when this 2-core machine is loaded.
 */
const QPS = Number(process.env.RDMA_NETNS_QPS ?? 32)
const WINDOW = Number(process.env.RDMA_NETNS_WINDOW_KIB ?? 32) * 1024
/** Send WRs in flight per QP. */
const DEPTH = 4
/**
 * ACK timeout 300 ms (the round trip is 20 ms plus queueing): a lost NAK, tail packet or last READ
 * response is recovered by it; retryCnt 7 then tolerates 2.4 s without progress on a loaded host
 * (at 200 ms, 2 of 67 IPv6 runs under extreme load lost an early READ to RETRY_EXC_ERR while the
 * relay's and host B's receive buffers overflowed: a starved process, not the wire).
 */
const TIMERS = { ackTimeoutMinMs: Number(process.env.RDMA_NETNS_TIMEOUT_MS ?? 300), ackTimeoutMaxMs: 1000, rnrDelayMaxMs: 5 }


/**
 * Ops covering [0, total) once: 4 KiB–2 MiB (odd lengths included), 40 % WRITE, 30 % READ,
 * 30 % SEND, each on the QP with the fewest bytes so far (so the QPs finish together).
 */
function plan(seed: number, total: number): Op[] {
  const random = seededRandom(seed)
  const ops: Op[] = []
  const load = new Array<number>(QPS).fill(0)
  for (let off = 0; off < total;) {
    const len = Math.min(total - off, 4096 + Math.floor(random() * 2 * MiB) + Math.floor(random() * 4))
    const k = random()
    const qp = load.indexOf(Math.min(...load))
    load[qp]! += len
    ops.push({ kind: k < 0.4 ? 'WRITE' : k < 0.7 ? 'READ' : 'SEND', off, len, qp })
    off += len
  }
  return ops
}

/** A forked stack-host.ts with request/response over IPC. */
class Host {
  readonly #child: ChildProcess
  #next = 0
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()

  constructor(bundle: string, readonly name: string) {
    this.#child = fork(bundle, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    this.#child.on('message', (m: { id?: number; ok?: unknown; error?: string; progress?: string }) => {
      if (m.progress !== undefined) return console.info(`[netns] host ${name}: ${m.progress}`)
      const p = this.#pending.get(m.id!)
      this.#pending.delete(m.id!)
      if (m.error !== undefined) p?.reject(new Error(`host ${name}: ${m.error}`))
      else p?.resolve(m.ok)
    })
    this.#child.on('exit', (code, signal) => {
      for (const p of this.#pending.values()) p.reject(new Error(`host ${name} exited (${String(code ?? signal)})`))
      this.#pending.clear()
    })
  }

  call<T>(cmd: string, args: object = {}): Promise<T> {
    const id = this.#next++
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.#child.send({ id, cmd, ...args })
    })
  }

  async close(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return
    const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()))
    await this.call('close').catch(() => {})
    const kill = setTimeout(() => this.#child.kill('SIGKILL'), 3000)
    await exited
    clearTimeout(kill)
  }
}

interface Opened { qps: { qpn: number; psn: number }[]; rkey: number; addr: number; diagnostics: { pmtudiscDo: boolean; noCheck6Rx: boolean } }
interface Finished { cpuSeconds: number; sha: string; counters: DeviceCountersSnapshot; batchedIo: { send: string; stats: { gsoMessages: number; gsoSegments: number; runs: number; runPackets: number; aggregates: number; segments: number } } | null; sends: CompletionTally; recvs: CompletionTally; stray: number; failures: unknown[] }

let bundle = ''
let lab: ImpairedPath | null = null
let hosts: Host[] = []
afterEach(async () => {
  await Promise.allSettled(hosts.map((h) => h.close()))
  hosts = []
  await lab?.close()
  lab = null
})

describe.skipIf(Boolean(why))('two network namespaces, 5 % loss + 1 % duplication + reordering + 10 ms delay', () => {
  beforeAll(async () => {
    bundle = await bundleHost(join(here, 'stack-host.ts'))
  }, 60_000)

  it.each([
    { family: 4, selectiveRepeat: true, path: 'selective repeat' },
    { family: 4, selectiveRepeat: false, path: 'go-back-N' },
    { family: 6, selectiveRepeat: true, path: 'selective repeat' },
  ] as const)('IPv$family, $path: mixed WRITE/READ/SEND end sha256-identical with exactly one completion per WR', async ({ family, selectiveRepeat }) => {
    const total = TOTAL[family]
    lab = await createImpairedPath({ family, lossPercent: 5, relay: { seed: 42, delayMs: 10, duplicate: 0.01, reorder: 0.01 } })
    const a = new Host(bundle, 'a')
    const b = new Host(bundle, 'b')
    hosts.push(a, b)
    const addon = loadSockoptAddon()
    if (!addon.loaded) throw new Error(addon.why)
    const common = { port: lab.port, total, qps: QPS, windowBytes: WINDOW, timers: TIMERS, addonPath: addon.path, selectiveRepeat }
    // What each end would learn from the other's endpoint record in a session.
    const extensions = selectiveRepeat ? { extensions: ['selective-repeat'] } : {}
    const [oa, ob] = await Promise.all([
      a.call<Opened>('open', { ...common, netns: lab.ns.a, address: lab.address.a }),
      b.call<Opened>('open', { ...common, netns: lab.ns.b, address: lab.address.b }),
    ])
    if (family === 4) expect(oa.diagnostics.pmtudiscDo && ob.diagnostics.pmtudiscDo, 'both sockets send IP ID 0 + DF').toBe(true)
    else expect(oa.diagnostics.noCheck6Rx && ob.diagnostics.noCheck6Rx, 'both sockets take zero-checksum datagrams').toBe(true)
    await a.call('connect', { remote: { address: lab.address.b, port: lab.port, ...extensions }, peerQps: ob.qps, peerRkey: ob.rkey, peerAddr: ob.addr })
    await b.call('connect', { remote: { address: lab.address.a, port: lab.port, ...extensions }, peerQps: oa.qps, peerRkey: oa.rkey, peerAddr: oa.addr })

    // WRITE and SEND move A -> B, READ moves B -> A: at the end both regions hold the whole keystream.
    const ops = plan(2024, total)
    const [fa, fb] = await Promise.all([a.call<{ expectedSha: string }>('fill', { ops, side: 'a' }), b.call<{ expectedSha: string }>('fill', { ops, side: 'b' })])
    expect(fa.expectedSha).toBe(fb.expectedSha)
    await b.call('recv', { ops })
    const { seconds, failures } = await a.call<{ seconds: number; failures: unknown[] }>('run', { ops, depth: DEPTH })
    const [ra, rb] = await Promise.all([a.call<Finished>('finish'), b.call<Finished>('finish')])
    const relay = await lab.relayStats()
    const nft = lab.nftDrops()
    const kernel = lab.kernelDrops()
    const ca = ra.counters
    const cb = rb.counters
    const count = (k: Op['kind']): number => ops.filter((o) => o.kind === k).length
    console.info([
      `[netns] IPv${family} (${selectiveRepeat ? 'selective repeat' : 'go-back-N'}): ${total / MiB} MiB (${ops.length} WRs: ${count('WRITE')} WRITE, ${count('READ')} READ, ${count('SEND')} SEND) over ${QPS} QPs in ${seconds.toFixed(1)} s = ${(total / MiB / seconds).toFixed(1)} MiB/s`,
      `[netns] nftables dropped ${nft[0]} toward B, ${nft[1]} toward A; relay forwarded ${relay.forwarded.join('/')}, duplicated ${relay.duplicated.join('/')}, reordered ${relay.reordered.join('/')} (A->B/B->A), most queued ${relay.maxQueued}`,
      `[netns] kernel drops besides nftables (UDP receive buffers, veth): ${JSON.stringify(kernel)}`,
      `[netns] A: sent ${ca.packetsSent}, received ${ca.packetsReceived}, retransmits ${ca.retransmits}, timeouts ${ca.timeouts}, seq NAKs received ${ca.seqNaksReceived}, SACK NAKs received ${ca.sackNaksReceived}, tail probes ${ca.tailProbes}, drops ${JSON.stringify(ca.drops)}`,
      `[netns] B: sent ${cb.packetsSent}, received ${cb.packetsReceived}, duplicates answered ${cb.duplicatesAnswered}, NAKs sent ${cb.naksSent} (SACK ${cb.sackNaksSent}), held out of order ${cb.outOfOrderBuffered}, reorder overflows ${cb.reorderOverflows}, drops ${JSON.stringify(cb.drops)}`,
      `[netns] socket: A runs ${ra.batchedIo?.stats.runs ?? 0} (${ra.batchedIo?.stats.runPackets ?? 0} packets), send errors ${ca.sendErrors}, queued for a full send queue ${ca.nativeSendFallbacks}, receive errors ${ca.receiveErrors}, GRO aggregates ${ra.batchedIo?.stats.aggregates ?? 0}; B send errors ${cb.sendErrors}, queued ${cb.nativeSendFallbacks}, receive errors ${cb.receiveErrors}, GRO aggregates ${rb.batchedIo?.stats.aggregates ?? 0}`,
      `[netns] completions: sends ${JSON.stringify(ra.sends)}, receives ${JSON.stringify(rb.recvs)}, stray ${ra.stray + rb.stray}`,
      `[netns] CPU seconds: host A ${ra.cpuSeconds.toFixed(1)}, host B ${rb.cpuSeconds.toFixed(1)}, relay ${relay.cpuSeconds.toFixed(1)}`,
      `[netns] sha256 expected ${fa.expectedSha.slice(0, 16)}…, A ${ra.sha.slice(0, 16)}…, B ${rb.sha.slice(0, 16)}…`,
    ].join('\n'))
    expect(failures).toEqual([])
    expect(rb.failures).toEqual([])
    expect(ra.sends).toEqual({ expected: ops.length, distinct: ops.length, extra: 0 })
    expect(rb.recvs).toEqual({ expected: count('SEND'), distinct: count('SEND'), extra: 0 })
    expect(ra.stray + rb.stray, 'no completions after the last one').toBe(0)
    expect(ra.sha).toBe(fa.expectedSha)
    expect(rb.sha).toBe(fa.expectedSha)
    // The path really was impaired, and the relay kept every datagram's ICRC valid as sent:
    // verified exactly (IPv4: IP ID 0 assumed, solved only for the segments 1, 2, ... of the
    // peer's UDP GSO messages, whose ICRCs are made for those IDs), nothing from an unexpected source.
    expect(Math.min(...nft), 'nftables dropped datagrams both ways').toBeGreaterThan(0)
    expect(Math.min(...relay.duplicated), 'the relay duplicated both ways').toBeGreaterThan(0)
    expect(Math.min(...relay.reordered), 'the relay reordered both ways').toBeGreaterThan(0)
    expect(ca.retransmits).toBeGreaterThan(0)
    if (selectiveRepeat) {
      expect(ca.sackNaksReceived + cb.sackNaksReceived, 'gaps were reported with SACK NAKs').toBeGreaterThan(0)
      expect(cb.outOfOrderBuffered + ca.outOfOrderBuffered, 'packets past gaps were held').toBeGreaterThan(0)
    } else {
      expect(ca.sackNaksReceived + cb.sackNaksReceived + ca.outOfOrderBuffered + cb.outOfOrderBuffered, 'go-back-N: no SACK, nothing held').toBe(0)
    }
    for (const [c, peer] of [[ca, rb], [cb, ra]] as const) {
      expect(c.drops.badIcrc).toBe(0)
      const numbered = peer.batchedIo?.send === 'gso' ? peer.batchedIo.stats.gsoSegments - peer.batchedIo.stats.gsoMessages : 0
      // at most every numbered segment, each twice (the relay duplicates some)
      expect(c.ipv4IdSolved).toBeLessThanOrEqual(2 * numbered)
      expect(c.drops.wrongSource + c.drops.unknownQpn + c.drops.malformed).toBe(0)
    }
    expect(relay.foreign).toEqual([0, 0])
  }, 10 * 60_000)
})
