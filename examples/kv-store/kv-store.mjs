// A key-value store served from registered memory. The server keeps values in a table of
// fixed-size slots that peers may RDMA READ; its CPU only answers lookups ("where is key
// k?") sent as RDMA SENDs. A client looks a key up once, caches the slot's address, and
// from then on reads the value straight out of the server's memory with one RDMA READ —
// no server CPU. Each slot carries the key's hash and a version, so a client that reads a
// slot the server has since rewritten notices and looks the key up again.
// Runs on the mock by default; RDMA_SESSION_PROVIDER=softroce runs it over UDP on loopback.
import { createContext } from '@rdma-session/core'

const SLOT = 256 // bytes per slot: 16-byte header + value
const SLOTS = 1024
const HEADER = 16 // u32 key hash, u32 version, u32 value length, u32 reserved
const TOMBSTONE = 0xffffffff
const log = (...args) => console.log(...args)

/** FNV-1a, 32 bits: how a slot names its key. */
function keyHash(key) {
  let h = 0x811c9dc5
  for (const b of Buffer.from(key)) h = Math.imul(h ^ b, 0x01000193) >>> 0
  return h
}

// ---- the server: a slot table in registered memory, an index, a lookup service

class KvServer {
  constructor(ctx) {
    this.ctx = ctx
    this.table = ctx.registerMemory(Buffer.alloc(SLOT * SLOTS), { access: ['local-write', 'remote-read'] })
    this.index = new Map() // key -> slot number
    this.nextSlot = 0
    this.lookups = 0
    ctx.sessions.expose('kv-table', this.table.region())
    ctx.sessions.on('session', (session) => {
      for (const qp of session.qps) this.#serve(qp)
      session.on('qp-added', (qp) => this.#serve(qp))
    })
  }

  /** Writes the value into a fresh slot; the old slot (if any) becomes a tombstone. */
  put(key, value) {
    const bytes = Buffer.from(JSON.stringify(value))
    if (bytes.length > SLOT - HEADER) throw new Error(`value of ${key} is ${bytes.length} bytes, a slot holds ${SLOT - HEADER}`)
    const old = this.index.get(key)
    const slot = this.nextSlot++ % SLOTS
    const view = Buffer.from(this.table.bytes.buffer, this.table.bytes.byteOffset + slot * SLOT, SLOT)
    const version = old === undefined ? 1 : this.#header(old).version + 1
    bytes.copy(view, HEADER)
    view.writeUInt32LE(bytes.length, 8)
    view.writeUInt32LE(version, 4)
    view.writeUInt32LE(keyHash(key), 0)
    if (old !== undefined) Buffer.from(this.table.bytes.buffer, this.table.bytes.byteOffset + old * SLOT, SLOT).writeUInt32LE(TOMBSTONE, 4)
    this.index.set(key, slot)
  }

  #header(slot) {
    const view = Buffer.from(this.table.bytes.buffer, this.table.bytes.byteOffset + slot * SLOT, HEADER)
    return { hash: view.readUInt32LE(0), version: view.readUInt32LE(4), length: view.readUInt32LE(8) }
  }

  /** Answers lookups on one QP: a SEND with a key gets a SEND back with { slot, version } or { missing }. */
  async #serve(qp) {
    const inbox = this.ctx.registerMemory(Buffer.alloc(256))
    for (;;) {
      let wc
      try {
        wc = await qp.recv(inbox.slice())
      } catch {
        return // the QP was closed
      }
      const key = Buffer.from(inbox.bytes.subarray(0, wc.byteLen)).toString()
      this.lookups++
      const slot = this.index.get(key)
      const answer = slot === undefined ? { missing: key } : { slot, version: this.#header(slot).version }
      await qp.send(Buffer.from(JSON.stringify(answer))).catch(() => {})
    }
  }
}

// ---- the client: one lookup per key, then one-sided READs from a location cache

class KvClient {
  constructor(ctx, session) {
    this.session = session
    this.qp = session.qps[0]
    this.table = session.remoteRegions.get('kv-table')
    this.buf = ctx.registerMemory(Buffer.alloc(SLOT + 256))
    this.cache = new Map() // key -> slot
    this.stats = { gets: 0, hits: 0, lookups: 0, stale: 0, missing: 0 }
  }

