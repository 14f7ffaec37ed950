/**
 * perftest's measurement loops on softroce QPs (perftest_resources.c): run_iter_bw (a window of
 * tx_depth WRs per QP), run_iter_bw_server (SEND receiver), run_iter_lat_write (ping-pong on the
 * last byte of the peer's buffer), run_iter_lat (READ/atomic one at a time) and
 * run_iter_lat_send (SEND ping-pong). Timestamps are performance.now() in µs. A loop waits on
 * its CQ or, for incoming RDMA WRITEs, yields to the event loop until the byte changes; a dead
 * peer (the TCP connection closed) or a failed completion ends it with an error.
 */
import { performance } from 'node:perf_hooks'
import type { CompletionQueue, Opcode, Sge, WorkCompletion } from '@rdma-session/core'
import { wcStatus } from '../oob/softroce.js'
import { inc, type PerftestEndpoint } from './endpoint.js'
import type { Verb } from './report.js'
import type { PerftestDest } from './wire.js'

/** A failed completion or a peer gone mid-test. */
export class PerftestRunError extends Error {
  override readonly name = 'PerftestRunError'
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

/** Ends waits when the peer is gone. */
export interface RunGuard {
  /** Throws if the run must stop. */
  check(): void
  /** `p`, or a rejection as soon as the run must stop (one wait at a time). */
  wait<T>(p: Promise<T>): Promise<T>
}

const now = (): number => performance.now() * 1000
const yieldToIo = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

const ATOMIC_ADD_VALUE = 1n
const ATOMIC_SWAP_VALUE = 0n

export type AtomicType = 'FETCH_AND_ADD' | 'CMP_AND_SWAP'

function failed(wc: WorkCompletion, side: string, counts: string): PerftestRunError {
  const [n, text] = wcStatus(wc)
  return new PerftestRunError('ERR_PERFTEST_COMPLETION', `Completion with error at ${side}: Failed status ${n} (${text}): wr_id ${wc.wrId}, ${counts}`)
}

/** Up to `max` completions, waiting for at least one. */
async function completions(cq: CompletionQueue, max: number, guard: RunGuard): Promise<WorkCompletion[]> {
  for (;;) {
    const wcs = cq.poll(max)
    if (wcs.length > 0) return wcs
    guard.check()
    await guard.wait(cq.waitReady())
  }
}

function opcodeOf(verb: Verb, atomicType: AtomicType): Opcode {
  if (verb === 'send') return 'SEND'
  if (verb === 'write') return 'RDMA_WRITE'
  if (verb === 'read') return 'RDMA_READ'
  return atomicType === 'CMP_AND_SWAP' ? 'ATOMIC_CMP_AND_SWP' : 'ATOMIC_FETCH_AND_ADD'
}

/** Where the k-th WR of a QP lands within its block: cache-line steps through the cycle buffer for small sizes. */
function cycleOffset(k: number, size: number, ep: PerftestEndpoint, cycles: boolean): number {
  if (!cycles) return 0
  const step = inc(size, ep.o.cacheLine)
  return (k % Math.max(1, Math.floor(ep.o.cycleBuffer / step))) * step
}

/** -D: warm up for `marginUs`, count completions for `sampleUs`, go on for `marginUs` more. */
export interface DurationTiming {
  readonly marginUs: number
  readonly sampleUs: number
}

/** What a duration run counted: completions within the sample window, and the window (µs). */
export interface DurationSample {
  readonly iters: number
  readonly windowUs: number
}

/**
 * -D's clock, as catch_alarm's states: from start(), `marginUs` of warm-up (START), the sample
 * window (SAMPLE), `marginUs` more (STOP_SAMPLE), then the end (END). A loop that starts it on its
 * first receive (run_iter_bw_server, run_iter_lat_send) waits unbounded before that, as perftest.
 */
export class DurationClock {
  #t0 = -1
  constructor(readonly timing: DurationTiming) {}

