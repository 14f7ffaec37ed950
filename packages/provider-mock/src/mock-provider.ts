/** The `mock` provider: opens devices (hosts) on a MockFabric, by default one fabric shared by the whole process. */
import { InvalidArgumentError, SPECIFICATION_VERSION, type Provider, type ProviderCapabilities } from '@rdma-session/provider-interface'
import { MOCK_CAPABILITIES } from './capabilities.js'
import { MockFabric } from './fabric.js'
import { PROVIDER_PACKAGE } from './package-info.js'
import type { MockDevice } from './mock-device.js'

export interface MockProviderOptions {
  /** The fabric to join. Default: the process-wide defaultFabric(). */
  readonly fabric?: MockFabric
  /** This host's address (a name on the fabric; no real traffic). Default: a fresh 127.77.x.y per opened device. */
  readonly address?: string
  /** Default 4791. */
  readonly port?: number
  /** Default `mock<n>`. */
  readonly deviceName?: string
}

export interface MockProvider extends Provider {
  readonly name: 'mock'
  readonly capabilities: ProviderCapabilities
  readonly fabric: MockFabric
  openDevice(): Promise<MockDevice>
}

let shared: MockFabric | null = null

/** The fabric every mock() without a `fabric` option joins. */
export function defaultFabric(): MockFabric {
  return (shared ??= new MockFabric())
}

/** A mock provider. Each openDevice() adds a host to the fabric. */
export function mock(options: MockProviderOptions = {}): MockProvider {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('mock() takes an options object')
  if (options.fabric !== undefined && !(options.fabric instanceof MockFabric)) throw new InvalidArgumentError('fabric must be a MockFabric')
  const fabric = options.fabric ?? defaultFabric()
  const host = { address: options.address, port: options.port, deviceName: options.deviceName }
  return Object.freeze({
    name: 'mock' as const,
    specificationVersion: SPECIFICATION_VERSION,
    capabilities: MOCK_CAPABILITIES,
    fabric,
    openDevice: async (): Promise<MockDevice> => fabric.openDevice(host),
    ...(PROVIDER_PACKAGE === undefined ? {} : { package: PROVIDER_PACKAGE }),
  })
}

/** Entry point for loading by name (`RDMA_SESSION_PROVIDER=mock`). */
export function createProvider(options: Record<string, unknown> = {}): MockProvider {
  return mock(options as MockProviderOptions)
}