  async get(key) {
    this.stats.gets++
    const cached = this.cache.get(key)
    if (cached !== undefined) {
      const value = await this.#read(key, cached)
      if (value !== undefined) {
        this.stats.hits++
        return value
      }
      this.stats.stale++
      this.cache.delete(key)
    }
    const answer = await this.#lookup(key)
    if (answer.missing !== undefined) {
      this.stats.missing++
      return undefined
    }
    this.cache.set(key, answer.slot)
    const value = await this.#read(key, answer.slot)
    if (value === undefined) throw new Error(`slot ${answer.slot} does not hold ${key} right after the lookup`)
    return value
  }

  /** RDMA READ of one slot; undefined when it no longer holds `key` (rewritten or moved). */
  async #read(key, slot) {
    const local = this.buf.slice(0, SLOT)
    await this.qp.read(local, { addr: this.table.addr + slot * SLOT, rkey: this.table.rkey, length: SLOT })
    const view = Buffer.from(local.bytes.buffer, local.bytes.byteOffset, SLOT)
    if (view.readUInt32LE(0) !== keyHash(key) || view.readUInt32LE(4) === TOMBSTONE) return undefined
    return JSON.parse(view.subarray(HEADER, HEADER + view.readUInt32LE(8)).toString())
  }

  /** One round trip to the server's CPU: SEND the key, receive where it lives. */
  async #lookup(key) {
    this.stats.lookups++
    const inbox = this.buf.slice(SLOT, 256)
    const reply = this.qp.recv(inbox)
    await this.qp.send(Buffer.from(key))
    const wc = await reply
    return JSON.parse(Buffer.from(inbox.bytes.subarray(0, wc.byteLen)).toString())
  }
}

// ---- the demo

const providerOptions = process.env.RDMA_SESSION_PROVIDER === 'softroce' ? { port: 0 } : undefined
const serverCtx = await createContext({ providerOptions })
const clientCtx = await createContext({ providerOptions })
log(`provider: ${serverCtx.provider.name}; server at ${serverCtx.info.address}:${serverCtx.info.port}`)

const server = new KvServer(serverCtx)
const KEYS = 100
for (let i = 0; i < KEYS; i++) server.put(`user:${i}`, { id: i, name: `user ${i}`, visits: i * 3 })
log(`server: ${KEYS} keys in a ${(SLOT * SLOTS) / 1024} KiB table of ${SLOT}-byte slots, exposed for RDMA READ`)

const session = await clientCtx.sessions.create({ peer: serverCtx, qps: [{ qos: { class: 'latency' } }] })
const client = new KvClient(clientCtx, session)
log(`client: session ${session.id}, table rkey 0x${client.table.rkey.toString(16)}, ${client.table.length} bytes`)

// 1000 GETs, skewed towards a few hot keys (as caches see them).
let wrong = 0
const pick = () => Math.min(KEYS - 1, Math.floor(KEYS * Math.random() ** 3))
for (let i = 0; i < 1000; i++) {
  const k = pick()
  const v = await client.get(`user:${k}`)
  if (v?.id !== k) wrong++
}
const first = { ...client.stats }
log(`round 1: ${first.gets} GETs, ${first.hits} hits served by one RDMA READ each, ${first.lookups} lookups (first access of a key), ${wrong} wrong values`)

// The server rewrites 10 hot keys (new slots, old ones tombstoned); clients notice on their next READ.
for (let k = 0; k < 10; k++) server.put(`user:${k}`, { id: k, name: `user ${k}`, visits: 1000 + k })
let updated = 0
for (let k = 0; k < 10; k++) if ((await client.get(`user:${k}`))?.visits === 1000 + k) updated++
const missing = await client.get('user:does-not-exist')
const s = client.stats
log(`round 2: server rewrote 10 keys; the client read ${s.stale} stale slots, looked them up again and got ${updated}/10 new values`)
log(`missing key: ${missing === undefined ? 'undefined (one lookup, no READ)' : 'FOUND?!'}`)
log(`totals: ${s.gets} GETs, ${s.hits} hits (${((100 * s.hits) / s.gets).toFixed(1)}%), ${s.lookups} lookups, ${s.stale} stale, ${s.missing} missing; server CPU answered ${server.lookups} lookups`)
const qs = session.stats().session
log(`session stats: ${qs.opsCompleted} ops, ${qs.bytesReceived} bytes received, ${qs.errors} errors`)

await clientCtx.close()
await serverCtx.close()
log('closed')
