/**
 * The common MAD header (IBTA vol. 1, 13.4.2): 24 bytes in front of every 256-byte management
 * datagram. The CM uses management class 0x07, class version 2 and method Send (0x03) only.
 */
export const MAD_BYTES = 256
export const MAD_HEADER_BYTES = 24
export const MAD_DATA_BYTES = MAD_BYTES - MAD_HEADER_BYTES
export const MAD_BASE_VERSION = 1
export const CM_MGMT_CLASS = 0x07
export const CM_CLASS_VERSION = 2
export const MAD_METHOD_SEND = 0x03

export interface MadHeader {
  readonly baseVersion: number
  readonly mgmtClass: number
  readonly classVersion: number
  /** Method (7 bits) without the response bit. */
  readonly method: number
  readonly response: boolean
  readonly status: number
  readonly classSpecific: number
  readonly tid: bigint
  readonly attrId: number
  readonly attrMod: number
}

export function writeMadHeader(out: Uint8Array, h: MadHeader): void {
  const v = new DataView(out.buffer, out.byteOffset, MAD_HEADER_BYTES)
  v.setUint8(0, h.baseVersion)
  v.setUint8(1, h.mgmtClass)
  v.setUint8(2, h.classVersion)
  v.setUint8(3, (h.response ? 0x80 : 0) | (h.method & 0x7f))
  v.setUint16(4, h.status)
  v.setUint16(6, h.classSpecific)
  v.setBigUint64(8, h.tid)
  v.setUint16(16, h.attrId)
  v.setUint16(18, 0)
  v.setUint32(20, h.attrMod)
}

/** The header of a MAD of at least 24 bytes. */
export function readMadHeader(u: Uint8Array): MadHeader {
  const v = new DataView(u.buffer, u.byteOffset, MAD_HEADER_BYTES)
  const m = v.getUint8(3)
  return {
    baseVersion: v.getUint8(0),
    mgmtClass: v.getUint8(1),
    classVersion: v.getUint8(2),
    method: m & 0x7f,
    response: (m & 0x80) !== 0,
    status: v.getUint16(4),
    classSpecific: v.getUint16(6),
    tid: v.getBigUint64(8),
    attrId: v.getUint16(16),
    attrMod: v.getUint32(20),
  }
}

/** A CM MAD header (Send, class 0x07 version 2) for `attrId` and transaction `tid`. */
export function cmHeader(attrId: number, tid: bigint): MadHeader {
  return {
    baseVersion: MAD_BASE_VERSION, mgmtClass: CM_MGMT_CLASS, classVersion: CM_CLASS_VERSION, method: MAD_METHOD_SEND,
    response: false, status: 0, classSpecific: 0, tid, attrId, attrMod: 0,
  }
}
