/**
 * The requester's side of selective repeat: the order in which request packets went out (a
 * ring by PSN, the size of twice the window, so every in-flight PSN has its slot) and the PSNs
 * a SACK NAK named missing, queued to be sent again ahead of new packets, each once.
 *
 * A PSN is sent again only when a packet sent after its latest transmission is known to have
 * arrived (the SACK's cumulative part or a set bit): a retransmission still in flight is not
 * sent twice, and a lost one is sent again as soon as a later packet's arrival shows it.
 */
/**
 * The most transmissions recorded (20 bytes each): a window of more packets (small MTUs, large
 * windows) reuses slots, and a PSN whose slot was reused reads as not recorded, which only makes
 * it eligible to be sent again when a SACK names it missing.
 */
const MAX_RECORDED = 4096

interface Rings {
  /** Send order of each slot's PSN (a counter over all packets sent); -1: not recorded. */
  readonly order: Float64Array
  readonly psn: Int32Array
  /** Queued PSNs (a ring of #mask + 1), and each slot's queued PSN (-1: none). */
  readonly queue: Int32Array
  readonly queuedPsn: Int32Array
}

export class SelectiveRetransmit {
  readonly #mask: number
  /** Allocated at the first packet sent: a QP that never sends holds none of it. */
  #rings: Rings | null = null
  #head = 0
  #count = 0
  #seq = 0

  /** `windowPackets`: the most packets the requester has in flight. */
  constructor(windowPackets: number) {
    const slots = 2 ** Math.ceil(Math.log2(Math.max(4, Math.min(windowPackets, MAX_RECORDED / 2) * 2)))
    this.#mask = slots - 1
  }

  #ringsNow(): Rings {
    if (this.#rings !== null) return this.#rings
    const slots = this.#mask + 1
    return (this.#rings = { order: new Float64Array(slots).fill(-1), psn: new Int32Array(slots).fill(-1), queue: new Int32Array(slots), queuedPsn: new Int32Array(slots).fill(-1) })
  }

  /** PSNs waiting to be sent again. */
  get pending(): number {
    return this.#count
  }

  /** Records that `psn` was (re)sent now. */
  sent(psn: number): void {
    const r = this.#ringsNow()
    const i = psn & this.#mask
    r.order[i] = this.#seq++
    r.psn[i] = psn
  }

  /** The send order of `psn`'s latest transmission, or -1 when it is not recorded. */
  sentOrder(psn: number): number {
    const r = this.#rings
    const i = psn & this.#mask
    return r !== null && r.psn[i] === psn ? r.order[i]! : -1
  }

  /** Queues `psn` to be sent again; false when it is queued already. */
  enqueue(psn: number): boolean {
    const r = this.#ringsNow()
    const i = psn & this.#mask
    if (r.queuedPsn[i] === psn || this.#count > this.#mask) return false
    r.queuedPsn[i] = psn
    r.queue[(this.#head + this.#count++) & this.#mask] = psn
    return true
  }

  /** The next queued PSN (removed from the queue), or -1. */
  next(): number {
    const r = this.#rings
    if (this.#count === 0 || r === null) return -1
    const psn = r.queue[this.#head]!
    this.#head = (this.#head + 1) & this.#mask
    this.#count--
    const i = psn & this.#mask
    if (r.queuedPsn[i] === psn) r.queuedPsn[i] = -1
    return psn
  }

  /** Forgets the queue (go-back-N took over, or the QP stopped). */
  clear(): void {
    while (this.next() >= 0) { /* drain */ }
  }
}
