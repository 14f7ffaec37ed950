/**
 * Why a packet was dropped: one camelCase vocabulary for every provider (the names core's
 * metrics export as `drops{reason}` and the provider READMEs list). A provider counts the
 * reasons that can happen on its wire; the same event has the same name everywhere.
 */
export type DropReason =
  // Decided by the receiving RC endpoint (both the mock and softroce).
  /** No QP with that number (never created, or destroyed). */
  | 'unknownQpn'
  /** The QP is in a state where it ignores packets (RESET, INIT, ERR; softroce: not RTR/RTS/SQD/SQE). */
  | 'wrongState'
  /** From an address, port or QPN other than the QP's connected peer's (off-path injection). */
  | 'wrongSource'
  /** Authentication failed: wrong key, or a tampered header or payload. */
  | 'decryptFailure'
  /** An ACK, NAK, READ response or atomic ACK for a PSN the requester has not transmitted (forged or corrupt). */
  | 'ghostAck'
  /** A duplicate READ or atomic request that matches none of the responder's saved requests. */
  | 'unmatchedDuplicate'
  // Byte wire (softroce).
  /** The ICRC does not match. */
  | 'badIcrc'
  /** Too short, an unknown opcode or headers that do not add up. */
  | 'malformed'
  /** Ahead of the expected PSN, or a stale or unmatched response. */
  | 'badPsn'
  /** An encrypted packet whose counter the anti-replay window has seen (or a foreign IV salt). */
  | 'replay'
  /** A request outside the registered memory or without the access it needs. */
  | 'accessViolation'
  /** A SACK NAK (selective repeat) whose bitmap names a PSN the requester has not transmitted. */
  | 'badSack'
  // In-memory fabric (mock).
  /** A fault rule dropped it. */
  | 'fault'
  /** The source or destination host was killed. */
  | 'hostDown'
  /** No host has the destination address and port. */
  | 'unknownHost'
  /** Encrypted under an epoch the receiver has no key for (not yet installed, or past the rekey grace period). */
  | 'unknownEpoch'
  /** Plaintext to an encrypted QP, or ciphertext to a plaintext QP. */
  | 'encryptionMismatch'

/** The reasons a receiving RC endpoint decides on, whatever the wire. */
export const ENDPOINT_DROP_REASONS = ['unknownQpn', 'wrongState', 'wrongSource', 'decryptFailure', 'ghostAck', 'unmatchedDuplicate'] as const satisfies readonly DropReason[]

/** A count per reason, all zero. */
export function zeroCounts<K extends string>(keys: readonly K[]): Record<K, number> {
  const o = {} as Record<K, number>
  for (const k of keys) o[k] = 0
  return o
}
