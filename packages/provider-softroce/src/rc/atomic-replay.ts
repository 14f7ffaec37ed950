/** The responder's record of recent atomic results by PSN, so a duplicate atomic is answered from it and never executed twice. */

export class AtomicReplay {
  readonly #psns: Int32Array
  readonly #values: BigUint64Array
  #next = 0

  constructor(size: number) {
    const n = Math.max(4, size)
    this.#psns = new Int32Array(n).fill(-1)
    this.#values = new BigUint64Array(n)
  }

  save(psn: number, original: bigint): void {
    this.#psns[this.#next] = psn
    this.#values[this.#next] = original
    this.#next = (this.#next + 1) % this.#psns.length
  }

  /** The original value the atomic at `psn` returned, or undefined if it is no longer recorded. */
  find(psn: number): bigint | undefined {
    const psns = this.#psns
    for (let i = 0; i < psns.length; i++) if (psns[i] === psn) return this.#values[i]
    return undefined
  }
}
