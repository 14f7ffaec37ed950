/**
 * When each in-flight request packet of a QP was sent, by PSN (a ring the size of twice the
 * window), for the delay window's RTT samples. Its arrays are made at the first send: a QP that
 * never sends requests (most QPs a peer makes a server create) costs nothing here, where a bulk
 * QP's ring at MTU 256 is about 96 KiB.
 */
export class SendTimes {
  readonly #slots: number
  #at: Float64Array | null = null
  #psn: Int32Array | null = null

  /** `slots`: a power of two. */
  constructor(slots: number) {
    this.#slots = slots
  }

  record(psn: number, now: number): void {
    if (this.#at === null) {
      this.#at = new Float64Array(this.#slots)
      this.#psn = new Int32Array(this.#slots).fill(-1)
    }
    const i = psn & (this.#slots - 1)
    this.#at[i] = now
    this.#psn![i] = psn
  }

  /** When `psn` was sent, or -1 when that is not recorded (never sent, or overwritten since). */
  sentAt(psn: number): number {
    const i = psn & (this.#slots - 1)
    return this.#psn !== null && this.#psn[i] === psn ? this.#at![i]! : -1
  }
}
