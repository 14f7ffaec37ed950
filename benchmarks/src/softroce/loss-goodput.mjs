// softroce RC WRITE goodput under random loss, selective repeat (SR) against go-back-N (GBN).
// Two network namespaces joined by a veth pair; each softroce host is its own process inside its
// namespace (`ip netns exec`); nftables in each namespace drops a share of the RoCEv2 datagrams
// arriving there (`numgen random mod 100 < N drop`), so data packets and ACKs/NAKs are both lost.
// For each recovery mode the same host pair moves 1 MiB WRITEs (4 in flight, path MTU 4096) at
// 0 %, 1 % and 5 % loss, rounds interleaved (0-1-5, then 5-1-0), and reports goodput as a ratio
// of the lossless goodput of the same round (the median of the rounds' ratios), and retransmitted payload bytes per payload byte lost (nftables' drop counter
// on the responder's side, in 4 KiB WRITE packets: see drops()).
// Targets (issue 14): SR goodput >= 0.7x lossless at 1 %, >= 0.5x at 5 %; SR retransmitted bytes
// per lost byte <= 1.5. GBN is the contrast. Needs root, `ip netns` and nft: otherwise it says
// why and exits 0.
import { execFileSync, spawnSync } from 'node:child_process'
import { fmt, median, report } from '../measure.mjs'
import { PeerProcess } from './peer-process.mjs'

const MiB = 1 << 20
const TOTAL = Number(process.env.BENCH_LOSS_MIB ?? 64) * MiB
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const LOSSES = [0, 1, 5]
const SIZE = MiB
const DEPTH = 4
const PAYLOAD = 4096
/** A run at high loss stops posting after this long (goodput counts what completed). */
const DEADLINE_MS = 30_000
const PORT = 4791
const ADDR = { a: '10.98.0.1', b: '10.98.0.2' }

function unavailable() {
  if (process.platform !== 'linux') return `network namespaces exist only on Linux (this is ${process.platform})`
  if (process.getuid?.() !== 0) return 'not root (creating network namespaces needs CAP_SYS_ADMIN)'
  if (spawnSync('ip', ['netns', 'list']).status !== 0) return '`ip netns` is not available (install iproute2)'
  if (spawnSync('nft', ['--version']).status !== 0) return 'nft is not installed (Debian package nftables)'
  return null
}

const run = (...args) => execFileSync(args[0], args.slice(1), { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] })

const why = unavailable()
if (why !== null) {
  report('softroce WRITE goodput under loss, selective repeat vs go-back-N (netns pair, nftables drops)', [`skipped: ${why}`])
  process.exit(0)
}

const ns = { a: `rsbench-${process.pid}-a`, b: `rsbench-${process.pid}-b` }
const cleanup = () => {
  for (const n of Object.values(ns)) spawnSync('ip', ['netns', 'delete', n])
}
process.on('exit', cleanup)
for (const n of Object.values(ns)) {
  run('ip', 'netns', 'add', n)
  run('ip', '-n', n, 'link', 'set', 'lo', 'up')
}
run('ip', '-n', ns.a, 'link', 'add', 'rsb0', 'mtu', '9000', 'type', 'veth', 'peer', 'name', 'rsb1', 'netns', ns.b, 'mtu', '9000')
for (const [n, dev, addr] of [[ns.a, 'rsb0', ADDR.a], [ns.b, 'rsb1', ADDR.b]]) {
  run('ip', '-n', n, 'addr', 'add', `${addr}/24`, 'dev', dev)
  run('ip', '-n', n, 'link', 'set', dev, 'up')
}

/** (Re)creates each namespace's drop rule at `percent` (0: no rule); counters start at 0. */
function setLoss(percent) {
  for (const n of Object.values(ns)) {
    const rule = percent > 0 ? `    udp dport ${PORT} numgen random mod 100 < ${percent} counter drop\n` : ''
    const text = `table inet rsbench_loss\ndelete table inet rsbench_loss\ntable inet rsbench_loss {\n  chain input {\n    type filter hook input priority 0; policy accept;\n${rule}  }\n}\n`
    execFileSync('ip', ['netns', 'exec', n, 'nft', '-f', '-'], { input: text, stdio: ['pipe', 'pipe', 'pipe'] })
  }
}

