/** NAK kinds by AETH syndrome, named as core's metrics expect (label `kind`). */

export type NakKind = 'PSN_SEQUENCE_ERROR' | 'RNR' | 'INVALID_REQUEST' | 'REMOTE_ACCESS_ERROR' | 'REMOTE_OPERATIONAL_ERROR' | 'OTHER'

export const NAK_KINDS: readonly NakKind[] = ['PSN_SEQUENCE_ERROR', 'RNR', 'INVALID_REQUEST', 'REMOTE_ACCESS_ERROR', 'REMOTE_OPERATIONAL_ERROR', 'OTHER']

/** AETH syndrome bytes of the NAKs an RC responder sends (IBTA 9.7.5.2.2); RNR carries its timer in the low 5 bits. */
export const NAK_SYNDROMES = Object.freeze({
  RNR: 0x20,
  PSN_SEQUENCE_ERROR: 0x60,
  INVALID_REQUEST: 0x61,
  REMOTE_ACCESS_ERROR: 0x62,
  REMOTE_OPERATIONAL_ERROR: 0x63,
} as const)

const NAK_CODES: readonly NakKind[] = ['PSN_SEQUENCE_ERROR', 'INVALID_REQUEST', 'REMOTE_ACCESS_ERROR', 'REMOTE_OPERATIONAL_ERROR']

/** The NAK kind of an AETH syndrome (RNR NAK or NAK), or null for an ACK. */
export function nakKind(syndrome: number): NakKind | null {
  const kind = syndrome & 0x60
  if (kind === 0x00) return null
  if (kind === 0x20) return 'RNR'
  return NAK_CODES[syndrome & 0x1f] ?? 'OTHER'
}

/** A count per NAK kind, all zero. */
export function zeroNaks(): Record<NakKind, number> {
  return { PSN_SEQUENCE_ERROR: 0, RNR: 0, INVALID_REQUEST: 0, REMOTE_ACCESS_ERROR: 0, REMOTE_OPERATIONAL_ERROR: 0, OTHER: 0 }
}
