// A UDP impairment relay for the netns tests: it joins two network namespaces and forwards
// every datagram from one side to the other after a fixed delay, duplicating and reordering a
// seeded fraction of them (this host's kernel has no netem; loss is nftables' job).
//
// It is transparent to the RoCEv2 ICRC, which covers the IP addresses and UDP ports: each leg's
// socket is bound, inside its own namespace, to the address and port of the stack on the *other*
// leg, and the relay re-sends from there. Stack A (10.99.0.1:4791) talks to 10.99.0.2:4791, which
// in A's leg is the relay; the relay re-sends from 10.99.0.1:4791 in B's leg to B
// (10.99.0.2:4791). B therefore receives exactly the 5-tuple A computed the ICRC for, and both
// relay sockets carry IP_PMTUDISC_DO (IP ID 0 + DF, what the stacks assume), made by softroce's
// native helper, which can create a socket inside a named namespace.
//
// Run with child_process.fork(relayPath, [JSON config]); it answers IPC messages:
//   → { type: 'ready' } once both sockets are bound; { type: 'stats' } → { type: 'stats', stats }
//   'close' → stops and exits. It also exits when the parent goes away.
// Config: { addonPath, seed, delayMs, duplicate, reorder, reorderMaxMs, legs: [leg, leg] },
//   leg: { netns, family: 4 | 6, bind: { address, port }, peer: { address, port } }.
import dgram from 'node:dgram'
import { createRequire } from 'node:module'
import { seededRandom } from '@rdma-session/core'

const config = JSON.parse(process.argv[2] ?? '{}')
const addon = createRequire(import.meta.url)(config.addonPath)


/** A binary min-heap of datagrams waiting for their send time (ties keep arrival order). */
class DueQueue {
  items = []
  seq = 0
  get size() {
    return this.items.length
  }
  peek() {
    return this.items[0]
  }
  push(due, datagram, out) {
    const h = this.items
    const item = { due, seq: this.seq++, datagram, out }
    h.push(item)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!before(h[i], h[p])) break
      ;[h[i], h[p]] = [h[p], h[i]]
      i = p
    }
  }
  pop() {
    const h = this.items
    const top = h[0]
    const last = h.pop()
    if (h.length > 0) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && before(h[l], h[m])) m = l
        if (r < h.length && before(h[r], h[m])) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m], h[i]]
        i = m
      }
    }
    return top
  }
}
const before = (x, y) => x.due < y.due || (x.due === y.due && x.seq < y.seq)

const literal = (family) => (host, _o, cb) => cb(null, host, family)

async function openLeg(leg) {
  const fd = addon.createUdpSocket({ family: leg.family, address: leg.bind.address, port: leg.bind.port, netns: leg.netns })
  const socket = dgram.createSocket({ type: leg.family === 4 ? 'udp4' : 'udp6', lookup: literal(leg.family) })
  await new Promise((resolve, reject) => {
    socket.once('error', reject)
    socket.bind({ fd }, () => {
      socket.off('error', reject)
      resolve()
    })
  })
  socket.setRecvBufferSize(4 << 20)
  socket.setSendBufferSize(4 << 20)
  return socket
}

const stats = { forwarded: [0, 0], duplicated: [0, 0], reordered: [0, 0], foreign: [0, 0], sendErrors: 0, maxQueued: 0 }
const queue = new DueQueue()
let timer = null
let closed = false

function flush() {
  timer = null
  const now = performance.now()
  while (queue.size > 0 && queue.peek().due <= now + 0.25) {
    const { datagram, out } = queue.pop()
    out.socket.send(datagram, out.peer.port, out.peer.address, (err) => {
      if (err) stats.sendErrors++
    })
  }
  arm()
}

function arm() {
  if (timer !== null || queue.size === 0 || closed) return
  timer = setTimeout(flush, Math.max(0, queue.peek().due - performance.now()))
}

const sockets = await Promise.all(config.legs.map(openLeg))
const random = [seededRandom(config.seed), seededRandom(config.seed + 1)]
for (const [i, socket] of sockets.entries()) {
  const from = config.legs[i]
  const out = { socket: sockets[1 - i], peer: config.legs[1 - i].peer }
  const r = random[i]
  socket.on('message', (datagram, rinfo) => {
    if (rinfo.address !== from.peer.address || rinfo.port !== from.peer.port) {
      stats.foreign[i]++
      return
    }
    const now = performance.now()
    let due = now + config.delayMs
    if (r() < config.reorder) {
      // held back long enough for the datagrams behind it to overtake it
      due += 1 + r() * (config.reorderMaxMs - 1)
      stats.reordered[i]++
    }
    queue.push(due, datagram, out)
    if (r() < config.duplicate) {
      queue.push(due + r() * 2, datagram, out)
      stats.duplicated[i]++
    }
    stats.forwarded[i]++
    if (queue.size > stats.maxQueued) stats.maxQueued = queue.size
    arm()
  })
  socket.on('error', () => stats.sendErrors++)
}

function close() {
  if (closed) return
  closed = true
  if (timer !== null) clearTimeout(timer)
  for (const s of sockets) s.close()
  process.disconnect?.()
}

process.on('message', (m) => {
  if (m?.type === 'stats') {
    const cpu = process.cpuUsage()
    process.send?.({ type: 'stats', stats: { ...stats, cpuSeconds: (cpu.user + cpu.system) / 1e6 } })
  }
  else if (m?.type === 'close') close()
})
process.on('disconnect', close)
process.send?.({ type: 'ready' })