/**
 * RoCE packets nftables dropped in namespace `n` since setLoss. With UDP GRO on the receiving
 * socket the input hook sees aggregates of several datagrams, so they are counted from the
 * dropped bytes: each aggregate is one IP + UDP header (28 bytes) and whole RoCE packets of
 * 4096 bytes of payload plus BTH and ICRC (4112), the first of a message 16 more (RETH).
 */
function drops(n) {
  const { skbs, bytes } = dropCounter(n)
  return Math.round((bytes - 28 * skbs) / (PAYLOAD + 16))
}

/** nftables' drop counter in namespace `n`: datagrams (or GRO aggregates) and their bytes. */
function dropCounter(n) {
  const text = run('ip', 'netns', 'exec', n, 'nft', 'list', 'table', 'inet', 'rsbench_loss')
  const m = /counter packets (\d+) bytes (\d+)/.exec(text)
  return m === null ? { skbs: 0, bytes: 0 } : { skbs: Number(m[1]), bytes: Number(m[2]) }
}

/** UDP datagrams the kernel dropped for a full socket receive buffer in namespace `n` (since it was made). */
function rcvbufErrors(n) {
  const lines = run('ip', 'netns', 'exec', n, 'cat', '/proc/net/snmp').split('\n').filter((l) => l.startsWith('Udp:'))
  const keys = lines[0].split(/\s+/)
  return Number(lines[1].split(/\s+/)[keys.indexOf('RcvbufErrors')])
}

/** A connected host pair (A requester, B responder) with selective repeat on or off. */
async function openPair(selectiveRepeat) {
  const hosts = { a: new PeerProcess({ netns: ns.a }), b: new PeerProcess({ netns: ns.b }) }
  const opened = {}
  for (const k of ['a', 'b']) {
    opened[k] = await hosts[k].call('open', { options: { address: ADDR[k], port: PORT, selectiveRepeat, ...JSON.parse(process.env.BENCH_LOSS_OPTIONS ?? '{}') }, regionBytes: 8 * MiB, qps: [{}] })
  }
  await hosts.a.call('connect', { remote: opened.b.endpoint, peerQps: opened.b.qps })
  await hosts.b.call('connect', { remote: opened.a.endpoint, peerQps: opened.a.qps })
  return { hosts, opened }
}

async function transfer(pair) {
  const before = { ...(await pair.hosts.a.call('counters')), kernelDrops: rcvbufErrors(ns.a) + rcvbufErrors(ns.b) }
  const r = await pair.hosts.a.call('writeTo', { addr: pair.opened.b.addr, rkey: pair.opened.b.rkey, total: TOTAL, size: SIZE, depth: DEPTH, deadlineMs: DEADLINE_MS })
  const after = await pair.hosts.a.call('counters')
  return {
    bytesPerSecond: r.bytes / (r.ms / 1000),
    retransmittedBytes: after.retransmittedBytes - before.retransmittedBytes,
    timeouts: after.timeouts - before.timeouts,
    sacks: after.sackNaksReceived - before.sackNaksReceived,
    probes: after.tailProbes - before.tailProbes,
    lostData: drops(ns.b),
    kernelDrops: rcvbufErrors(ns.a) + rcvbufErrors(ns.b) - before.kernelDrops,
    lostAcks: dropCounter(ns.a).skbs,
  }
}

