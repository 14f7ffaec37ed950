/**
 * The check createContext and loadProvider run on a provider before using it: the provider
 * interface version it implements (its major must be this core's), then its shape, field by field.
 */
import { PATH_MTUS, SPECIFICATION_VERSION, specificationMajor, type Provider } from '@rdma-session/provider-interface'
import { ProviderInvalidError, ProviderSpecMismatchError } from './errors.js'

const FLAGS = ['encryption', 'atomics', 'immediate', 'qosScheduling'] as const
const LIMITS = ['maxQps', 'maxQpWr', 'maxSge', 'maxInline', 'maxMrSize'] as const

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null

/** What is wrong with `caps` as a ProviderCapabilities record (empty: nothing). */
function capabilityProblems(caps: unknown): string[] {
  if (!isObject(caps)) return ['capabilities is not an object']
  const problems: string[] = []
  for (const k of FLAGS) if (typeof caps[k] !== 'boolean') problems.push(`capabilities.${k} is not a boolean`)
  for (const k of LIMITS) {
    const v = caps[k]
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) problems.push(`capabilities.${k} is not a non-negative integer`)
  }
  if (!(PATH_MTUS as readonly unknown[]).includes(caps['maxMtu'])) problems.push(`capabilities.maxMtu is not one of ${PATH_MTUS.join(', ')}`)
  return problems
}

/** What is wrong with the optional `package` record (name, version, coreRange). */
function packageProblems(pkg: unknown): string[] {
  if (pkg === undefined) return []
  if (!isObject(pkg)) return ['package is not an object']
  const problems: string[] = []
  if (typeof pkg['name'] !== 'string') problems.push('package.name is not a string')
  if (typeof pkg['version'] !== 'string') problems.push('package.version is not a string')
  if (pkg['coreRange'] !== null && typeof pkg['coreRange'] !== 'string') problems.push('package.coreRange is neither a string nor null')
  return problems
}

/** Throws ERR_PROVIDER_SPEC_MISMATCH unless `p` implements this core's major version of the provider interface. */
function checkSpecification(p: Record<string, unknown>, name: string): void {
  const declared = p['specificationVersion']
  const major = specificationMajor(declared)
  if (major === null || major !== specificationMajor(SPECIFICATION_VERSION)) {
    throw new ProviderSpecMismatchError(name, typeof declared === 'string' ? declared : null, SPECIFICATION_VERSION)
  }
}

/**
 * Throws unless `value` is a provider this core can drive: ERR_PROVIDER_SPEC_MISMATCH when it
 * implements another major version of the provider interface (or states none),
 * ERR_PROVIDER_INVALID naming every field that does not have its type.
 */
export function assertProvider(value: unknown): asserts value is Provider {
  if (!isObject(value)) throw new ProviderInvalidError(`not a provider: expected the object a provider package's createProvider() returns, got ${value === null ? 'null' : typeof value}`)
  const name = typeof value['name'] === 'string' && value['name'] !== '' ? value['name'] : null
  // Something with neither is no provider at all: its shape is what to report.
  const looksLikeProvider = value['specificationVersion'] !== undefined || typeof value['openDevice'] === 'function'
  if (looksLikeProvider) checkSpecification(value, name ?? '(unnamed)')
  const problems = [
    ...(looksLikeProvider ? [] : ['specificationVersion is missing']),
    ...(name === null ? ['name is not a non-empty string'] : []),
    ...(typeof value['openDevice'] !== 'function' ? ['openDevice is not a function'] : []),
    ...capabilityProblems(value['capabilities']),
    ...packageProblems(value['package']),
  ]
  if (problems.length > 0) throw new ProviderInvalidError(`not a provider${name === null ? '' : ` ('${name}')`}: ${problems.join('; ')}`, { provider: name, problems })
}