  /** Starts the clock (once; later calls do nothing). */
  start(t = now()): void {
    if (this.#t0 < 0) this.#t0 = t
  }

  get started(): boolean {
    return this.#t0 >= 0
  }

  get end(): number {
    return this.#t0 + 2 * this.timing.marginUs + this.timing.sampleUs
  }

  /** Is `t` inside the sample window? */
  inSample(t: number): boolean {
    const from = this.#t0 + this.timing.marginUs
    return this.started && t >= from && t < from + this.timing.sampleUs
  }

  /** Has the run reached its end? */
  over(t = now()): boolean {
    return this.started && t >= this.end
  }

  sample(iters: number): DurationSample {
    return { iters, windowUs: this.timing.sampleUs }
  }
}

/** Up to `max` completions, waiting for one until the clock's end: none once the run is over. */
async function completionsUntil(cq: CompletionQueue, max: number, guard: RunGuard, clock: DurationClock): Promise<WorkCompletion[]> {
  for (;;) {
    const wcs = cq.poll(max)
    if (wcs.length > 0) return wcs
    guard.check()
    if (clock.over()) return []
    if (!clock.started) {
      await guard.wait(cq.waitReady())
      continue
    }
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(1, Math.ceil((clock.end - now()) / 1000)))))
    try {
      await guard.wait(Promise.race([cq.waitReady(), late]))
    } finally {
      clearTimeout(timer)
    }
  }
}

/**
 * run_iter_bw: `iters` WRs per QP (or, with `timing`, as many as fit in the duration), at most
 * tx_depth in flight per QP, every one signaled.
 */
export async function runBwClient(ep: PerftestEndpoint, remotes: readonly PerftestDest[], verb: Verb, size: number, iters: number, atomicType: AtomicType, guard: RunGuard, timing?: DurationTiming): Promise<{ posted: number[]; completed: number[]; sample?: DurationSample }> {
  const n = ep.qps.length
  const opcode = opcodeOf(verb, atomicType)
  const cycles = verb === 'atomic' || size <= ep.o.cycleBuffer / 2
  const scnt = new Array<number>(n).fill(0)
  const ccnt = new Array<number>(n).fill(0)
  const posted: number[] = []
  const completed: number[] = []
  const total = iters * n
  const qpIndex = new Map(ep.qps.map((qp, i) => [qp.qpn, i]))
  // Duration mode (catch_alarm's states): posting and waiting stop at the end, as run_iter_bw
  // breaks out at END_STATE (WRs still in flight are left to the QP's teardown: a SEND receiver
  // that stopped reposting at its own end may never take them); the sample is the middle.
  const clock = timing === undefined ? null : new DurationClock(timing)
  clock?.start()
  let sampled = 0
  let totalPosted = 0
  const more = (i: number): boolean => (clock === null ? scnt[i]! < iters : !clock.over())
  while (clock === null ? completed.length < total : !clock.over()) {
    for (let i = 0; i < n; i++) {
      const qp = ep.qps[i]!
      while (more(i) && scnt[i]! - ccnt[i]! < ep.o.txDepth) {
        const k = scnt[i]!
        const off = cycleOffset(k, size, ep, cycles)
        const sge: Sge = { addr: ep.mr.addr + ep.sourceOffset(i) + off, length: size, lkey: ep.mr.lkey }
        const r = remotes[i]!
        posted.push(now())
        qp.postSend({
          wrId: i, opcode, sgList: size === 0 ? [] : [sge], signaled: true,
          ...(verb === 'send' ? {} : { remoteAddr: r.vaddr + off, rkey: r.rkey }),
          ...(verb === 'atomic' ? (atomicType === 'CMP_AND_SWAP' ? { compareAdd: 0n, swap: ATOMIC_SWAP_VALUE } : { compareAdd: ATOMIC_ADD_VALUE }) : {}),
        })
        scnt[i] = k + 1
        totalPosted++
      }
    }
    if (completed.length >= totalPosted) continue // duration mode past its end: nothing in flight
    for (const wc of clock === null ? await completions(ep.sendCq, 64, guard) : await completionsUntil(ep.sendCq, 64, guard, clock)) {
      if (wc.status !== 'SUCCESS') throw failed(wc, 'client', `scnt=${scnt.join(',')}, ccnt=${ccnt.join(',')}`)
      const i = qpIndex.get(wc.qpn) ?? wc.wrId
      ccnt[i] = ccnt[i]! + 1
      const t = now()
      completed.push(t)
      if (clock?.inSample(t) === true) sampled++
    }
  }
  if (clock === null) return { posted, completed }
  return { posted, completed, sample: clock.sample(sampled) }
}

