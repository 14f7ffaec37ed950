/**
 * The fast post and poll paths of provider-verbs on the guest's rxe0: prepared send WRs
 * (prepareSend / postPrepared / postPreparedList / release), completion records (pollRecords),
 * and their errors: a released, foreign or stale handle, a detached inline buffer, bad arguments
 * to the raw binding — always a stable code, never a crash.
 */
import { describe, expect, it } from 'vitest'
import { createContext, type Context } from '@rdma-session/core'
import { WC_RECORD, completionOpcode, completionStatus, decodeCompletion, verbs, type VerbsCq, type VerbsQp } from '../src/index.js'

const device = process.env.RXE_DEVICE ?? 'rxe0'
const access = { access: ['local-write', 'remote-write', 'remote-read'] as const }

const caught = (fn: () => unknown): Error & { code?: string; details?: Record<string, unknown> } => {
  try {
    fn()
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('expected an error')
}

/** Two connected RC QPs on the device (both contexts on rxe0), like the bench. */
async function pair() {
  const provider = verbs({ device })
  const a = await createContext({ provider })
  const b = await createContext({ provider })
  const mra = a.registerMemory(Buffer.alloc(8192), { access: [...access.access] })
  const mrb = b.registerMemory(Buffer.alloc(8192), { access: [...access.access] })
  const caps = { maxSendWr: 64, maxRecvWr: 16, maxInlineData: 64 }
  const qa = a.createQp({ caps }), qb = b.createQp({ caps })
  qa.modify({ state: 'INIT', accessFlags: 0b111 }); qb.modify({ state: 'INIT', accessFlags: 0b111 })
  qa.modify({ state: 'RTR', remote: b.endpoint, pathMtu: 1024, destQpn: qb.qpn, rqPsn: qb.localPsn })
  qb.modify({ state: 'RTR', remote: a.endpoint, pathMtu: 1024, destQpn: qa.qpn, rqPsn: qa.localPsn })
  qa.modify({ state: 'RTS', sqPsn: qa.localPsn }); qb.modify({ state: 'RTS', sqPsn: qb.localPsn })
  const pa = qa.provider as VerbsQp, pb = qb.provider as VerbsQp
  const close = async (): Promise<void> => {
    for (const c of [a, b] as Context[]) await c.close().catch(() => {})
  }
  return { a, b, mra, mrb, qa, qb, pa, pb, ca: pa.sendCq as VerbsCq, close }
}

/** Polls `cq` with pollRecords until `n` records came (or 10 s passed: the caller's expectation then shows what did). */
async function records(cq: VerbsCq, n: number) {
  const out: ReturnType<typeof decodeCompletion>[] = []
  // A deadline in time, not in polls: 500 polls of 2 ms were about 1 s, short for rxe in a TCG guest on a loaded host.
  const deadline = performance.now() + 10_000
  while (out.length < n && performance.now() < deadline) {
    const got = cq.pollRecords(16)
    for (let k = 0; k < got; k++) out.push(decodeCompletion(cq.records, k))
    if (got === 0) await new Promise((r) => setTimeout(r, 2))
  }
  return out
}

/** Waits until `cond()` holds or 10 s passed (the expectation that follows shows what was seen). */
async function until(cond: () => boolean): Promise<void> {
  const deadline = performance.now() + 10_000
  while (!cond() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 2))
}

