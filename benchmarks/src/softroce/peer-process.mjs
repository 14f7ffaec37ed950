// Starts peer.mjs in its own process and calls it: `await peer.call('open', {...})`.
import { fork, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const PEER = fileURLToPath(new URL('./peer.mjs', import.meta.url))

export class PeerProcess {
  #child
  #next = 0
  #pending = new Map()

  /** `netns`: run the peer inside this network namespace (`ip netns exec`; needs root). */
  constructor({ netns } = {}) {
    const execArgv = process.env.BENCH_PEER_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PEER_PROF}`] : []
    // More node/V8 flags for the peer, e.g. BENCH_PEER_NODE_ARGS=--trace-gc
    if (process.env.BENCH_PEER_NODE_ARGS) execArgv.push(...process.env.BENCH_PEER_NODE_ARGS.split(' '))
    this.#child = netns === undefined
      ? fork(PEER, [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      : spawn('ip', ['netns', 'exec', netns, process.execPath, ...execArgv, PEER], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    this.#child.on('message', (m) => {
      const p = this.#pending.get(m.id)
      this.#pending.delete(m.id)
      if (m.error !== undefined) p?.reject(new Error(`peer: ${m.error}`))
      else p?.resolve(m.ok)
    })
    this.#child.on('exit', (code) => {
      for (const p of this.#pending.values()) p.reject(new Error(`peer exited with ${code}`))
      this.#pending.clear()
    })
  }

  call(cmd, args = {}) {
    const id = this.#next++
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      this.#child.send({ id, cmd, ...args })
    })
  }

  async close() {
    if (this.#child.exitCode !== null) return
    const exited = new Promise((resolve) => this.#child.once('exit', resolve))
    await this.call('close').catch(() => {})
    const kill = setTimeout(() => this.#child.kill('SIGKILL'), 3000)
    await exited
    clearTimeout(kill)
  }
}

/** Hand-connects `local` QPs (created by the caller, in INIT) to the peer's `opened` QPs. */
export async function connectToPeer(peer, ctx, localQps, opened, { pathMtu = 4096, timeout = 14 } = {}) {
  await peer.call('connect', { remote: ctx.endpoint, peerQps: localQps.map((q) => ({ qpn: q.qpn, psn: q.localPsn })), pathMtu, timeout })
  for (const [i, q] of localQps.entries()) {
    q.modify({ state: 'RTR', remote: opened.endpoint, pathMtu, destQpn: opened.qps[i].qpn, rqPsn: opened.qps[i].psn, maxDestRdAtomic: 16, minRnrTimer: 1 })
    q.modify({ state: 'RTS', sqPsn: q.localPsn, timeout, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 16 })
  }
}

/** Runs `fn` and returns its result with the CPU seconds this process and the peer used meanwhile. */
export async function withCpu(peer, fn) {
  const p0 = (await peer.call('cpu')).seconds
  const l0 = process.cpuUsage()
  const result = await fn()
  const l1 = process.cpuUsage(l0)
  const p1 = (await peer.call('cpu')).seconds
  const localSeconds = (l1.user + l1.system) / 1e6
  return { result, cpuSeconds: localSeconds + (p1 - p0), localSeconds, peerSeconds: p1 - p0 }
}

/** Creates `n` local QPs in INIT (`options`: more createQp options, e.g. `qos`). */
export function localQps(ctx, n, caps = { maxSendWr: 1024, maxRecvWr: 1024 }, options = {}) {
  return Array.from({ length: n }, () => {
    const q = ctx.createQp({ caps, ...options })
    q.modify({ state: 'INIT', accessFlags: 15, portNum: 1, pkeyIndex: 0 })
    return q
  })
}

export const percentile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]
