/** The baseline of the bench: RDMA WRITEs posted straight to the provider (SPI), no core in between. */
import { AccessFlag, QpState, randomPsn, type Context, type PathMtu, type ProviderCq, type ProviderMr, type ProviderQp, type QpQos, type WorkCompletion } from '@rdma-session/core'

const QOS: QpQos = { serviceLevel: 0, trafficClass: 0, className: 'baseline', weight: 1, rateLimitBps: 0 }
const ALL = AccessFlag.LOCAL_WRITE | AccessFlag.REMOTE_WRITE | AccessFlag.REMOTE_READ

/** A connected pair of provider QPs between two contexts' devices, with a source and a target region. */
export class SpiPath {
  readonly #qps: ProviderQp[] = []
  readonly #cqs: ProviderCq[] = []
  readonly #mrs: ProviderMr[] = []
  readonly #cq: ProviderCq
  readonly #qp: ProviderQp
  readonly #src: ProviderMr
  readonly #dst: ProviderMr
  #wake: (() => void) | null = null
  #wrId = 0

  constructor(a: Context, b: Context, bytes: number, mtu: PathMtu) {
    const depth = 64
    const make = (ctx: Context) => {
      const cq = ctx.pd.createCq(depth * 2)
      const qp = ctx.pd.createQp({ sendCq: cq, recvCq: cq, maxSendWr: depth, maxRecvWr: depth, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0, qos: QOS })
      const mr = ctx.pd.registerMemory(new Uint8Array(bytes), ALL)
      this.#cqs.push(cq)
      this.#qps.push(qp)
      this.#mrs.push(mr)
      return { cq, qp, mr, psn: randomPsn(), ctx }
    }
    const x = make(a)
    const y = make(b)
    for (const [self, peer] of [[x, y], [y, x]] as const) {
      self.qp.modify({ state: QpState.INIT, accessFlags: ALL, portNum: 1, pkeyIndex: 0 })
      self.qp.modify({ state: QpState.RTR, remote: { address: peer.ctx.info.address, port: peer.ctx.info.port }, pathMtu: mtu, destQpn: peer.qp.qpn, rqPsn: peer.psn, maxDestRdAtomic: 16, minRnrTimer: 12 })
    }
    for (const self of [x, y]) self.qp.modify({ state: QpState.RTS, sqPsn: self.psn, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 16 })
    this.#cq = x.cq
    this.#qp = x.qp
    this.#src = x.mr
    this.#dst = y.mr
    this.#cq.setNotify(() => {
      const w = this.#wake
      this.#wake = null
      w?.()
    })
  }

  #post(size: number): void {
    this.#qp.postSend({ wrId: ++this.#wrId, opcode: 'RDMA_WRITE', sgList: [{ addr: this.#src.addr, length: size, lkey: this.#src.lkey }], signaled: true, remoteAddr: this.#dst.addr, rkey: this.#dst.rkey })
  }

  async #completions(): Promise<WorkCompletion[]> {
    for (;;) {
      const wcs = this.#cq.poll(64)
      if (wcs.length > 0) {
        for (const wc of wcs) if (wc.status !== 'SUCCESS') throw new Error(`baseline RDMA WRITE failed: ${wc.status}`)
        return wcs
      }
      await new Promise<void>((r) => (this.#wake = r))
    }
  }

  /** `ops` writes of `size` bytes with `depth` in flight; resolves to elapsed ms. */
  async writes(size: number, ops: number, depth: number): Promise<number> {
    const t0 = performance.now()
    let posted = 0
    let done = 0
    while (posted < Math.min(depth, ops)) {
      this.#post(size)
      posted++
    }
    while (done < ops) {
      for (const _ of await this.#completions()) {
        done++
        if (posted < ops) {
          this.#post(size)
          posted++
        }
      }
    }
    return performance.now() - t0
  }

  /** One write of `size` bytes at a time, `n` times; latencies in µs. */
  async pings(size: number, n: number): Promise<number[]> {
    const us: number[] = []
    for (let i = 0; i < n; i++) {
      const t0 = performance.now()
      this.#post(size)
      await this.#completions()
      us.push((performance.now() - t0) * 1000)
    }
    return us
  }

  /** Destroys the QPs, CQs and regions (before their contexts close). */
  close(): void {
    for (const qp of this.#qps) {
      try {
        qp.modify({ state: QpState.ERR })
      } catch {}
      qp.destroy()
    }
    for (const cq of this.#cqs) cq.destroy()
    for (const mr of this.#mrs) mr.deregister()
  }
}