/** Posts receives on QP i into its target block until `postedRecvs[i]` reaches `upTo`. */
function postRecvs(ep: PerftestEndpoint, i: number, size: number, count: number): void {
  const sge: Sge = { addr: ep.mr.addr + ep.targetOffset(i), length: size, lkey: ep.mr.lkey }
  for (let k = 0; k < count; k++) ep.qps[i]!.postRecv({ wrId: i, sgList: size === 0 ? [] : [sge] })
}

/** ctx_set_recv_wqes: min(rx_depth, iters) receives on every QP; returns how many each got. */
export function setRecvWqes(ep: PerftestEndpoint, size: number, iters: number): number[] {
  const first = Math.min(ep.o.rxDepth, iters)
  for (let i = 0; i < ep.qps.length; i++) postRecvs(ep, i, size, first)
  return ep.qps.map(() => first)
}

/** run_iter_bw_server: `iters` SENDs per QP received, reposting as they come; first and last arrival. */
export async function runSendBwServer(ep: PerftestEndpoint, size: number, iters: number, postedRecvs: number[], guard: RunGuard): Promise<{ first: number; last: number }> {
  const qpIndex = new Map(ep.qps.map((qp, i) => [qp.qpn, i]))
  const total = iters * ep.qps.length
  let rcnt = 0
  let first = 0
  while (rcnt < total) {
    for (const wc of await completions(ep.recvCq, 64, guard)) {
      if (wc.status !== 'SUCCESS') throw failed(wc, 'server', `rcnt=${rcnt}`)
      if (rcnt === 0) first = now()
      rcnt++
      const i = qpIndex.get(wc.qpn) ?? wc.wrId
      if (postedRecvs[i]! < iters) {
        postRecvs(ep, i, size, 1)
        postedRecvs[i] = postedRecvs[i]! + 1
      }
    }
  }
  return { first, last: now() }
}

/**
 * run_iter_bw_server with -D: the clock starts at the first receive; receives are reposted as they
 * complete until the end; those that complete in the sample window count.
 */
export async function runSendBwServerDuration(ep: PerftestEndpoint, size: number, guard: RunGuard, timing: DurationTiming): Promise<DurationSample> {
  const qpIndex = new Map(ep.qps.map((qp, i) => [qp.qpn, i]))
  const clock = new DurationClock(timing)
  let rcnt = 0
  let sampled = 0
  while (!clock.over()) {
    for (const wc of await completionsUntil(ep.recvCq, 64, guard, clock)) {
      if (wc.status !== 'SUCCESS') throw failed(wc, 'server', `rcnt=${rcnt}`)
      const t = now()
      clock.start(t)
      rcnt++
      if (clock.inSample(t)) sampled++
      postRecvs(ep, qpIndex.get(wc.qpn) ?? wc.wrId, size, 1)
    }
  }
  return clock.sample(sampled)
}

/** Waits for one completion of QP 0's send queue (the latency tests run one QP). */
async function oneSendCompletion(ep: PerftestEndpoint, side: string, guard: RunGuard, counts: () => string): Promise<void> {
  const [wc] = await completions(ep.sendCq, 1, guard)
  if (wc!.status !== 'SUCCESS') throw failed(wc!, side, counts())
}

/**
 * run_iter_lat_write: each side writes `size` bytes to the other's target block, the last byte
 * the iteration count (as a char), and waits for the peer's write of the same count to land in
 * its own block before the next (the server waits first). Returns the post times.
 */
export async function runWriteLat(ep: PerftestEndpoint, remote: PerftestDest, size: number, iters: number, server: boolean, guard: RunGuard): Promise<number[]> {
  const qp = ep.qps[0]!
  const postAt = ep.sourceOffset(0) + size - 1
  // Not cleared between sizes (the peer's first write of the next size may be here already):
  // with -a each size's last byte lies beyond every earlier write, so it is still 0.
  const pollAt = ep.targetOffset(0) + size - 1
  const posted: number[] = []
  let scnt = 0
  let ccnt = 0
  let rcnt = 0
  const counts = (): string => `scnt=${scnt}, ccnt=${ccnt}`
  while (scnt < iters || ccnt < iters || rcnt < iters) {
    if (rcnt < iters && !(scnt < 1 && server)) {
      rcnt++
      const want = rcnt & 0xff
      while (ep.buf[pollAt] !== want) {
        guard.check()
        await yieldToIo()
      }
    }
    if (scnt < iters) {
      posted.push(now())
      ep.buf[postAt] = ++scnt & 0xff
      qp.postSend({ wrId: 0, opcode: 'RDMA_WRITE', sgList: [{ addr: ep.mr.addr + ep.sourceOffset(0), length: size, lkey: ep.mr.lkey }], signaled: true, remoteAddr: remote.vaddr, rkey: remote.rkey })
    }
    if (ccnt < iters) {
      await oneSendCompletion(ep, server ? 'server' : 'client', guard, counts)
      ccnt++
    }
  }
  return posted
}

