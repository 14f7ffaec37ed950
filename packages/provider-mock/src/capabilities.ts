/** What the mock provider supports (core skips features by this record). */
import type { ProviderCapabilities } from '@rdma-session/provider-interface'
import { ENGINE_LIMITS } from '@rdma-session/rc-engine'

export const MOCK_CAPABILITIES: ProviderCapabilities = Object.freeze({
  encryption: true,
  atomics: true,
  immediate: true,
  maxMtu: 4096,
  maxQps: 65536,
  ...ENGINE_LIMITS,
  qosScheduling: true,
})
