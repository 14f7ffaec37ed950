/** This package's name, version and the @rdma-session/core range it takes as a peer (its rdma_cm manager drives core's Context and QueuePair; filled in by tsup; undefined when run from source). */
import type { ProviderPackage } from '@rdma-session/provider-interface'

declare const __PACKAGE_NAME__: string | undefined
declare const __PACKAGE_VERSION__: string | undefined
declare const __CORE_RANGE__: string | null | undefined

export const PROVIDER_PACKAGE: ProviderPackage | undefined =
  typeof __PACKAGE_NAME__ === 'string' && typeof __PACKAGE_VERSION__ === 'string' && __CORE_RANGE__ !== undefined
    ? Object.freeze({ name: __PACKAGE_NAME__, version: __PACKAGE_VERSION__, coreRange: __CORE_RANGE__ })
    : undefined
