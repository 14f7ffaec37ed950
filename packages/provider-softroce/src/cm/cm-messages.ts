/**
 * The connection management messages (IBTA vol. 1, 12.6) REQ, MRA, REJ, REP, RTU, DREQ and DREP
 * as 256-byte MADs: encode from a plain record, decode with every length, version and attribute
 * checked (a malformed MAD is a CmCodecError with a stable reason, never an exception elsewhere).
 * Byte offsets below are within the 232 bytes after the MAD header.
 */
import {
  CM_CLASS_VERSION, CM_MGMT_CLASS, MAD_BASE_VERSION, MAD_BYTES, MAD_HEADER_BYTES, MAD_METHOD_SEND, cmHeader, readMadHeader, writeMadHeader,
} from './mad-header.js'

/** CM attribute IDs. */
export const CmAttr = {
  ClassPortInfo: 0x0001, REQ: 0x0010, MRA: 0x0011, REJ: 0x0012, REP: 0x0013, RTU: 0x0014, DREQ: 0x0015, DREP: 0x0016,
  SIDR_REQ: 0x0017, SIDR_REP: 0x0018, LAP: 0x0019, APR: 0x001a,
} as const

/** Private data room per message. */
export const PRIVATE_DATA = { REQ: 92, MRA: 222, REJ: 148, REP: 196, RTU: 224, DREQ: 220, DREP: 224 } as const

/** REJ reasons (IBTA vol. 1, table 112; Linux ib_cm_rej_reason). */
export const RejReason = {
  NO_QP: 1, NO_EEC: 2, NO_RESOURCES: 3, TIMEOUT: 4, UNSUPPORTED: 5, INVALID_COMM_ID: 6, INVALID_COMM_INSTANCE: 7,
  INVALID_SERVICE_ID: 8, INVALID_TRANSPORT_TYPE: 9, STALE_CONN: 10, RDC_NOT_EXIST: 11, INVALID_GID: 12, INVALID_LID: 13,
  INVALID_SL: 14, INVALID_TRAFFIC_CLASS: 15, INVALID_HOP_LIMIT: 16, INVALID_PACKET_RATE: 17, PORT_CM_REDIRECT: 24,
  PORT_REDIRECT: 25, INVALID_MTU: 26, INSUFFICIENT_RESP_RESOURCES: 27, CONSUMER_DEFINED: 28, INVALID_RNR_RETRY: 29,
  DUPLICATE_LOCAL_COMM_ID: 30, INVALID_CLASS_VERSION: 31, INVALID_FLOW_LABEL: 32,
} as const

/** Which message a REJ or MRA answers. */
export const MsgRef = { REQ: 0, REP: 1, OTHER: 2 } as const

/** Path MTU enum of the REQ (IBTA: 1 = 256 … 5 = 4096). */
export function mtuToEnum(mtu: number): number {
  return Math.max(1, Math.min(5, Math.log2(mtu) - 7))
}
export function enumToMtu(e: number): number | null {
  return e >= 1 && e <= 5 ? 1 << (e + 7) : null
}

export interface CmPath {
  readonly localLid: number
  readonly remoteLid: number
  /** 16 bytes each. */
  readonly localGid: Uint8Array
  readonly remoteGid: Uint8Array
  readonly flowLabel: number
  readonly packetRate: number
  readonly trafficClass: number
  readonly hopLimit: number
  readonly sl: number
  readonly subnetLocal: boolean
  readonly localAckTimeout: number
}

