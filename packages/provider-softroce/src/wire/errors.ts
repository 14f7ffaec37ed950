/** WireError: the one error the RoCEv2 wire layer throws, with a stable `code` per failure. */

export const WireErrorCode = {
  /** Fewer bytes than the opcode's headers (plus ICRC) need. */
  TRUNCATED: 'ERR_WIRE_TRUNCATED',
  /** Not an RC opcode this layer knows. */
  OPCODE: 'ERR_WIRE_OPCODE',
  /** BTH transport header version is not 0. */
  VERSION: 'ERR_WIRE_VERSION',
  /** Pad count larger than the payload, or nonzero on an opcode without payload. */
  PAD: 'ERR_WIRE_PAD',
  /** Packet length not a multiple of 4, or payload bytes on an opcode that carries none. */
  LENGTH: 'ERR_WIRE_LENGTH',
  /** Encode: a header field is out of range (e.g. a PSN above 24 bits). */
  FIELD: 'ERR_WIRE_FIELD',
  /** Encode: the opcode needs an extension header the packet does not have. */
  HEADER: 'ERR_WIRE_HEADER',
  /** An IP address or port in an IpContext is not valid for its family. */
  ADDRESS: 'ERR_WIRE_ADDRESS',
  /** PcapWriter.write after close(). */
  CLOSED: 'ERR_WIRE_CLOSED',
} as const
export type WireErrorCode = (typeof WireErrorCode)[keyof typeof WireErrorCode]

export class WireError extends Error {
  readonly code: WireErrorCode

  constructor(code: WireErrorCode, message: string) {
    super(message)
    this.name = 'WireError'
    this.code = code
  }
}

/**
 * A WireError without a captured stack trace: decode runs on every received packet and a flood
 * of malformed packets must not cost a stack walk each. The stack would only show decodePacket.
 */
export function fastWireError(code: WireErrorCode, message: string): WireError {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return new WireError(code, message)
  } finally {
    Error.stackTraceLimit = limit
  }
}

/** True if `err` is a WireError (optionally with the given code). */
export function isWireError(err: unknown, code?: WireErrorCode): err is WireError {
  return err instanceof WireError && (code === undefined || err.code === code)
}
