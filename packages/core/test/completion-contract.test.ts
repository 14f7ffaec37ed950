/**
 * What core does with the completions a provider reports: an unsignaled send WR before a completed
 * one succeeded silently; any other WR completed out of post order, or a completion for no pending
 * WR, is a broken provider contract (ERR_PROVIDER_CONTRACT, the QP moved to ERR), never a success.
 */
import { describe, expect, it } from 'vitest'
import { createContext, isRdmaError, type Context, type QueuePair, type WorkCompletion } from '../src/index.js'
import { scriptedProvider, type ScriptedQp } from './fakes/scripted-provider.js'

interface Rig {
  readonly ctx: Context
  readonly qp: QueuePair
  readonly fake: ScriptedQp
  readonly errors: Error[]
}

async function rig(): Promise<Rig> {
  const provider = scriptedProvider()
  const ctx = await createContext({ provider })
  const qp = ctx.createQp()
  qp.modify({ state: 'INIT', accessFlags: 15, portNum: 1, pkeyIndex: 0 })
  qp.modify({ state: 'RTR', remote: { address: '127.0.0.2', port: 4791 }, pathMtu: 1024, destQpn: 7, rqPsn: 0 })
  qp.modify({ state: 'RTS', sqPsn: qp.localPsn, timeout: 14, retryCnt: 7, rnrRetry: 7 })
  const errors: Error[] = []
  qp.onError = (err) => errors.push(err)
  return { ctx, qp, fake: provider.qps[0]!, errors }
}

async function pollN(qp: QueuePair, n: number): Promise<WorkCompletion[]> {
  const out: WorkCompletion[] = []
  const deadline = performance.now() + 5000
  while (out.length < n && performance.now() < deadline) {
    out.push(...qp.sendCq.poll(n - out.length))
    if (out.length < n) await new Promise((r) => setTimeout(r, 2))
  }
  return out
}

const reason = async (p: Promise<unknown>): Promise<{ code?: string; details?: Record<string, unknown>; message?: string }> =>
  p.then(() => ({ code: 'resolved' }), (e: unknown) => e as { code: string })