/** run_iter_lat: one READ or atomic at a time to the peer's target block. */
export async function runReadAtomicLat(ep: PerftestEndpoint, remote: PerftestDest, verb: 'read' | 'atomic', size: number, iters: number, atomicType: AtomicType, guard: RunGuard): Promise<number[]> {
  const qp = ep.qps[0]!
  const opcode = opcodeOf(verb, atomicType)
  const posted: number[] = []
  for (let scnt = 0; scnt < iters;) {
    posted.push(now())
    qp.postSend({
      wrId: 0, opcode, sgList: [{ addr: ep.mr.addr + ep.sourceOffset(0), length: size, lkey: ep.mr.lkey }], signaled: true, remoteAddr: remote.vaddr, rkey: remote.rkey,
      ...(verb === 'atomic' ? (atomicType === 'CMP_AND_SWAP' ? { compareAdd: 0n, swap: ATOMIC_SWAP_VALUE } : { compareAdd: ATOMIC_ADD_VALUE }) : {}),
    })
    scnt++
    await oneSendCompletion(ep, 'client', guard, () => `scnt=${scnt}`)
  }
  return posted
}

/**
 * run_iter_lat_send: a SEND ping-pong (the client sends first; each side sends once it has
 * received), receives reposted while more are due. Returns the post times.
 */
export async function runSendLat(ep: PerftestEndpoint, size: number, iters: number, client: boolean, postedRecvs: number[], guard: RunGuard): Promise<number[]> {
  const qp = ep.qps[0]!
  const posted: number[] = []
  let scnt = 0
  let rcnt = 0
  let ccnt = 0
  const side = client ? 'client' : 'server'
  const drainSends = (): void => {
    for (const wc of ep.sendCq.poll(16)) {
      if (wc.status !== 'SUCCESS') throw failed(wc, side, `scnt=${scnt}`)
      ccnt++
    }
  }
  while (scnt < iters || rcnt < iters) {
    if (rcnt < iters && !(scnt < 1 && client)) {
      const [wc] = await completions(ep.recvCq, 1, guard)
      if (wc!.status !== 'SUCCESS') throw failed(wc!, side, `rcnt=${rcnt}`)
      rcnt++
      if (postedRecvs[0]! < iters) {
        postRecvs(ep, 0, size, 1)
        postedRecvs[0] = postedRecvs[0]! + 1
      }
    }
    if (scnt < iters) {
      posted.push(now())
      scnt++
      qp.postSend({ wrId: 0, opcode: 'SEND', sgList: size === 0 ? [] : [{ addr: ep.mr.addr + ep.sourceOffset(0), length: size, lkey: ep.mr.lkey }], signaled: true })
    }
    drainSends()
  }
  while (ccnt < scnt) {
    await oneSendCompletion(ep, side, guard, () => `scnt=${scnt}, ccnt=${ccnt}`)
    ccnt++
  }
  return posted
}

/** One SEND of QP 0 from its source block, signaled. */
function postOneSend(ep: PerftestEndpoint, size: number): void {
  ep.qps[0]!.postSend({ wrId: 0, opcode: 'SEND', sgList: size === 0 ? [] : [{ addr: ep.mr.addr + ep.sourceOffset(0), length: size, lkey: ep.mr.lkey }], signaled: true })
}

/**
 * run_iter_lat_send with -D: the same ping-pong, the clock started by each side's first receive;
 * receives that arrive in the sample window count. It ends at the end of the clock, even while
 * waiting (the peer, whose clock started one trip apart, stops too).
 */