describe('provider-verbs fast path on rxe', () => {
  it('a prepared inline WRITE posts the bytes its array holds at each post; pollRecords reports it', async () => {
    const t = await pair()
    try {
      const data = new Uint8Array(8)
      const p = t.pa.prepareSend({ wrId: 77, opcode: 'RDMA_WRITE', sgList: [], signaled: true, remoteAddr: t.mrb.addr + 16, rkey: t.mrb.rkey, inlineData: data })
      expect(p.handle).toBeGreaterThan(0)
      expect(Number.isSafeInteger(p.handle)).toBe(true)
      for (const v of [1, 2, 250]) {
        data.fill(v)
        data[0] = v ^ 0xff
        t.pa.postPrepared(p)
        await until(() => t.mrb.bytes[23] === v)
        expect([...t.mrb.bytes.subarray(16, 24)]).toEqual([v ^ 0xff, v, v, v, v, v, v, v])
      }
      const wcs = await records(t.ca, 3)
      expect(wcs.map((w) => [w.wrId, w.status, w.opcode, w.qpn])).toEqual(Array(3).fill([77, 'SUCCESS', 'RDMA_WRITE', t.qa.qpn]))
      // The raw words, as documented by WC_RECORD.
      const rec = t.ca.records
      expect(rec.length).toBeGreaterThanOrEqual(256 * WC_RECORD.WORDS)
      expect(completionStatus(0)).toBe('SUCCESS')
      expect(completionOpcode(2)).toBe('RDMA_WRITE')
      expect(t.mrb.bytes[15]).toBe(0) // nothing outside the 8 bytes
      p.release()
      expect(p.released).toBe(true)
      p.release() // idempotent
    } finally {
      await t.close()
    }
  })

  it('a prepared SGE WRITE and READ move the memory as it is at post time; postPreparedList posts a chain', async () => {
    const t = await pair()
    try {
      const src = t.mra.slice(0, 256)
      const write = t.pa.prepareSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [src.toSge()], signaled: true, remoteAddr: t.mrb.addr, rkey: t.mrb.rkey })
      t.mra.bytes.fill(0x5a, 0, 256)
      t.pa.postPrepared(write)
      await until(() => t.mrb.bytes[255] === 0x5a)
      expect(t.mrb.bytes.subarray(0, 256).every((x) => x === 0x5a)).toBe(true)
      t.mra.bytes.fill(0x6b, 0, 256)
      t.pa.postPrepared(write)
      await until(() => t.mrb.bytes[255] === 0x6b)
      expect(t.mrb.bytes.subarray(0, 256).every((x) => x === 0x6b)).toBe(true)
      expect((await records(t.ca, 2)).map((w) => w.status)).toEqual(['SUCCESS', 'SUCCESS'])

      t.mrb.bytes.fill(0x11, 4096, 4096 + 64)
      const read = t.pa.prepareSend({ wrId: 2, opcode: 'RDMA_READ', sgList: [t.mra.slice(1024, 64).toSge()], signaled: true, remoteAddr: t.mrb.addr + 4096, rkey: t.mrb.rkey })
      t.pa.postPrepared(read)
      const [r] = await records(t.ca, 1)
      expect(r).toMatchObject({ wrId: 2, status: 'SUCCESS', opcode: 'RDMA_READ', byteLen: 64 })
      expect(t.mra.bytes.subarray(1024, 1088).every((x) => x === 0x11)).toBe(true)

      // Ten WRITEs to ten offsets, one call, one signaled completion at the end.
      const list = Array.from({ length: 10 }, (_, i) => {
        const bytes = Uint8Array.of(i + 1)
        return t.pa.prepareSend({ wrId: 100 + i, opcode: 'RDMA_WRITE', sgList: [], signaled: i === 9, remoteAddr: t.mrb.addr + 2048 + i, rkey: t.mrb.rkey, inlineData: bytes })
      })
      t.pa.postPreparedList(list)
      await until(() => t.mrb.bytes[2048 + 9] === 10)
      expect([...t.mrb.bytes.subarray(2048, 2058)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
      const done = await records(t.ca, 1)
      expect(done.map((w) => w.wrId)).toEqual([109])
      // Only the first `count` entries are posted.
      t.mrb.bytes.fill(0, 2048, 2058)
      t.pa.postPreparedList(list.slice(0, 9).concat(list[9]!), 3)
      await until(() => t.mrb.bytes[2050] === 3)
      await new Promise((r) => setTimeout(r, 20))
      expect([...t.mrb.bytes.subarray(2048, 2058)]).toEqual([1, 2, 3, 0, 0, 0, 0, 0, 0, 0])
      for (const p of [write, read, ...list]) p.release()
    } finally {
      await t.close()
    }
  })

  it('bad handles, foreign handles, detached inline data and bad arguments give ERR_INVALID_ARGUMENT, not a crash', async () => {
    const t = await pair()
    try {
      const binding = t.pa.device.binding
      const inline = new Uint8Array(8)
      const p = t.pa.prepareSend({ wrId: 1, opcode: 'RDMA_WRITE', sgList: [], signaled: false, remoteAddr: t.mrb.addr, rkey: t.mrb.rkey, inlineData: inline })
      // Raw binding: handles never issued, of a wrong shape, or not numbers.
      for (const h of [0, 12345, -1, 0.5, Number.MAX_SAFE_INTEGER, Number.NaN, p.handle + 1]) expect(binding.postPrepared(h)).toBe(-1)
      expect(caught(() => (binding.postPrepared as (h: unknown) => number)('x'))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
      expect(caught(() => (binding.postPrepared as () => number)())).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
      expect(caught(() => (binding.postPreparedList as (h: unknown, n: number) => number)([p.handle], 1))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
      expect(binding.releasePrepared(999_999)).toBe(false)
      // A prepared WR of another QP.
      const other = t.pb.prepareSend({ wrId: 2, opcode: 'RDMA_WRITE', sgList: [], signaled: false, remoteAddr: t.mra.addr, rkey: t.mra.rkey, inlineData: new Uint8Array(4) })
      expect(caught(() => t.pa.postPrepared(other))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
      expect(caught(() => t.pa.postPrepared({ handle: p.handle } as never))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
      expect(binding.postPreparedList(Float64Array.of(p.handle, other.handle), 2)).toEqual([-3, 0, 1])
      expect(binding.postPreparedList(Float64Array.of(p.handle, 4242), 2)).toEqual([-1, 0, 1])
      // Released: the handle is dead for good (a new WR in the same slot gets another handle).
      p.release()
      const stale = caught(() => t.pa.postPrepared(p))
      expect(stale).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', details: { handle: p.handle } })
      expect(stale.message).toMatch(/not live/)
      const again = t.pa.prepareSend({ wrId: 3, opcode: 'RDMA_WRITE', sgList: [], signaled: false, remoteAddr: t.mrb.addr, rkey: t.mrb.rkey, inlineData: inline })
      expect(again.handle).not.toBe(p.handle)
      expect(binding.postPrepared(p.handle)).toBe(-1)
      const listErr = caught(() => t.pa.postPreparedList([again, p]))
      expect(listErr).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', details: { posted: 0, index: 1 } })
      // Detached inline data (its ArrayBuffer transferred away).
      const moving = new Uint8Array(8)
      const d = t.pa.prepareSend({ wrId: 4, opcode: 'RDMA_WRITE', sgList: [], signaled: false, remoteAddr: t.mrb.addr, rkey: t.mrb.rkey, inlineData: moving })
      structuredClone(moving.buffer, { transfer: [moving.buffer] })
      expect(moving.byteLength).toBe(0)
      expect(caught(() => t.pa.postPrepared(d)).message).toMatch(/detached/)
      // prepareSend checks what it is given.
      expect(caught(() => t.pa.prepareSend({ wrId: 5, opcode: 'RDMA_WRITE', sgList: [], signaled: false, remoteAddr: t.mrb.addr, rkey: t.mrb.rkey, inlineData: new Uint8Array(4096) }))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
      expect(caught(() => t.pa.prepareSend({ wrId: 5, opcode: 'NOPE' as never, sgList: [], signaled: false }))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
      // Destroying the QP releases its prepared WRs.
      const live = t.pb.prepareSend({ wrId: 6, opcode: 'RDMA_WRITE', sgList: [], signaled: false, remoteAddr: t.mra.addr, rkey: t.mra.rkey, inlineData: new Uint8Array(4) })
      const handle = live.handle
      await t.qb.close()
      expect(live.released).toBe(true)
      expect(other.released).toBe(true)
      expect(binding.postPrepared(handle)).toBe(-1)
      expect(caught(() => t.pb.postPrepared(live))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
      expect(caught(() => t.pb.prepareSend({ wrId: 7, opcode: 'RDMA_WRITE', sgList: [], signaled: false }))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
      again.release()
      d.release()
    } finally {
      await t.close()
    }
  })

  it('pollRecords reports failed completions (and the QP goes to ERR); poll() and pollRecords() share the queue', async () => {
    const t = await pair()
    try {
      const bad = t.pa.prepareSend({ wrId: 9, opcode: 'RDMA_WRITE', sgList: [], signaled: true, remoteAddr: t.mrb.addr, rkey: t.mrb.rkey ^ 0x5a5a00, inlineData: new Uint8Array(8) })
      t.pa.postPrepared(bad)
      const [wc] = await records(t.ca, 1)
      expect(wc).toMatchObject({ wrId: 9, status: 'REM_ACCESS_ERR', opcode: 'RDMA_WRITE' })
      expect(t.pa.state).toBe('ERR')
      // In ERR a posted WR flushes; taken by poll() (objects) after pollRecords() saw nothing.
      t.pa.postPrepared(bad)
      let flushed: ReturnType<VerbsCq['poll']> = []
      for (const deadline = performance.now() + 10_000; flushed.length === 0 && performance.now() < deadline;) {
        flushed = t.ca.poll(4)
        if (flushed.length === 0) await new Promise((r) => setTimeout(r, 2))
      }
      expect(flushed.map((w) => [w.wrId, w.status])).toEqual([[9, 'WR_FLUSH_ERR']])
      expect(t.ca.pollRecords(16)).toBe(0)
      bad.release()
    } finally {
      await t.close()
    }
  })
})