describe('completion contract', () => {
  it('a completion retires the unsignaled send WRs before it as successful, and reports only itself', async () => {
    const { ctx, qp, fake, errors } = await rig()
    const mr = ctx.registerMemory(Buffer.alloc(64))
    qp.postSend([
      { wrId: 1, opcode: 'RDMA_WRITE', sgList: [mr.slice(0, 8)], remoteAddr: 0, rkey: 1, signaled: false },
      { wrId: 2, opcode: 'RDMA_WRITE', sgList: [mr.slice(8, 8)], remoteAddr: 0, rkey: 1, signaled: false },
      { wrId: 3, opcode: 'RDMA_WRITE', sgList: [mr.slice(16, 8)], remoteAddr: 0, rkey: 1 },
    ])
    fake.completeSend(2)
    expect((await pollN(qp, 1)).map((wc) => [wc.wrId, wc.status])).toEqual([[3, 'SUCCESS']])
    expect(qp.outstanding.send).toBe(0)
    expect(qp.stats.opsCompleted).toBe(3)
    expect(errors).toEqual([])
    expect(qp.state).toBe('RTS')
    await ctx.close()
  })

  it('a signaled promise WR skipped by a later completion fails with ERR_PROVIDER_CONTRACT naming both; the QP goes to ERR', async () => {
    const { ctx, qp, fake, errors } = await rig()
    const mr = ctx.registerMemory(Buffer.alloc(64))
    const read = reason(qp.read(mr.slice(0, 8), { addr: 0, rkey: 1, length: 8 }))
    const write = reason(qp.write(mr.slice(8, 8), { addr: 0, rkey: 1, length: 8 }))
    fake.completeSend(1)
    const [r, w] = await Promise.all([read, write])
    expect(r.code, 'the READ whose completion never came').toBe('ERR_PROVIDER_CONTRACT')
    expect(w.code, 'the WRITE that completed too early').toBe('ERR_PROVIDER_CONTRACT')
    expect(r.message).toMatch(/provider 'scripted' broke its contract on QP \d+: it completed RDMA_WRITE \(post #2\) with SUCCESS before RDMA_READ \(post #1\)/)
    expect(r.details).toMatchObject({ rule: 'out-of-order', queue: 'send', completed: { opcode: 'RDMA_WRITE', post: 2 }, skipped: [{ opcode: 'RDMA_READ', post: 1, signaled: true }] })
    expect(qp.state).toBe('ERR')
    expect(errors.map((e) => isRdmaError(e, 'ERR_PROVIDER_CONTRACT'))).toEqual([true])
    expect(qp.stats.opsCompleted, 'nothing counted as done').toBe(0)
    expect(qp.stats.errors).toBe(2)
    await ctx.close()
  })

  it('raw WRs caught in a violation complete with GENERAL_ERR under their own wrIds, in post order', async () => {
    const { ctx, qp, fake } = await rig()
    const mr = ctx.registerMemory(Buffer.alloc(64))
    qp.postSend([
      { wrId: 10, opcode: 'SEND', sgList: [mr.slice(0, 8)], signaled: false },
      { wrId: 11, opcode: 'SEND', sgList: [mr.slice(0, 8)] },
      { wrId: 12, opcode: 'SEND', sgList: [mr.slice(0, 8)] },
    ])
    fake.completeSend(2)
    expect((await pollN(qp, 3)).map((wc) => [wc.wrId, wc.status])).toEqual([[10, 'GENERAL_ERR'], [11, 'GENERAL_ERR'], [12, 'GENERAL_ERR']])
    expect(qp.state).toBe('ERR')
    await ctx.close()
  })

  it('completions core makes in a violation keep their place among the provider\'s in the same batch', async () => {
    const { ctx, qp, fake } = await rig()
    const mr = ctx.registerMemory(Buffer.alloc(64))
    qp.postSend([20, 21, 22, 23].map((wrId) => ({ wrId, opcode: 'SEND' as const, sgList: [mr.slice(0, 8)] })))
    // One batch: 20 in order, 22 before 21 (the violation: 21 and 22 fail), 23 flushed after it.
    fake.completeSend(0)
    fake.completeSend(2)
    fake.completeSend(3, 'WR_FLUSH_ERR')
    expect((await pollN(qp, 4)).map((wc) => [wc.wrId, wc.status])).toEqual([[20, 'SUCCESS'], [21, 'GENERAL_ERR'], [22, 'GENERAL_ERR'], [23, 'WR_FLUSH_ERR']])
    expect(qp.sendCq.poll(16)).toEqual([])
    await ctx.close()
  })

  it('raw and promise WRs interleaved over many rounds keep their own wrIds, results and stats (settled WRs are reused)', async () => {
    const { ctx, qp, fake, errors } = await rig()
    const mr = ctx.registerMemory(Buffer.alloc(64))
    const remote = { addr: 0, rkey: 1, length: 8 }
    let posted = 0
    let rawSeen: number[] = []
    for (let round = 0; round < 40; round++) {
      // 8 per round, more than the QP's send queue over all rounds and more than it keeps for reuse
      const writes: Promise<WorkCompletion>[] = []
      for (let i = 0; i < 4; i++) {
        qp.postSend({ wrId: 1000 * round + i, opcode: 'RDMA_WRITE', sgList: [mr.slice(0, 4 + i)], remoteAddr: 0, rkey: 1, signaled: i !== 1 })
        writes.push(qp.write(mr.slice(0, 8), remote))
      }
      for (let i = 0; i < 8; i++) fake.completeSend(posted + i)
      posted += 8
      const wcs = await pollN(qp, 3)
      rawSeen = wcs.map((wc) => wc.wrId)
      expect(rawSeen).toEqual([1000 * round, 1000 * round + 2, 1000 * round + 3])
      expect((await Promise.all(writes)).map((wc) => wc.status)).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS', 'SUCCESS'])
    }
    expect(qp.outstanding).toEqual({ send: 0, recv: 0, backlog: 0 })
    expect(qp.stats.opsCompleted).toBe(40 * 8)
    expect(qp.stats.bytesSent).toBe(40 * (4 + 5 + 6 + 7 + 4 * 8))
    expect(qp.stats.latency.count, 'latency is kept for promise WRs only').toBe(40 * 4)
    expect(errors).toEqual([])
    await ctx.close()
  })

  it('a receive completed before an earlier one is a violation, even though receives are always signaled', async () => {
    const { ctx, qp, fake, errors } = await rig()
    const mr = ctx.registerMemory(Buffer.alloc(64))
    const first = reason(qp.recv(mr.slice(0, 16)))
    const second = reason(qp.recv(mr.slice(16, 16)))
    fake.completeRecv(1, 16)
    expect((await first).code).toBe('ERR_PROVIDER_CONTRACT')
    expect((await second).details).toMatchObject({ queue: 'recv', skipped: [{ opcode: 'RECV', post: 1 }] })
    expect(errors).toHaveLength(1)
    expect(qp.state).toBe('ERR')
    await ctx.close()
  })

  it('a completion for no pending WR (a second completion of one WR) breaks the contract; late completions after that are dropped', async () => {
    const { ctx, qp, fake, errors } = await rig()
    const mr = ctx.registerMemory(Buffer.alloc(64))
    expect((await Promise.all([qp.write(mr.slice(0, 8), { addr: 0, rkey: 1, length: 8 }), Promise.resolve(fake.completeSend(0))]))[0]).toMatchObject({ status: 'SUCCESS' })
    const next = reason(qp.write(mr.slice(0, 8), { addr: 0, rkey: 1, length: 8 }))
    fake.completeSend(0)
    await until(() => errors.length > 0)
    expect(errors[0]).toMatchObject({ code: 'ERR_PROVIDER_CONTRACT', details: { rule: 'stray' } })
    expect(qp.state).toBe('ERR')
    fake.completeSend(1, 'WR_FLUSH_ERR')
    expect((await next).code, 'the pending WR still gets its own (flush) completion').toBe('ERR_WORK_COMPLETION')
    fake.completeSend(0)
    await new Promise((r) => setImmediate(r))
    expect(errors, 'one report per QP').toHaveLength(1)
    await ctx.close()
  })
})

async function until(cond: () => boolean): Promise<void> {
  const deadline = performance.now() + 5000
  while (!cond()) {
    if (performance.now() > deadline) throw new Error('condition not met within 5 s')
    await new Promise((r) => setTimeout(r, 2))
  }
}
