/** What one RC engine QP supports, the same in every provider that runs it (they add maxMtu, maxQps and their features). */
export const ENGINE_LIMITS = Object.freeze({
  maxQpWr: 16384,
  maxSge: 16,
  maxInline: 256,
  maxMrSize: 2 ** 31,
} as const)
