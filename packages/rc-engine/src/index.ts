/**
 * @rdma-session/rc-engine: the RC transport pieces every rdma-session provider that runs RC in
 * JavaScript shares (softroce over UDP, the mock over its in-memory fabric): PSN arithmetic,
 * IB timer encodings, QP defaults and limits, unpredictable keys and the memory-key index, the
 * token bucket of QoS rate limits, and one vocabulary of counters, NAK kinds and drop reasons.
 */
export { PSN_MASK, PSN_HALF, PSN_MODULUS, psnAdd, psnDiff, psnLess, psnLessOrEqual, isPsn } from './psn.js'
export { ackTimeoutMs, rnrDelayMs, RNR_TIMER_US } from './ib-timers.js'
export { QP_DEFAULTS, RNR_RETRY_INFINITE } from './qp-defaults.js'
export { ENGINE_LIMITS } from './limits.js'
export { ENDPOINT_DROP_REASONS, zeroCounts, type DropReason } from './drop-reasons.js'
export { NAK_KINDS, NAK_SYNDROMES, nakKind, zeroNaks, type NakKind } from './nak-kinds.js'
export { TransportCounters, labeledCounters, type LabeledCounter, type TransportCounterValues } from './transport-counters.js'
export { randomKey, randomQpn, random24 } from './unpredictable-ids.js'
export { MemoryKeys, type KeyedRegion } from './memory-keys.js'
export { TokenBucket } from './token-bucket.js'
