/**
 * The responder's ordered queue of outgoing responses: READ responses (sent
 * one packet at a time through the device scheduler) and ACK/NAK/atomic ACKs
 * queued behind them, so no acknowledgment overtakes a READ response it implies.
 */

export interface ReadResponseJob {
  readonly kind: 'read'
  /** PSN of the first response packet. */
  readonly psn: number
  /** The bytes to send (already checked against rkey, bounds and access). */
  readonly data: Uint8Array
  readonly packets: number
  /** Next packet to send. */
  next: number
}

export interface ControlJob {
  readonly kind: 'control'
  readonly opcode: number
  readonly psn: number
  readonly syndrome: number
  readonly msn: number
  /** ATOMIC_ACKNOWLEDGE: the original value. */
  readonly orig: bigint
}

export type ResponseJob = ReadResponseJob | ControlJob

export class ResponseQueue {
  #jobs: ResponseJob[] = []
  #head = 0

  get empty(): boolean {
    return this.#head === this.#jobs.length
  }

  get length(): number {
    return this.#jobs.length - this.#head
  }

  push(job: ResponseJob): void {
    this.#jobs.push(job)
  }

  peek(): ResponseJob | undefined {
    return this.#jobs[this.#head]
  }

  shift(): void {
    this.#jobs[this.#head] = undefined as unknown as ResponseJob
    this.#head++
    if (this.#head === this.#jobs.length) {
      this.#jobs = []
      this.#head = 0
    } else if (this.#head >= 256 && this.#head * 2 >= this.#jobs.length) {
      this.#jobs = this.#jobs.slice(this.#head)
      this.#head = 0
    }
  }

  clear(): void {
    this.#jobs = []
    this.#head = 0
  }
}
