/** A reusable outgoing packet record: engines fill in the fields per packet, the device encodes it at once. */
import type { RocePacket } from '../wire/packet.js'

const EMPTY = new Uint8Array(0)
/** P_Key of the default partition (full membership), as RoCE uses. */
export const DEFAULT_PKEY = 0xffff

export function newPacket(): RocePacket {
  return {
    bth: { opcode: 0, solicited: false, migReq: false, padCount: 0, tver: 0, pkey: DEFAULT_PKEY, fecn: false, becn: false, destQpn: 0, ackReq: false, psn: 0 },
    payload: EMPTY,
  }
}