export interface CmReq {
  readonly type: 'REQ'
  readonly localCommId: number
  readonly serviceId: bigint
  readonly localCaGuid: bigint
  readonly localQkey: number
  readonly localQpn: number
  readonly responderResources: number
  readonly initiatorDepth: number
  readonly remoteCmResponseTimeout: number
  /** 0 RC, 1 UC, 3 XRC (with extended transport). */
  readonly transportType: number
  readonly endToEndFlowControl: boolean
  readonly startingPsn: number
  readonly localCmResponseTimeout: number
  readonly retryCount: number
  readonly pkey: number
  /** Path MTU enum 1..5. */
  readonly pathMtu: number
  readonly rnrRetryCount: number
  readonly maxCmRetries: number
  readonly srq: boolean
  readonly primary: CmPath
  readonly privateData: Uint8Array
}
export interface CmMra {
  readonly type: 'MRA'
  readonly localCommId: number
  readonly remoteCommId: number
  readonly messageMraed: number
  readonly serviceTimeout: number
  readonly privateData: Uint8Array
}
export interface CmRej {
  readonly type: 'REJ'
  readonly localCommId: number
  readonly remoteCommId: number
  readonly messageRejected: number
  readonly reason: number
  /** Additional rejection information, up to 72 bytes. */
  readonly ari: Uint8Array
  readonly privateData: Uint8Array
}
export interface CmRep {
  readonly type: 'REP'
  readonly localCommId: number
  readonly remoteCommId: number
  readonly localQkey: number
  readonly localQpn: number
  readonly startingPsn: number
  readonly responderResources: number
  readonly initiatorDepth: number
  readonly targetAckDelay: number
  readonly failoverAccepted: number
  readonly endToEndFlowControl: boolean
  readonly rnrRetryCount: number
  readonly srq: boolean
  readonly localCaGuid: bigint
  readonly privateData: Uint8Array
}
export interface CmRtu {
  readonly type: 'RTU'
  readonly localCommId: number
  readonly remoteCommId: number
  readonly privateData: Uint8Array
}
export interface CmDreq {
  readonly type: 'DREQ'
  readonly localCommId: number
  readonly remoteCommId: number
  readonly remoteQpn: number
  readonly privateData: Uint8Array
}
export interface CmDrep {
  readonly type: 'DREP'
  readonly localCommId: number
  readonly remoteCommId: number
  readonly privateData: Uint8Array
}
export type CmMessage = CmReq | CmMra | CmRej | CmRep | CmRtu | CmDreq | CmDrep
export type CmMessageType = CmMessage['type']

/** Why a received MAD is not a CM message this stack handles (drop reasons). */
export type CmCodecReason = 'truncated' | 'badBaseVersion' | 'notCmClass' | 'badClassVersion' | 'badMethod' | 'badAttribute' | 'badField'

export class CmCodecError {
  constructor(readonly reason: CmCodecReason, readonly message: string) {}
}

const PD_OFFSET = { REQ: 140, MRA: 10, REJ: 84, REP: 36, RTU: 8, DREQ: 12, DREP: 8 } as const

function fitPrivateData(type: CmMessageType, pd: Uint8Array): void {
  if (pd.length > PRIVATE_DATA[type]) throw new RangeError(`${type} private data is at most ${PRIVATE_DATA[type]} bytes, got ${pd.length}`)
}

function put24(v: DataView, o: number, x: number, low8: number): void {
  v.setUint32(o, (((x & 0xffffff) << 8) | (low8 & 0xff)) >>> 0)
}

function writePath(v: DataView, o: number, p: CmPath, bytes: Uint8Array): void {
  v.setUint16(o, p.localLid)
  v.setUint16(o + 2, p.remoteLid)
  bytes.set(p.localGid, o + 4)
  bytes.set(p.remoteGid, o + 20)
  v.setUint32(o + 36, (((p.flowLabel & 0xfffff) << 12) | (p.packetRate & 0x3f)) >>> 0)
  v.setUint8(o + 40, p.trafficClass)
  v.setUint8(o + 41, p.hopLimit)
  v.setUint8(o + 42, ((p.sl & 0xf) << 4) | (p.subnetLocal ? 0x08 : 0))
  v.setUint8(o + 43, (p.localAckTimeout & 0x1f) << 3)
}

function readPath(v: DataView, o: number, bytes: Uint8Array): CmPath {
  const w = v.getUint32(o + 36)
  return {
    localLid: v.getUint16(o),
    remoteLid: v.getUint16(o + 2),
    localGid: bytes.slice(o + 4, o + 20),
    remoteGid: bytes.slice(o + 20, o + 36),
    flowLabel: w >>> 12,
    packetRate: w & 0x3f,
    trafficClass: v.getUint8(o + 40),
    hopLimit: v.getUint8(o + 41),
    sl: v.getUint8(o + 42) >>> 4,
    subnetLocal: (v.getUint8(o + 42) & 0x08) !== 0,
    localAckTimeout: v.getUint8(o + 43) >>> 3,
  }
}

