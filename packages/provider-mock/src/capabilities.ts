/** What the mock provider supports (core skips features by this record). */
import type { ProviderCapabilities } from '@rdma-session/provider-interface'

export const MOCK_CAPABILITIES: ProviderCapabilities = Object.freeze({
  encryption: true,
  atomics: true,
  immediate: true,
  maxMtu: 4096,
  maxQps: 65536,
  maxQpWr: 16384,
  maxSge: 16,
  maxInline: 256,
  maxMrSize: 2 ** 31,
  qosScheduling: true,
})