export async function runSendLatDuration(ep: PerftestEndpoint, size: number, client: boolean, guard: RunGuard, timing: DurationTiming): Promise<DurationSample> {
  const clock = new DurationClock(timing)
  const side = client ? 'client' : 'server'
  let scnt = 0
  let sampled = 0
  for (;;) {
    if (!(scnt < 1 && client)) {
      const [wc] = await completionsUntil(ep.recvCq, 1, guard, clock)
      if (wc === undefined) break
      if (wc.status !== 'SUCCESS') throw failed(wc, side, `scnt=${scnt}`)
      const t = now()
      clock.start(t)
      if (clock.inSample(t)) sampled++
      postRecvs(ep, 0, size, 1)
    }
    if (clock.over()) break
    scnt++
    postOneSend(ep, size)
    for (const wc of ep.sendCq.poll(16)) if (wc.status !== 'SUCCESS') throw failed(wc, side, `scnt=${scnt}`)
  }
  return clock.sample(sampled)
}

/** How long a -D write latency run goes on answering the peer's writes after its own end. */
const WRITE_LAT_GRACE_US = 2e6

/**
 * run_iter_lat_write with -D: the clock starts with the loop; the ping-pong runs until its end;
 * send completions in the sample window count. Then it goes on answering the peer's writes, for
 * WRITE_LAT_GRACE_US at most, not counting them: perftest's ib_write_lat busy-waits on its buffer
 * without re-reading its END state (it is no volatile), so a peer that stops answering first
 * leaves it spinning for ever. In that grace time the peer going away or a failed completion (its
 * QP destroyed) ends the run quietly.
 */
export async function runWriteLatDuration(ep: PerftestEndpoint, remote: PerftestDest, size: number, server: boolean, guard: RunGuard, timing: DurationTiming): Promise<DurationSample> {
  const t0 = now()
  const clock = new DurationClock(timing)
  clock.start(t0)
  // The same start, WRITE_LAT_GRACE_US later an end.
  const grace = new DurationClock({ marginUs: timing.marginUs + WRITE_LAT_GRACE_US / 2, sampleUs: timing.sampleUs })
  grace.start(t0)
  const qp = ep.qps[0]!
  const postAt = ep.sourceOffset(0) + size - 1
  const pollAt = ep.targetOffset(0) + size - 1
  let scnt = 0
  let rcnt = 0
  let sampled = 0
  const side = server ? 'server' : 'client'
  try {
    while (!grace.over()) {
      if (!(scnt < 1 && server)) {
        const want = ++rcnt & 0xff
        while (ep.buf[pollAt] !== want && !grace.over()) {
          guard.check()
          await yieldToIo()
        }
        if (grace.over()) break
      }
      ep.buf[postAt] = ++scnt & 0xff
      qp.postSend({ wrId: 0, opcode: 'RDMA_WRITE', sgList: [{ addr: ep.mr.addr + ep.sourceOffset(0), length: size, lkey: ep.mr.lkey }], signaled: true, remoteAddr: remote.vaddr, rkey: remote.rkey })
      const [wc] = await completionsUntil(ep.sendCq, 1, guard, grace)
      if (wc === undefined) break
      if (wc.status !== 'SUCCESS') throw failed(wc, side, `scnt=${scnt}`)
      if (clock.inSample(now())) sampled++
    }
  } catch (err) {
    if (!clock.over()) throw err
  }
  return clock.sample(sampled)
}

/** run_iter_lat with -D: one READ or atomic at a time until the clock's end; completions in the sample window count. */
export async function runReadAtomicLatDuration(ep: PerftestEndpoint, remote: PerftestDest, verb: 'read' | 'atomic', size: number, atomicType: AtomicType, guard: RunGuard, timing: DurationTiming): Promise<DurationSample> {
  const clock = new DurationClock(timing)
  clock.start()
  const qp = ep.qps[0]!
  const opcode = opcodeOf(verb, atomicType)
  let scnt = 0
  let sampled = 0
  while (!clock.over()) {
    qp.postSend({
      wrId: 0, opcode, sgList: [{ addr: ep.mr.addr + ep.sourceOffset(0), length: size, lkey: ep.mr.lkey }], signaled: true, remoteAddr: remote.vaddr, rkey: remote.rkey,
      ...(verb === 'atomic' ? (atomicType === 'CMP_AND_SWAP' ? { compareAdd: 0n, swap: ATOMIC_SWAP_VALUE } : { compareAdd: ATOMIC_ADD_VALUE }) : {}),
    })
    scnt++
    const [wc] = await completionsUntil(ep.sendCq, 1, guard, clock)
    if (wc === undefined) break
    if (wc.status !== 'SUCCESS') throw failed(wc, 'client', `scnt=${scnt}`)
    if (clock.inSample(now())) sampled++
  }
  return clock.sample(sampled)
}
