/**
 * The version of the provider interface this package describes, `major.minor`. A provider states
 * the one it implements (`Provider.specificationVersion`, normally this constant as it was when
 * the provider was built); core refuses a provider of another major version at load. A minor
 * version only adds optional members, so any minor of the same major works with any core.
 */
export const SPECIFICATION_VERSION = '1.0'

/** The major version of a `major.minor` specification version, or null when `version` is not one. */
export function specificationMajor(version: unknown): number | null {
  if (typeof version !== 'string') return null
  const m = /^(\d+)\.(\d+)$/.exec(version)
  return m === null ? null : Number(m[1])
}
