/**
 * Fault injection for the mock fabric: rules that drop, delay, duplicate or
 * reorder packets, chosen by source, destination, QPN, opcode or any predicate,
 * each firing with a probability, at most `count` times, after `skip` matches.
 */
import { InvalidArgumentError, seededRandom } from '@rdma-session/provider-interface'
import type { FaultKind, RecordedPacket } from './fabric-stats.js'
import { hostMatches } from './host-key.js'
import { isRequest, type Packet, type PacketOpcode } from './packet.js'

/** Which packets a fault rule applies to; every given field must match. */
export interface PacketFilter {
  /** Source host: an address (any port) or `address:port`. */
  readonly src?: string
  /** Destination host: an address (any port) or `address:port`. */
  readonly dst?: string
  readonly srcQpn?: number
  readonly dstQpn?: number
  readonly opcode?: PacketOpcode | readonly PacketOpcode[]
  readonly kind?: 'request' | 'response'
  /** Any other condition, e.g. `(p) => p.psn === 42`. */
  readonly where?: (packet: RecordedPacket) => boolean
}

export interface FaultOptions extends PacketFilter {
  /** Chance that a matching packet is hit, 0–1 (default 1). */
  readonly probability?: number
  /** How many packets the rule may hit before it retires (default: no limit). `count: 1` is a one-shot rule. */
  readonly count?: number
  /** Matching packets to let through before the rule starts to apply (default 0). */
  readonly skip?: number
}

/** One installed fault rule. */
export class FaultRule {
  /** Packets this rule has hit so far. */
  hits = 0
  #skipped = 0
  #active = true
  readonly #owner: FaultInjector

  constructor(
    readonly kind: FaultKind,
    readonly options: FaultOptions,
    /** For delay rules: how long the packet is held, in ms. */
    readonly delayMs: number,
    owner: FaultInjector,
  ) {
    this.#owner = owner
  }

  /** False once the rule has used up its `count` or was removed. */
  get active(): boolean {
    return this.#active && this.hits < (this.options.count ?? Infinity)
  }

  remove(): void {
    this.#active = false
    this.#owner.forget(this)
  }

  /** @internal Decides whether this rule hits `packet`. */
  fires(packet: Packet, view: () => RecordedPacket, random: () => number): boolean {
    if (!this.active || !matches(this.options, packet, view)) return false
    if (this.#skipped < (this.options.skip ?? 0)) {
      this.#skipped++
      return false
    }
    const p = this.options.probability ?? 1
    if (p < 1 && random() >= p) return false
    this.hits++
    return true
  }
}

function matches(f: PacketFilter, p: Packet, view: () => RecordedPacket): boolean {
  if (f.src !== undefined && !hostMatches(f.src, p.src)) return false
  if (f.dst !== undefined && !hostMatches(f.dst, p.dst)) return false
  if (f.srcQpn !== undefined && f.srcQpn !== p.srcQpn) return false
  if (f.dstQpn !== undefined && f.dstQpn !== p.dstQpn) return false
  if (f.kind !== undefined && (f.kind === 'request') !== isRequest(p.opcode)) return false
  if (f.opcode !== undefined) {
    if (typeof f.opcode === 'string' ? f.opcode !== p.opcode : !f.opcode.includes(p.opcode)) return false
  }
  return f.where === undefined || f.where(view())
}

/** What the fabric does with one packet. */
export interface FaultDecision {
  drop: boolean
  duplicate: boolean
  reorder: boolean
  delayMs: number
  kinds: FaultKind[]
}

function checkOptions(o: FaultOptions): void {
  const p = o.probability
  if (p !== undefined && !(typeof p === 'number' && p >= 0 && p <= 1)) throw new InvalidArgumentError(`fault probability must be from 0 to 1, got ${String(p)}`)
  for (const k of ['count', 'skip'] as const) {
    const v = o[k]
    if (v !== undefined && !(v === Infinity || (Number.isInteger(v) && v >= 0))) throw new InvalidArgumentError(`fault ${k} must be a non-negative integer, got ${String(v)}`)
  }
}

export class FaultInjector {
  #rules: FaultRule[] = []
  #random: () => number

  constructor(seed: number) {
    this.#random = seededRandom(seed)
  }

  /** Drops matching packets (they never arrive; RC recovers by retransmission). */
  drop(options: FaultOptions = {}): FaultRule {
    return this.#add('drop', options, 0)
  }

  /** Holds matching packets back for `ms` milliseconds. */
  delay(ms: number, options: FaultOptions = {}): FaultRule {
    if (!(typeof ms === 'number' && ms >= 0 && Number.isFinite(ms))) throw new InvalidArgumentError(`fault delay must be a non-negative number of ms, got ${String(ms)}`)
    return this.#add('delay', options, ms)
  }

  /** Delivers matching packets twice. */
  duplicate(options: FaultOptions = {}): FaultRule {
    return this.#add('duplicate', options, 0)
  }

  /** Delivers matching packets after the next packet the fabric carries (or after 2 ms if none follows). */
  reorder(options: FaultOptions = {}): FaultRule {
    return this.#add('reorder', options, 0)
  }

  /** Removes every rule. */
  clear(): void {
    this.#rules = []
  }

  /** The installed rules that can still fire. */
  get rules(): readonly FaultRule[] {
    return this.#rules.filter((r) => r.active)
  }

  /** Reseeds the random source of probabilistic rules. */
  seed(seed: number): void {
    this.#random = seededRandom(seed)
  }

  /** @internal True when some rule is installed (the fabric skips fault checks otherwise). */
  get hasRules(): boolean {
    return this.#rules.length > 0
  }

  /** @internal */
  forget(rule: FaultRule): void {
    this.#rules = this.#rules.filter((r) => r !== rule)
  }

  /** @internal What happens to `packet`; null when no rule hits it. */
  decide(packet: Packet, view: () => RecordedPacket): FaultDecision | null {
    if (this.#rules.length === 0) return null
    let d: FaultDecision | null = null
    for (const rule of this.#rules) {
      if (!rule.fires(packet, view, this.#random)) continue
      d ??= { drop: false, duplicate: false, reorder: false, delayMs: 0, kinds: [] }
      d.kinds.push(rule.kind)
      if (rule.kind === 'drop') d.drop = true
      else if (rule.kind === 'duplicate') d.duplicate = true
      else if (rule.kind === 'reorder') d.reorder = true
      else d.delayMs = Math.max(d.delayMs, rule.delayMs)
    }
    if (this.#rules.some((r) => !r.active)) this.#rules = this.#rules.filter((r) => r.active)
    return d
  }

  #add(kind: FaultKind, options: FaultOptions, delayMs: number): FaultRule {
    checkOptions(options)
    const rule = new FaultRule(kind, { ...options }, delayMs, this)
    this.#rules.push(rule)
    return rule
  }
}
