/**
 * One softroce host of the netns test, as its own process (bundled with tsup and forked by
 * impaired-link.test.ts): its UDP socket is made inside its network namespace by the native
 * helper, and the parent drives it over the IPC channel, one request at a time:
 *
 *   open     { netns, address, port, total, qps, windowBytes, timers, selectiveRepeat } -> { qps: [{ qpn, psn }], rkey, addr }
 *   connect  { remote, peerQps, peerRkey, peerAddr }                    -> {}
 *   fill     { ops, side }   keystream into this host's ranges          -> { expectedSha }
 *   recv     { ops }         posts a receive per SEND op (host b)       -> {}
 *   run      { ops, depth }  posts every op, waits for its completion   -> { seconds, failures }
 *   finish   {}              settles, checks for extra completions      -> { sha, counters, sends, recvs }
 *   close    {}                                                         -> {} and exits
 */
import { createCipheriv, createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import { createContext, type Context, type MemoryRegion, type QueuePair, type WorkCompletion } from '@rdma-session/core'
import { softroce, type SoftRoceDevice } from '../../src/index.js'

export interface Op {
  kind: 'WRITE' | 'READ' | 'SEND'
  off: number
  len: number
  qp: number
}

/** How often each wrId completed: every count must be 1. */
export interface CompletionTally {
  expected: number
  distinct: number
  extra: number
}

interface Request {
  id: number
  cmd: string
  [k: string]: unknown
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

let ctx: Context | null = null
let region: MemoryRegion | null = null
let qps: QueuePair[] = []
let peer: { rkey: number; addr: number } | null = null
const sendDone = new Map<number, number>()
const recvDone = new Map<number, number>()
let recvExpected = 0
let sendExpected = 0
const failures: WorkCompletion[] = []
let recvPolling = false

function tally(done: Map<number, number>, expected: number): CompletionTally {
  let extra = 0
  for (const n of done.values()) extra += n - 1
  return { expected, distinct: done.size, extra }
}

function device(): SoftRoceDevice {
  return ctx!.device as SoftRoceDevice
}

async function open(r: Request): Promise<object> {
  const { netns, address, port, total, qps: n, windowBytes, timers, addonPath, selectiveRepeat } = r as unknown as {
    netns: string; address: string; port: number; total: number; qps: number; windowBytes: number; timers: object; addonPath: string; selectiveRepeat: boolean
  }
  const addon = createRequire(import.meta.url)(addonPath) as { createUdpSocket(o: object): number }
  const family = address.includes(':') ? 6 : 4
  const fd = addon.createUdpSocket({ family, address, port, netns })
  ctx = await createContext({ provider: softroce({ address, windowBytes, timers, selectiveRepeat, socket: { fd, pmtudiscDo: family === 4, noCheck6Rx: family === 6 } }) })
  region = ctx.registerMemory(Buffer.alloc(total), { access: ['local-write', 'remote-read', 'remote-write'] })
  qps = Array.from({ length: n }, () => ctx!.createQp({ caps: { maxSendWr: 64, maxRecvWr: 1024 } }))
  for (const q of qps) q.modify({ state: 'INIT', accessFlags: 15, portNum: 1, pkeyIndex: 0 })
  return { qps: qps.map((q) => ({ qpn: q.qpn, psn: q.localPsn })), rkey: region.rkey, addr: region.addr, diagnostics: device().diagnostics }
}

function connect(r: Request): object {
  const { remote, peerQps, peerRkey, peerAddr } = r as unknown as { remote: { address: string; port: number; extensions?: string[] }; peerQps: { qpn: number; psn: number }[]; peerRkey: number; peerAddr: number }
  peer = { rkey: peerRkey, addr: peerAddr }
  for (const [i, q] of qps.entries()) {
    const p = peerQps[i]!
    q.modify({ state: 'RTR', remote, pathMtu: 4096, destQpn: p.qpn, rqPsn: p.psn, maxDestRdAtomic: 16, minRnrTimer: 1 })
    q.modify({ state: 'RTS', sqPsn: q.localPsn, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 16 })
  }
  return {}
}

/** The keystream of the whole plan; this host keeps the ranges it is the source of. */
function fill(r: Request): object {
  const { ops, side } = r as unknown as { ops: Op[]; side: 'a' | 'b' }
  const keystream = createCipheriv('aes-256-ctr', Buffer.alloc(32, 7), Buffer.alloc(16, 1))
  const expected = createHash('sha256')
  for (const o of ops) {
    const bytes = keystream.update(Buffer.alloc(o.len))
    expected.update(bytes)
    if ((o.kind === 'READ') === (side === 'b')) region!.bytes.set(bytes, o.off)
  }
  return { expectedSha: expected.digest('hex') }
}

function recv(r: Request): object {
  const { ops } = r as unknown as { ops: Op[] }
  for (const [i, o] of ops.entries()) {
    if (o.kind !== 'SEND') continue
    qps[o.qp]!.postRecv({ wrId: i, sgList: [region!.slice(o.off, o.len)] })
    recvExpected++
  }
  recvPolling = true
  void (async () => {
    while (recvPolling) {
      for (const q of qps) {
        for (const wc of q.recvCq.poll(64)) {
          recvDone.set(wc.wrId, (recvDone.get(wc.wrId) ?? 0) + 1)
          if (wc.status !== 'SUCCESS') failures.push(wc)
        }
      }
      await Promise.race([...qps.map((q) => q.recvCq.waitReady()), sleep(50)])
    }
  })()
  return {}
}

async function run(r: Request): Promise<object> {
  const { ops, depth } = r as unknown as { ops: Op[]; depth: number }
  const rb = peer!
  const queues = qps.map((_, q) => ops.flatMap((o, i) => (o.qp === q ? [i] : [])))
  const inFlight = new Array<number>(qps.length).fill(0)
  sendExpected = ops.length
  const post = (): void => {
    for (const [q, qp] of qps.entries()) {
      while (inFlight[q]! < depth && queues[q]!.length > 0) {
        const i = queues[q]!.shift()!
        const o = ops[i]!
        inFlight[q]!++
        const sgList = [region!.slice(o.off, o.len)]
        if (o.kind === 'WRITE') qp.postSend({ wrId: i, opcode: 'RDMA_WRITE', sgList, remoteAddr: rb.addr + o.off, rkey: rb.rkey })
        else if (o.kind === 'READ') qp.postSend({ wrId: i, opcode: 'RDMA_READ', sgList, remoteAddr: rb.addr + o.off, rkey: rb.rkey })
        else qp.postSend({ wrId: i, opcode: 'SEND', sgList })
      }
    }
  }
  const t0 = performance.now()
  let lastReport = t0
  let bytes = 0
  post()
  while (sendDone.size < ops.length && failures.length === 0) {
    for (const [q, qp] of qps.entries()) {
      for (const wc of qp.sendCq.poll(64)) {
        sendDone.set(wc.wrId, (sendDone.get(wc.wrId) ?? 0) + 1)
        if (wc.status !== 'SUCCESS') failures.push(wc)
        else bytes += ops[wc.wrId]!.len
        inFlight[q]!--
      }
    }
    post()
    if (performance.now() - lastReport > 15_000) {
      lastReport = performance.now()
      const c = device().counters
      process.send!({ progress: `${((lastReport - t0) / 1000).toFixed(0)} s: ${(bytes / 2 ** 20).toFixed(0)} MiB, ${sendDone.size}/${ops.length} WRs, retransmits ${c.retransmits}, timeouts ${c.timeouts}` })
    }
    await Promise.race([...qps.map((q) => q.sendCq.waitReady()), sleep(50)])
  }
  return { seconds: (performance.now() - t0) / 1000, failures }
}

async function finish(): Promise<object> {
  await sleep(300)
  recvPolling = false
  let stray = 0
  for (const q of qps) stray += q.sendCq.poll(64).length + q.recvCq.poll(64).length
  return {
    sha: createHash('sha256').update(region!.bytes).digest('hex'),
    counters: device().counters.snapshot(),
    batchedIo: device().batchedIo,
    sends: tally(sendDone, sendExpected),
    recvs: tally(recvDone, recvExpected),
    stray,
    failures,
    cpuSeconds: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
  }
}

async function close(): Promise<object> {
  recvPolling = false
  await ctx?.close()
  ctx = null
  setImmediate(() => process.disconnect())
  return {}
}

const handlers: Record<string, (r: Request) => object | Promise<object>> = { open, connect, fill, recv, run, finish, close }

process.on('message', (r: Request) => {
  void (async () => {
    try {
      process.send!({ id: r.id, ok: await handlers[r.cmd]!(r) })
    } catch (err) {
      process.send!({ id: r.id, error: String((err as Error).stack ?? err) })
    }
  })()
})
process.on('disconnect', () => {
  recvPolling = false
  void ctx?.close().finally(() => process.exit(0))
  setTimeout(() => process.exit(0), 2000).unref()
})