const ATTR_OF: Record<CmMessageType, number> = { REQ: CmAttr.REQ, MRA: CmAttr.MRA, REJ: CmAttr.REJ, REP: CmAttr.REP, RTU: CmAttr.RTU, DREQ: CmAttr.DREQ, DREP: CmAttr.DREP }

/** The 256-byte MAD for `msg` with transaction ID `tid`. Throws RangeError for oversized private data. */
export function encodeCmMad(msg: CmMessage, tid: bigint): Buffer {
  fitPrivateData(msg.type, msg.privateData)
  const out = Buffer.alloc(MAD_BYTES)
  writeMadHeader(out, cmHeader(ATTR_OF[msg.type], tid))
  const d = out.subarray(MAD_HEADER_BYTES)
  const v = new DataView(d.buffer, d.byteOffset, d.length)
  v.setUint32(0, msg.localCommId)
  switch (msg.type) {
    case 'REQ':
      v.setBigUint64(8, msg.serviceId)
      v.setBigUint64(16, msg.localCaGuid)
      v.setUint32(28, msg.localQkey)
      put24(v, 32, msg.localQpn, msg.responderResources)
      put24(v, 36, 0, msg.initiatorDepth)
      put24(v, 40, 0, ((msg.remoteCmResponseTimeout & 0x1f) << 3) | ((msg.transportType & 3) << 1) | (msg.endToEndFlowControl ? 1 : 0))
      put24(v, 44, msg.startingPsn, ((msg.localCmResponseTimeout & 0x1f) << 3) | (msg.retryCount & 7))
      v.setUint16(48, msg.pkey)
      v.setUint8(50, ((msg.pathMtu & 0xf) << 4) | (msg.rnrRetryCount & 7))
      v.setUint8(51, ((msg.maxCmRetries & 0xf) << 4) | (msg.srq ? 0x08 : 0))
      writePath(v, 52, msg.primary, d)
      break
    case 'MRA':
      v.setUint32(4, msg.remoteCommId)
      v.setUint8(8, (msg.messageMraed & 3) << 6)
      v.setUint8(9, (msg.serviceTimeout & 0x1f) << 3)
      break
    case 'REJ':
      if (msg.ari.length > 72) throw new RangeError(`REJ ARI is at most 72 bytes, got ${msg.ari.length}`)
      v.setUint32(4, msg.remoteCommId)
      v.setUint8(8, (msg.messageRejected & 3) << 6)
      v.setUint8(9, (msg.ari.length & 0x7f) << 1)
      v.setUint16(10, msg.reason)
      d.set(msg.ari, 12)
      break
    case 'REP':
      v.setUint32(4, msg.remoteCommId)
      v.setUint32(8, msg.localQkey)
      put24(v, 12, msg.localQpn, 0)
      put24(v, 20, msg.startingPsn, 0)
      v.setUint8(24, msg.responderResources)
      v.setUint8(25, msg.initiatorDepth)
      v.setUint8(26, ((msg.targetAckDelay & 0x1f) << 3) | ((msg.failoverAccepted & 3) << 1) | (msg.endToEndFlowControl ? 1 : 0))
      v.setUint8(27, ((msg.rnrRetryCount & 7) << 5) | (msg.srq ? 0x10 : 0))
      v.setBigUint64(28, msg.localCaGuid)
      break
    case 'RTU':
    case 'DREP':
      v.setUint32(4, msg.remoteCommId)
      break
    case 'DREQ':
      v.setUint32(4, msg.remoteCommId)
      put24(v, 8, msg.remoteQpn, 0)
      break
  }
  d.set(msg.privateData, PD_OFFSET[msg.type])
  return out
}

const TYPE_OF = new Map<number, CmMessageType>(Object.entries(ATTR_OF).map(([t, a]) => [a, t as CmMessageType]))

export interface DecodedCmMad {
  readonly tid: bigint
  readonly msg: CmMessage
}

