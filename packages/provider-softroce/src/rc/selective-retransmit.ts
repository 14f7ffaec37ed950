/**
 * The requester's side of selective repeat: the order in which request packets went out (a
 * ring by PSN, the size of twice the window, so every in-flight PSN has its slot) and the PSNs
 * a SACK NAK named missing, queued to be sent again ahead of new packets, each once.
 *
 * A PSN is sent again only when a packet sent after its latest transmission is known to have
 * arrived (the SACK's cumulative part or a set bit): a retransmission still in flight is not
 * sent twice, and a lost one is sent again as soon as a later packet's arrival shows it.
 */
export class SelectiveRetransmit {
  readonly #mask: number
  /** Send order of each slot's PSN (a counter over all packets sent); -1: not recorded. */
  readonly #order: Float64Array
  readonly #psn: Int32Array
  /** Queued PSNs (a ring of #mask + 1), and each slot's queued PSN (-1: none). */
  readonly #queue: Int32Array
  readonly #queuedPsn: Int32Array
  #head = 0
  #count = 0
  #seq = 0

  /** `windowPackets`: the most packets the requester has in flight. */
  constructor(windowPackets: number) {
    const slots = 2 ** Math.ceil(Math.log2(Math.max(4, windowPackets * 2)))
    this.#mask = slots - 1
    this.#order = new Float64Array(slots).fill(-1)
    this.#psn = new Int32Array(slots).fill(-1)
    this.#queue = new Int32Array(slots)
    this.#queuedPsn = new Int32Array(slots).fill(-1)
  }

  /** PSNs waiting to be sent again. */
  get pending(): number {
    return this.#count
  }

  /** Records that `psn` was (re)sent now. */
  sent(psn: number): void {
    const i = psn & this.#mask
    this.#order[i] = this.#seq++
    this.#psn[i] = psn
  }

  /** The send order of `psn`'s latest transmission, or -1 when it is not recorded. */
  sentOrder(psn: number): number {
    const i = psn & this.#mask
    return this.#psn[i] === psn ? this.#order[i]! : -1
  }

  /** Queues `psn` to be sent again; false when it is queued already. */
  enqueue(psn: number): boolean {
    const i = psn & this.#mask
    if (this.#queuedPsn[i] === psn || this.#count > this.#mask) return false
    this.#queuedPsn[i] = psn
    this.#queue[(this.#head + this.#count++) & this.#mask] = psn
    return true
  }

  /** The next queued PSN (removed from the queue), or -1. */
  next(): number {
    if (this.#count === 0) return -1
    const psn = this.#queue[this.#head]!
    this.#head = (this.#head + 1) & this.#mask
    this.#count--
    const i = psn & this.#mask
    if (this.#queuedPsn[i] === psn) this.#queuedPsn[i] = -1
    return psn
  }

  /** Forgets the queue (go-back-N took over, or the QP stopped). */
  clear(): void {
    while (this.next() >= 0) { /* drain */ }
  }
}
