/**
 * perftest's exchange with -R (use_rdma_cm, perftest_communication.c): an rdma_cm connection on
 * the -p port whose RC QP carries every exchange as one SEND (rdma_write_data/rdma_read_data;
 * the QP keys as struct pingpong_dest, rdma_write_keys/rdma_read_keys). Each side keeps one
 * receive of sizeof(struct pingpong_dest) posted, from before rdma_connect/rdma_accept on, and
 * posts the next as soon as one is consumed; the client sends first, the server answers, as over
 * TCP. ctx_close_connection is a last handshake (no "done").
 */
import type { CompletionQueue, Context, MemoryRegion, QueuePair, WorkCompletion } from '@rdma-session/core'
import type { CmConnection, CmQpOptions } from '@rdma-session/provider-softroce'
import type { PerftestExchange } from './exchange.js'
import { PINGPONG_DEST_BYTES, PerftestExchangeError, decodeKeysBinary, encodeKeysBinary, type PerftestDest } from './wire.js'

/** SYNC_SPEC_ID: the wr_id of every control SEND and receive. */
const SYNC_SPEC_ID = 5

/** The control QP's resources, made before the connection (its QP comes from the CM). */
export class PerftestCmChannel implements PerftestExchange {
  readonly client: boolean
  readonly timeoutMs: number
  readonly #sendCq: CompletionQueue
  readonly #recvCq: CompletionQueue
  readonly #buf = Buffer.alloc(2 * PINGPONG_DEST_BYTES)
  readonly #mr: MemoryRegion
  #conn: CmConnection | null = null
  #finished = false
  #gone: string | null = null

  constructor(ctx: Context, client: boolean, timeoutMs: number) {
    this.client = client
    this.timeoutMs = timeoutMs
    this.#sendCq = ctx.createCq({ depth: 2 })
    this.#recvCq = ctx.createCq({ depth: 2 })
    this.#mr = ctx.registerMemory(this.#buf, { access: ['local-write'] })
  }

  /** How the CM makes the control QP: tx/rx depth 1, one receive posted before the REQ/REP. */
  get qpOptions(): CmQpOptions {
    return {
      qp: { sendCq: this.#sendCq, recvCq: this.#recvCq, caps: { maxSendWr: 1, maxRecvWr: 1, maxSendSge: 1, maxRecvSge: 1 } },
      prepare: (qp) => this.#postRecv(qp),
    }
  }

  /** The established control connection. */
  attach(conn: CmConnection): void {
    this.#conn = conn
    void conn.disconnected.then(() => {
      if (!this.#finished) this.#gone = 'the peer disconnected the rdma_cm control connection'
    })
  }

  get connection(): CmConnection | null {
    return this.#conn
  }

  get #qp(): QueuePair {
    if (this.#conn?.qp == null) throw new PerftestExchangeError('the rdma_cm control connection is not established', 'ERR_PERFTEST_EXCHANGE')
    return this.#conn.qp
  }

  #postRecv(qp: QueuePair): void {
    qp.postRecv({ wrId: SYNC_SPEC_ID, sgList: [{ addr: this.#mr.addr + PINGPONG_DEST_BYTES, length: PINGPONG_DEST_BYTES, lkey: this.#mr.lkey }] })
  }

  /** One completion of `cq`, by the deadline (none when untimed), unless the connection goes away first. */
  async #completion(cq: CompletionQueue, what: string, untimed: boolean): Promise<WorkCompletion> {
    const deadline = untimed ? Infinity : Date.now() + this.timeoutMs
    for (;;) {
      const [wc] = cq.poll(1)
      // A refused connect attempt's QP (its receive posted before the REQ) flushes into the same
      // CQs when the CM closes it: not ours.
      if (wc !== undefined && wc.qpn !== this.#qp.qpn) continue
      if (wc !== undefined) {
        if (wc.status !== 'SUCCESS' || wc.wrId !== SYNC_SPEC_ID) throw new PerftestExchangeError(`Couldn't ${what}: control QP completion ${wc.status} (wr_id ${wc.wrId})`, 'ERR_PERFTEST_PEER_GONE')
        return wc
      }
      if (this.#gone !== null) throw new PerftestExchangeError(`Couldn't ${what}: ${this.#gone}`, 'ERR_PERFTEST_PEER_GONE')
      const left = deadline - Date.now()
      if (left <= 0) throw new PerftestExchangeError(`Couldn't ${what}: nothing from the peer in ${this.timeoutMs / 1000} s`, 'ERR_OOB_TIMEOUT')
      let timer: NodeJS.Timeout | undefined
      // Wake up now and then to notice a disconnect (its QP flushes nothing we would poll).
      await Promise.race([cq.waitReady(), new Promise((resolve) => (timer = setTimeout(resolve, Math.min(left, 200))))])
      clearTimeout(timer)
    }
  }

  async #write(mine: Buffer, what: string): Promise<void> {
    if (mine.length > PINGPONG_DEST_BYTES) throw new RangeError(`a control message is at most ${PINGPONG_DEST_BYTES} bytes, got ${mine.length}`)
    mine.copy(this.#buf, 0)
    this.#qp.postSend({ wrId: SYNC_SPEC_ID, opcode: 'SEND', sgList: [{ addr: this.#mr.addr, length: mine.length, lkey: this.#mr.lkey }], signaled: true })
    await this.#completion(this.#sendCq, `send ${what}`, false)
  }

  async #read(n: number, what: string, untimed: boolean): Promise<Buffer> {
    const wc = await this.#completion(this.#recvCq, `read ${what}`, untimed)
    if (wc.byteLen !== n) throw new PerftestExchangeError(`Couldn't read ${what}: the peer sent ${wc.byteLen} bytes, ${n} expected`)
    const theirs = Buffer.from(this.#buf.subarray(PINGPONG_DEST_BYTES, PINGPONG_DEST_BYTES + n))
    this.#postRecv(this.#qp)
    return theirs
  }

  async xchg(mine: Buffer, n: number, what: string, untimed = false): Promise<Buffer> {
    if (this.client) {
      await this.#write(mine, what)
      return this.#read(n, what, untimed)
    }
    const theirs = await this.#read(n, what, untimed)
    await this.#write(mine, what)
    return theirs
  }

  async handshake(mine: PerftestDest, untimed = false, beforeReply?: () => void): Promise<PerftestDest> {
    if (this.client) return decodeKeysBinary(await this.xchg(encodeKeysBinary(mine), PINGPONG_DEST_BYTES, 'remote address', untimed))
    const theirs = await this.#read(PINGPONG_DEST_BYTES, 'remote address', untimed)
    beforeReply?.()
    await this.#write(encodeKeysBinary(mine), 'remote address')
    return decodeKeysBinary(theirs)
  }

  async closeConnection(mine: PerftestDest, untimed = false): Promise<void> {
    await this.handshake(mine, untimed)
    this.#finished = true
  }

  finish(): void {
    this.#finished = true
  }

  get finished(): boolean {
    return this.#finished
  }

  destroy(): void {
    this.#finished = true
  }

  onGone(gone: () => void): () => void {
    let on = true
    void this.#conn?.disconnected.then(() => {
      if (on && !this.#finished) gone()
    })
    return () => (on = false)
  }
}