/** Decodes a received MAD (the UD payload). Never throws. */
export function decodeCmMad(mad: Uint8Array): DecodedCmMad | CmCodecError {
  if (mad.length < MAD_BYTES) return new CmCodecError('truncated', `a CM MAD has ${MAD_BYTES} bytes, got ${mad.length}`)
  const h = readMadHeader(mad)
  if (h.baseVersion !== MAD_BASE_VERSION) return new CmCodecError('badBaseVersion', `MAD base version ${h.baseVersion}, expected 1`)
  if (h.mgmtClass !== CM_MGMT_CLASS) return new CmCodecError('notCmClass', `management class 0x${h.mgmtClass.toString(16)} is not the CM's (0x07)`)
  if (h.classVersion !== CM_CLASS_VERSION) return new CmCodecError('badClassVersion', `CM class version ${h.classVersion}, expected 2`)
  if (h.method !== MAD_METHOD_SEND || h.response) return new CmCodecError('badMethod', `MAD method 0x${h.method.toString(16)}${h.response ? ' (response)' : ''}: the CM sends only Send (0x03)`)
  const type = TYPE_OF.get(h.attrId)
  if (type === undefined) return new CmCodecError('badAttribute', `CM attribute 0x${h.attrId.toString(16).padStart(4, '0')} is not handled`)
  const d = mad.subarray(MAD_HEADER_BYTES, MAD_BYTES)
  const v = new DataView(d.buffer, d.byteOffset, d.length)
  const localCommId = v.getUint32(0)
  const privateData = d.slice(PD_OFFSET[type], PD_OFFSET[type] + PRIVATE_DATA[type])
  let msg: CmMessage
  switch (type) {
    case 'REQ': {
      const w40 = v.getUint8(43)
      const w44 = v.getUint32(44)
      msg = {
        type, localCommId, privateData,
        serviceId: v.getBigUint64(8),
        localCaGuid: v.getBigUint64(16),
        localQkey: v.getUint32(28),
        localQpn: v.getUint32(32) >>> 8,
        responderResources: v.getUint8(35),
        initiatorDepth: v.getUint8(39),
        remoteCmResponseTimeout: w40 >>> 3,
        transportType: (w40 >>> 1) & 3,
        endToEndFlowControl: (w40 & 1) !== 0,
        startingPsn: w44 >>> 8,
        localCmResponseTimeout: (w44 >>> 3) & 0x1f,
        retryCount: w44 & 7,
        pkey: v.getUint16(48),
        pathMtu: v.getUint8(50) >>> 4,
        rnrRetryCount: v.getUint8(50) & 7,
        maxCmRetries: v.getUint8(51) >>> 4,
        srq: (v.getUint8(51) & 0x08) !== 0,
        primary: readPath(v, 52, d),
      }
      if (localCommId === 0) return new CmCodecError('badField', 'REQ with local communication ID 0')
      break
    }
    case 'MRA':
      msg = { type, localCommId, remoteCommId: v.getUint32(4), messageMraed: v.getUint8(8) >>> 6, serviceTimeout: v.getUint8(9) >>> 3, privateData }
      break
    case 'REJ': {
      const ariLength = v.getUint8(9) >>> 1
      if (ariLength > 72) return new CmCodecError('badField', `REJ ARI length ${ariLength} exceeds 72 bytes`)
      msg = { type, localCommId, remoteCommId: v.getUint32(4), messageRejected: v.getUint8(8) >>> 6, reason: v.getUint16(10), ari: d.slice(12, 12 + ariLength), privateData }
      break
    }
    case 'REP':
      msg = {
        type, localCommId, privateData,
        remoteCommId: v.getUint32(4),
        localQkey: v.getUint32(8),
        localQpn: v.getUint32(12) >>> 8,
        startingPsn: v.getUint32(20) >>> 8,
        responderResources: v.getUint8(24),
        initiatorDepth: v.getUint8(25),
        targetAckDelay: v.getUint8(26) >>> 3,
        failoverAccepted: (v.getUint8(26) >>> 1) & 3,
        endToEndFlowControl: (v.getUint8(26) & 1) !== 0,
        rnrRetryCount: v.getUint8(27) >>> 5,
        srq: (v.getUint8(27) & 0x10) !== 0,
        localCaGuid: v.getBigUint64(28),
      }
      break
    case 'RTU':
    case 'DREP':
      msg = { type, localCommId, remoteCommId: v.getUint32(4), privateData }
      break
    case 'DREQ':
      msg = { type, localCommId, remoteCommId: v.getUint32(4), remoteQpn: v.getUint32(8) >>> 8, privateData }
      break
  }
  return { tid: h.tid, msg }
}
