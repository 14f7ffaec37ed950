/** The RoCEv2 wire layer: opcodes, packet codec, AETH syndromes, PSN math, ICRC, pcap output. */
export * from './errors.js'
export * from './opcodes.js'
export { PSN_MASK, PSN_HALF, psnAdd, psnDiff, psnLess, psnLessOrEqual, isPsn } from '@rdma-session/rc-engine'
export * from './aeth.js'
export {
  encodePacket,
  encodePacketInto,
  encodedLength,
  decodePacket,
  tryDecodePacket,
  peekDestQpn,
  type Bth,
  type Reth,
  type Aeth,
  type AtomicEth,
  type AtomicAckEth,
  type RocePacket,
} from './packet.js'
export * from './icrc.js'
export { addressBytes } from './address.js'
export * from './pcap.js'