const modes = [
  { name: 'SR', selectiveRepeat: true },
  { name: 'GBN', selectiveRepeat: false },
]
const only = process.env.BENCH_LOSS_MODES?.split(',')
const results = new Map()
try {
  for (const mode of modes) {
    if (only !== undefined && !only.includes(mode.name)) continue
    const pair = await openPair(mode.selectiveRepeat)
    setLoss(0)
    await transfer(pair) // warm-up
    const per = new Map(LOSSES.map((l) => [l, []]))
    for (let round = 0; round < ROUNDS; round++) {
      for (const loss of round % 2 === 0 ? LOSSES : [...LOSSES].reverse()) {
        setLoss(loss)
        per.get(loss).push(await transfer(pair))
      }
    }
    setLoss(0)
    await pair.hosts.a.close()
    await pair.hosts.b.close()
    results.set(mode.name, per)
  }
} finally {
  cleanup()
}

const mb = (x) => `${fmt(x / 1e6, 1)} MB/s`
const lines = []
const verdicts = []
for (const mode of modes) {
  const per = results.get(mode.name)
  if (per === undefined) continue
  const lossless = median(per.get(0).map((r) => r.bytesPerSecond))
  const l0 = per.get(0)
  lines.push(
    `${mode.name}: lossless ${mb(lossless)} (median of ${ROUNDS}; per round ${l0.map((r) => fmt(r.bytesPerSecond / 1e6, 0)).join(', ')} MB/s; ` +
      `${fmt(l0.reduce((s, r) => s + r.retransmittedBytes, 0) / MiB, 1)} MiB retransmitted, ${l0.reduce((s, r) => s + r.probes, 0)} tail probes, ${l0.reduce((s, r) => s + r.timeouts, 0)} ACK timeouts, ${l0.reduce((s, r) => s + r.kernelDrops, 0)} datagrams dropped by full socket buffers)`,
  )
  for (const loss of LOSSES.filter((l) => l > 0)) {
    const rs = per.get(loss)
    const goodput = median(rs.map((r) => r.bytesPerSecond))
    const lost = rs.reduce((s, r) => s + r.lostData, 0) * PAYLOAD
    const retx = rs.reduce((s, r) => s + r.retransmittedBytes, 0)
    // Each round's lossy run against the lossless run of the same round (adjacent in time: the
    // ratio does not move with the load other processes put on the machine between rounds).
    const ratio = median(rs.map((r, i) => r.bytesPerSecond / per.get(0)[i].bytesPerSecond))
    const perLost = lost > 0 ? retx / lost : 0
    lines.push(
      `${mode.name} ${loss} %: ${mb(goodput)}, ${fmt(ratio)}x lossless (median of the rounds' ratios); retransmitted ${fmt(retx / MiB, 1)} MiB for ${fmt(lost / MiB, 1)} MiB lost = ${fmt(perLost)} per lost byte; ` +
        `${rs.reduce((s, r) => s + r.lostAcks, 0)} ACK/NAK datagrams (or aggregates) lost, ${rs.reduce((s, r) => s + r.sacks, 0)} SACK NAKs, ${rs.reduce((s, r) => s + r.probes, 0)} tail probes, ${rs.reduce((s, r) => s + r.timeouts, 0)} ACK timeouts; per round ${rs.map((r) => fmt(r.bytesPerSecond / 1e6, 0)).join(', ')} MB/s`,
    )
    if (mode.name === 'SR') verdicts.push({ ok: ratio >= (loss === 1 ? 0.7 : 0.5) && perLost <= 1.5, text: `SR at ${loss} %: ${fmt(ratio)}x lossless (target >= ${loss === 1 ? 0.7 : 0.5}x), ${fmt(perLost)} retransmitted per lost byte (target <= 1.5)` })
  }
}
lines.push(`${fmt(TOTAL / MiB, 0)} MiB of ${SIZE / MiB} MiB WRITEs per measurement, ${DEPTH} in flight, loss in both directions`)
report('softroce WRITE goodput under loss, selective repeat vs go-back-N (netns pair, nftables drops)', lines, {
  ok: verdicts.every((v) => v.ok),
  text: verdicts.map((v) => v.text).join('; '),
})
