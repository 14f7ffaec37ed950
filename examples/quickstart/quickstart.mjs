// Quickstart: two endpoints (contexts), one session between them, a bulk QP added by
// session ID, then RDMA WRITE, READ, SEND and both atomics. Runs on the in-memory mock
// by default; set RDMA_SESSION_PROVIDER to another provider (e.g. softroce) to swap it.
import { createContext, formatQuantile } from '@rdma-session/core'

const log = (...args) => console.log(...args)
const REMOTE_ACCESS = ['local-write', 'remote-read', 'remote-write', 'remote-atomic']

// Two endpoints. With no provider given, createContext() loads $RDMA_SESSION_PROVIDER (default: mock).
// softroce binds UDP 4791 unless told otherwise; two endpoints in one process take ephemeral ports.
const providerOptions = process.env.RDMA_SESSION_PROVIDER === 'softroce' ? { port: 0 } : undefined
const alice = await createContext({ providerOptions })
const bob = await createContext({ providerOptions })
log(`provider: ${alice.provider.name}; alice at ${alice.info.address}:${alice.info.port}, bob at ${bob.info.address}:${bob.info.port}`)

// Bob exposes a 64 KiB region that peers may read, write and use for atomics.
const bobMemory = bob.registerMemory(Buffer.alloc(65536), { access: REMOTE_ACCESS })
bob.sessions.expose('data', bobMemory.region())

// Alice creates a session to Bob with one latency QP; the session and the QP come up in one round trip.
// Sessions are encrypted by default (aes-256-gcm per packet, required). 'preferred' falls back to
// plaintext where an end cannot encrypt (provider-verbs); 'none' asks for plaintext RoCEv2, what
// kernel rxe and RoCE NICs speak.
const session = await alice.sessions.create({
  peer: bob,
  params: { encryption: 'preferred', encapsulation: { mtu: 1024, dscp: 26 } },
  qps: [{ qos: { class: 'latency', serviceLevel: 3 } }],
})
const suite = session.params.encryption.suite
log(`session created: ${session.id} -> ${session.remoteKey}, encryption ${suite} (${suite === 'none' ? 'PLAINTEXT: an end cannot encrypt' : 'every packet sealed with AEAD'})`)

// Later (or elsewhere in the app): find the session by its remote and add a bulk QP by its ID.
const id = alice.sessions.query({ remote: session.remote })
const [bulk] = await alice.sessions.addQps(id, [{ qos: { class: 'bulk', weight: 4, rateLimit: '2Gbps' } }], { remote: session.remote })
log(`query -> ${id}; added bulk QP ${bulk.qpn}; the session now has ${session.size} QPs (${session.qps.map((q) => q.qos.className).join(', ')})`)

const remote = session.remoteRegions.get('data')
const mine = alice.registerMemory(Buffer.alloc(65536), { access: ['local-write'] })

// RDMA WRITE 32 KiB over the bulk QP, then READ it back over the latency QP.
mine.bytes.fill(0xab, 0, 32768)
await bulk.write(mine.slice(0, 32768), remote)
log(`write: bob's first byte is now 0x${bobMemory.bytes[0].toString(16)}, bytes ${bobMemory.bytes.subarray(0, 32768).every((b) => b === 0xab) ? 'all match' : 'DIFFER'}`)
bobMemory.bytes.set(Buffer.from('hello from bob'), 40000)
const [latency] = session.qpsOfClass('latency')
await latency.read(mine.slice(40000, 14), { ...remote, addr: remote.addr + 40000, length: 14 })
log(`read: "${Buffer.from(mine.bytes.subarray(40000, 40014)).toString()}"`)

// SEND: Bob posts a receive on his end of the latency QP, Alice sends.
const bobSession = bob.sessions.get(session.id)
const bobLatency = bobSession.qp(latency.remoteQpn)
const inbox = bob.registerMemory(Buffer.alloc(256), { access: ['local-write'] })
const received = bobLatency.recv(inbox.slice())
await latency.send(Buffer.from('ping'))
const wc = await received
log(`send: bob received ${wc.byteLen} bytes: "${Buffer.from(inbox.bytes.subarray(0, wc.byteLen)).toString()}"`)

// Atomics on an 8-byte counter in Bob's region.
const counter = { ...remote, addr: remote.addr + 65528, length: 8 }
const old = mine.slice(65528, 8)
if (alice.capabilities.atomics) {
  await latency.fetchAndAdd(old, counter, 5n)
  await latency.fetchAndAdd(old, counter, 7n)
  log(`fetch-and-add: previous value ${Buffer.from(old.bytes).readBigUInt64LE()}, counter now ${Buffer.from(bobMemory.bytes).readBigUInt64LE(65528)}`)
  await latency.compareAndSwap(old, counter, 12n, 100n)
  log(`compare-and-swap 12 -> 100: counter now ${Buffer.from(bobMemory.bytes).readBigUInt64LE(65528)}`)
} else {
  log('atomics: skipped, the provider declares atomics=false')
}

// Striped write over every QP of the session.
mine.bytes.fill(0x5a)
const striped = await session.write(mine.slice(), remote, { chunkSize: 8192 })
log(`striped write: ${striped.bytes} bytes in ${striped.chunks} chunks over ${Object.keys(striped.chunksPerQp).length} QPs`)

const stats = session.stats().session
// Latency percentiles come from a power-of-two histogram: printed with the bucket they lie in.
log(`stats: ${stats.opsCompleted} ops, ${stats.bytesSent} bytes sent, ${stats.bytesReceived} received, ${stats.errors} errors, latency ${formatQuantile('p50', stats.latency.p50)}, ${formatQuantile('p99', stats.latency.p99)}`)

await alice.close()
await bob.close()
log('closed: sessions, QPs, memory and devices released')
