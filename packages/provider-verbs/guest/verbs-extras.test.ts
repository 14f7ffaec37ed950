/**
 * What provider-verbs offers beyond the SPI, and its verbs-specific errors, on the guest's rxe0:
 * shared receive queues, attribute errors that name the attribute, verbs errors with errno, the
 * destroy order, device stats, the GID choice, and the cleanup hook at process exit.
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { createContext, type QpQos } from '@rdma-session/core'
import { verbs, type VerbsDevice, type VerbsPd } from '../src/index.js'

const device = process.env.RXE_DEVICE ?? 'rxe0'
const qos: QpQos = { serviceLevel: 0, trafficClass: 0, className: 'default', weight: 1, rateLimitBps: 0 }
const caught = (fn: () => unknown): Error & { code?: string; details?: Record<string, unknown>; errno?: number; errnoName?: string } => {
  try {
    fn()
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('expected an error')
}

describe('provider-verbs extras on rxe', () => {
  it('selects the RoCEv2 IPv4 GID and reports it as the address; capabilities come from the device', async () => {
    const p = verbs({ device })
    const d = (await p.openDevice()) as VerbsDevice
    expect(d.info.name).toBe(device)
    expect(d.info.port).toBe(4791)
    expect(d.info.gid).toBe(`::ffff:${d.info.address}`)
    expect(p.capabilities).toMatchObject({ encryption: false, atomics: true, immediate: true, maxMtu: 1024 })
    expect(p.capabilities.maxInline).toBeGreaterThanOrEqual(64)
    await d.close()
    expect(() => verbs({ device, gidIndex: 0 }).capabilities).not.toThrow()
    expect(caught(() => verbs({ device, address: '10.9.9.9' }).capabilities).message).toMatch(/no RoCEv2 GID for address 10.9.9.9/)
  })

  it('a shared receive queue serves two QPs', async () => {
    const provider = verbs({ device })
    const a = await createContext({ provider })
    const b = await createContext({ provider })
    const pdB = b.pd as VerbsPd
    const srq = pdB.createSrq(16, 1)
    const cqB = pdB.createCq(64)
    const seen: number[] = []
    cqB.setNotify(() => {
      for (const wc of cqB.poll(16)) seen.push(wc.byteLen)
    })
    const mrB = b.registerMemory(Buffer.alloc(4096), { access: ['local-write'] })
    for (let i = 0; i < 4; i++) srq.postRecv({ wrId: 100 + i, sgList: [{ addr: mrB.addr + i * 256, length: 256, lkey: mrB.lkey }] })
    const qpsB = [0, 1].map(() => pdB.createQp({ sendCq: cqB, recvCq: cqB, maxSendWr: 4, maxRecvWr: 4, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0, qos }, { srq }))
    const qpsA = [0, 1].map(() => a.createQp())
    for (const [i, qa] of qpsA.entries()) {
      const qb = qpsB[i]!
      qa.modify({ state: 'INIT', accessFlags: 1 })
      qb.modify({ state: 'INIT', accessFlags: 1, portNum: 1, pkeyIndex: 0 })
      qa.modify({ state: 'RTR', remote: b.endpoint, pathMtu: 1024, destQpn: qb.qpn, rqPsn: 1 })
      qb.modify({ state: 'RTR', remote: a.endpoint, pathMtu: 1024, destQpn: qa.qpn, rqPsn: 2 })
      qa.modify({ state: 'RTS', sqPsn: 2 })
      qb.modify({ state: 'RTS', sqPsn: 1 })
    }
    expect(caught(() => qpsB[0]!.postRecv({ wrId: 1, sgList: [] })).message).toMatch(/shared receive queue/)
    await qpsA[0]!.send(Buffer.from('hello'))
    await qpsA[1]!.send(Buffer.from('shared!'))
    for (let i = 0; i < 100 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 20))
    expect(seen.sort()).toEqual([5, 7])
    expect(Buffer.from(mrB.bytes.subarray(0, 5)).toString() + Buffer.from(mrB.bytes.subarray(256, 263)).toString()).toBe('helloshared!')
    for (const q of qpsB) q.destroy()
    srq.destroy()
    cqB.destroy()
    await a.close()
    await b.close()
  })

  it('errors name the attribute, carry errno, and the destroy order is enforced', async () => {
    const p = verbs({ device })
    const d = (await p.openDevice()) as VerbsDevice
    const pd = d.allocPd()
    const cq = pd.createCq(16)
    const mr = pd.registerMemory(new Uint8Array(4096), 0b111)
    const qp = pd.createQp({ sendCq: cq, recvCq: cq, maxSendWr: 4, maxRecvWr: 4, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0, qos })
    qp.modify({ state: 'INIT', accessFlags: 0b111, portNum: 1, pkeyIndex: 0 })
    try {
      const mtu = caught(() => qp.modify({ state: 'RTR', remote: { address: d.info.address, port: 4791 }, pathMtu: 4096, destQpn: qp.qpn, rqPsn: 0 }))
      expect(mtu).toMatchObject({ code: 'ERR_QP_ATTR', details: { attribute: 'pathMtu' } })
      expect(caught(() => qp.modify({ state: 'RTR', remote: { address: d.info.address, port: 4792 }, pathMtu: 1024, destQpn: qp.qpn, rqPsn: 0 }))).toMatchObject({ code: 'ERR_QP_ATTR', details: { attribute: 'remote' } })
      expect(caught(() => qp.modify({ state: 'RTR', remote: { address: 'not-an-address', port: 4791 }, pathMtu: 1024, destQpn: qp.qpn, rqPsn: 0 }))).toMatchObject({ code: 'ERR_QP_ATTR', details: { attribute: 'remote' } })
      const tooMany = d.selection.attrs.maxQpInitRdAtom + 1
      if (tooMany <= 255) expect(caught(() => qp.modify({ state: 'RTR', remote: { address: d.info.address, port: 4791 }, pathMtu: 1024, destQpn: qp.qpn, rqPsn: 0, maxDestRdAtomic: tooMany }))).toMatchObject({ code: 'ERR_QP_ATTR', details: { attribute: 'maxDestRdAtomic' } })
      expect(caught(() => qp.modify({ state: 'RTR', remote: { address: d.info.address, port: 4791 }, pathMtu: 1024, destQpn: qp.qpn, rqPsn: 0, encryption: { suite: 'aes-256-gcm', txKey: new Uint8Array(32), rxKey: new Uint8Array(32), epoch: 0 } }))).toMatchObject({ code: 'ERR_ENCRYPTION_UNSUPPORTED' })
      expect(qp.state).toBe('INIT')
      // Out of order: the PD still has a QP and an MR, the device still has children.
      const busy = caught(() => pd.dealloc())
      expect(busy).toMatchObject({ code: 'ERR_VERBS', errnoName: 'EBUSY', details: { verb: 'ibv_dealloc_pd' } })
      expect(busy.message).toMatch(/ibv_dealloc_pd failed: Device or resource busy \(EBUSY\)/)
      await expect(d.close()).rejects.toMatchObject({ code: 'ERR_VERBS', errnoName: 'EBUSY' })
      expect(d.stats()).toEqual({ qps: 1, cqs: 1, mrs: 1, pds: 1, srqs: 0 })
      qp.destroy()
      cq.destroy()
      mr.deregister()
      pd.dealloc()
      expect(d.stats()).toEqual({ qps: 0, cqs: 0, mrs: 0, pds: 0, srqs: 0 })
      await d.close()
    } finally {
      // A failed assertion must not leave verbs objects open when the test worker ends.
      for (const close of [() => qp.destroy(), () => cq.destroy(), () => mr.deregister(), () => pd.dealloc(), () => void d.close().catch(() => {})]) {
        try {
          close()
        } catch {
          // already gone
        }
      }
    }
  })

  // These start node in the TCG guest (tens of seconds on a loaded host, 3 times in the second):
  // a test limit of its own, longer than the child's, so the child's result is what is judged.
  it('a process that exits with objects still open is cleaned up by the exit hook (no crash)', { timeout: 240_000 }, () => {
    const script = `
      const { verbs } = await import(${JSON.stringify(fileURLToPath(new URL('../dist/index.js', import.meta.url)))})
      const d = await verbs({ device: ${JSON.stringify(device)} }).openDevice()
      const pd = d.allocPd(); const cq = pd.createCq(8)
      pd.registerMemory(new Uint8Array(4096), 1)
      pd.createQp({ sendCq: cq, recvCq: cq, maxSendWr: 2, maxRecvWr: 2, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0, qos: { serviceLevel: 0, trafficClass: 0, className: 'x', weight: 1, rateLimitBps: 0 } })
      console.log('open', JSON.stringify(d.stats()))
      process.exit(0)`
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 200_000 })
    expect(r.stdout).toContain('open {"qps":1,"cqs":1,"mrs":1,"pds":1,"srqs":0}')
    expect(r.status, r.stderr).toBe(0)
    expect(r.signal).toBeNull()
  })

  it('a worker thread that ends with objects still open (exit or terminate) does not crash the process', { timeout: 240_000 }, () => {
    // The worker is the only user of the addon, so Node unloads it when the worker's env goes;
    // libuv then still called the close callbacks of the device's poll handles (SIGSEGV, fixed by
    // pinning the library). Three workers in a row: load, open, end, load again.
    const dist = JSON.stringify(fileURLToPath(new URL('../dist/index.js', import.meta.url)))
    const script = `
      import { Worker } from 'node:worker_threads'
      const body = \`
        const { parentPort, workerData } = await import('node:worker_threads')
        const { verbs } = await import(\${JSON.stringify(${dist})})
        const d = await verbs({ device: ${JSON.stringify(device)} }).openDevice()
        const pd = d.allocPd(); const cq = pd.createCq(8)
        pd.registerMemory(new Uint8Array(4096), 1)
        pd.createQp({ sendCq: cq, recvCq: cq, maxSendWr: 2, maxRecvWr: 2, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0, qos: { serviceLevel: 0, trafficClass: 0, className: 'x', weight: 1, rateLimitBps: 0 } })
        parentPort.postMessage(JSON.stringify(d.stats()))
        if (workerData === 'exit') process.exit(0)\`
      for (const how of ['exit', 'terminate', 'exit']) {
        const w = new Worker(body, { eval: true, workerData: how })
        const exited = new Promise((resolve) => w.once('exit', resolve))
        const stats = await new Promise((resolve) => w.once('message', resolve))
        if (how === 'terminate') await w.terminate()
        console.log('worker', how, stats, 'exit', await exited)
      }
      console.log('main done')`
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 200_000 })
    expect(r.signal, r.stderr).toBeNull()
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toContain('worker exit {"qps":1,"cqs":1,"mrs":1,"pds":1,"srqs":0} exit 0')
    expect(r.stdout).toContain('worker terminate {"qps":1,"cqs":1,"mrs":1,"pds":1,"srqs":0} exit 1')
    expect(r.stdout).toContain('main done')
  })
})
