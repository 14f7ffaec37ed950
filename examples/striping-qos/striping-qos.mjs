// Striping and QoS classes in one session: a `latency` QP and two `bulk` QPs to the same
// peer. Bulk traffic is striped over the bulk QPs and floods the link; meanwhile small
// RDMA WRITEs on the latency QP keep a low p99 because each QP is its own scheduled flow.
// For contrast, the same small writes posted on a bulk QP wait behind its bulk data.
// Runs on the mock (with a 1 Gbps link so the QoS scheduler has something to share) by
// default; RDMA_SESSION_PROVIDER=softroce runs it over UDP on loopback.
import { createContext, formatMicros, formatQuantile } from '@rdma-session/core'
import { MockFabric } from '@rdma-session/provider-mock'

const LINK = 125e6 // mock link rate, bytes/s (1 Gbps)
const log = (...args) => console.log(...args)

const provider = process.env.RDMA_SESSION_PROVIDER || 'mock'
const PROBES = provider === 'mock' ? 200 : 50 // small writes timed per phase
const providerOptions = provider === 'mock' ? { fabric: new MockFabric({ linkBytesPerSecond: LINK, refTimers: true }) } : provider === 'softroce' ? { port: 0 } : {}
const alice = await createContext({ provider, providerOptions })
const bob = await createContext({ provider, providerOptions })
log(`provider: ${alice.provider.name}${provider === 'mock' ? `, link ${(LINK * 8) / 1e9} Gbps` : ''}; qos scheduling: ${alice.capabilities.qosScheduling}`)
if (provider !== 'mock') log('note: both endpoints run in this one process and share its event loop, so the flood also competes for the CPU; run the peer elsewhere to see the link alone')

const REGION = 4 << 20
const target = bob.registerMemory(Buffer.alloc(REGION), { access: ['local-write', 'remote-write', 'remote-read'] })
bob.sessions.expose('data', target.region())

// One session; its first QP is the latency QP. Bulk QPs are added to it by session ID.
const session = await alice.sessions.create({ peer: bob, qps: [{ qos: { class: 'latency', serviceLevel: 3, weight: 1 } }] })
const [bulkA, bulkB] = await alice.sessions.addQps(session.id, [{ qos: { class: 'bulk', serviceLevel: 0, weight: 4 } }, { qos: { class: 'bulk', serviceLevel: 0, weight: 4 } }], { remote: session.remote })
const [latency] = session.qpsOfClass('latency')
log(`session ${session.id}: ${session.size} QPs (${session.qps.map((q) => `${q.qpn}:${q.qos.className}/w${q.qos.weight}`).join(', ')})`)

const remote = session.remoteRegions.get('data')
const local = alice.registerMemory(Buffer.alloc(REGION))
const probeTarget = { ...remote, addr: remote.addr + REGION - 64, length: 64 }

/** PROBES small writes on `qp`, one at a time; returns sorted latencies in µs. */
async function probe(qp) {
  const us = []
  for (let i = 0; i < PROBES; i++) {
    const t0 = performance.now()
    await qp.write(local.slice(REGION - 64, 64), probeTarget)
    us.push((performance.now() - t0) * 1000)
  }
  return us.sort((a, b) => a - b)
}
const pct = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]
const describe = (sorted) => `p50 ${formatMicros(pct(sorted, 0.5))}, p99 ${formatMicros(pct(sorted, 0.99))}`

/** Striped bulk writes (class `bulk`) over and over until `stop()`; returns bytes moved and seconds. */
function flood() {
  let running = true
  let bytes = 0
  const t0 = performance.now()
  const done = (async () => {
    while (running) {
      const r = await session.write(local.slice(0, REGION - 65536), remote, { class: 'bulk', chunkSize: 65536 })
      bytes += r.bytes
    }
  })()
  return async () => {
    running = false
    await done
    return { bytes, seconds: (performance.now() - t0) / 1000 }
  }
}

await probe(latency) // warm-up
const idle = await probe(latency)
log(`latency QP, link idle:          ${describe(idle)}`)

let stop = flood()
await new Promise((r) => setTimeout(r, 50)) // let the bulk queues fill
const isolated = await probe(latency)
let moved = await stop()
log(`latency QP, bulk flooding:      ${describe(isolated)}`)
log(`bulk: ${(moved.bytes / 2 ** 20).toFixed(0)} MiB striped over 2 bulk QPs at ${((moved.bytes * 8) / moved.seconds / 1e9).toFixed(2)} Gbps`)

stop = flood()
await new Promise((r) => setTimeout(r, 50))
const shared = await probe(bulkA)
moved = await stop()
log(`same writes on a bulk QP (no isolation), flooding: ${describe(shared)}`)

const p50Ratio = pct(shared, 0.5) / pct(isolated, 0.5)
const p99Ratio = pct(shared, 0.99) / pct(isolated, 0.99)
log(`isolation: under the flood the latency QP's p50 is ${p50Ratio.toFixed(1)}x and its p99 ${p99Ratio.toFixed(1)}x lower than on a shared bulk QP`)

const stats = session.stats()
for (const q of stats.qps) log(`stats qp ${q.qpn} (${q.class}): ${q.opsCompleted} ops, ${(q.bytesSent / 2 ** 20).toFixed(1)} MiB sent, ${formatQuantile('p99', q.latency.p99)}, ${q.errors} errors`)
log(`session: ${stats.session.opsCompleted} ops, ${stats.session.errors} errors; bulk chunks per QP: ${bulkA.stats.opsCompleted} and ${bulkB.stats.opsCompleted}`)

await alice.close()
await bob.close()
log('closed')
