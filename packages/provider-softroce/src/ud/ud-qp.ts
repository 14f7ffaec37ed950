/**
 * A UD queue pair on a softroce device, as much of one as QP1 (the general services QP that
 * carries CM MADs) needs: post a SEND to an address handle (the peer's address and RoCE port,
 * remote QPN and Q_Key), and receive datagrams whose Q_Key matches, each handed over as a verbs
 * UD receive buffer would hold it: the 40-byte GRH area, then the payload. Received datagrams
 * that are not UD SENDs, are truncated, carry another partition or the wrong Q_Key are dropped
 * and counted by reason.
 */
import type { RemoteEndpoint } from '@rdma-session/provider-interface'
import { writeIcrc, type IpContext } from '../wire/icrc.js'
import { isWireError } from '../wire/errors.js'
import { DEFAULT_PKEY, decodeUdPacket, encodeUdPacket } from './ud-packet.js'
import { GRH_BYTES, grhArea } from './grh.js'

/** The Q_Key every general services QP (QP1) uses (IBTA vol. 1, 13.5.1). */
export const GSI_QKEY = 0x80010000
export const GSI_QPN = 1

/** What a UD QP needs from its device (SoftRoceDevice implements it). */
export interface UdDevice {
  readonly family: 4 | 6
  readonly info: { readonly address: string; readonly port: number }
  attachUd(qpn: number, receiver: { receiveUd(datagram: Buffer, ip: IpContext): void }): void
  detachUd(qpn: number, receiver: { receiveUd(datagram: Buffer, ip: IpContext): void }): void
  sendDatagram(datagram: Buffer, ip: IpContext): void
  ipContextTo(remote: RemoteEndpoint): IpContext
}

/** An address handle: where a UD SEND goes. */
export interface AddressHandle {
  readonly address: string
  /** The peer's RoCE UDP port (4791 for kernel rxe and NICs). */
  readonly port: number
}

export interface UdSend {
  readonly ah: AddressHandle
  readonly remoteQpn: number
  readonly remoteQkey: number
  readonly payload: Uint8Array
  readonly immDt?: number
}

/** One received datagram: the buffer a verbs UD receive gets (GRH area + payload) and its work completion fields. */
export interface UdCompletion {
  /** GRH area (40 bytes) followed by the payload. */
  readonly buffer: Uint8Array
  readonly grh: Uint8Array
  readonly payload: Uint8Array
  readonly srcQpn: number
  readonly immDt?: number
  /** The sender's address and UDP source port (as the socket saw them). */
  readonly address: string
  readonly port: number
}

export type UdDropReason = 'malformed' | 'badPkey' | 'badQkey'
export type UdDrops = Record<UdDropReason, number>

export class UdQp {
  readonly qpn: number
  readonly qkey: number
  readonly drops: UdDrops = { malformed: 0, badPkey: 0, badQkey: 0 }
  packetsSent = 0
  packetsReceived = 0
  readonly #device: UdDevice
  readonly #onReceive: (c: UdCompletion) => void
  #psn = 0
  #closed = false

  constructor(device: UdDevice, qpn: number, qkey: number, onReceive: (c: UdCompletion) => void) {
    this.#device = device
    this.qpn = qpn
    this.qkey = qkey
    this.#onReceive = onReceive
    device.attachUd(qpn, this)
  }

  postSend(s: UdSend): void {
    if (this.#closed) return
    const ip = this.#device.ipContextTo({ address: s.ah.address, port: s.ah.port })
    const d = encodeUdPacket({
      destQpn: s.remoteQpn, psn: this.#psn, pkey: DEFAULT_PKEY, qkey: s.remoteQkey, srcQpn: this.qpn, solicited: false,
      ...(s.immDt === undefined ? {} : { immDt: s.immDt }), payload: s.payload,
    })
    this.#psn = (this.#psn + 1) & 0xffffff
    writeIcrc(d, d.length - 4, ip)
    this.packetsSent++
    this.#device.sendDatagram(d, ip)
  }

  /** @internal The device's receive path (ICRC already checked). */
  receiveUd(datagram: Buffer, ip: IpContext): void {
    const p = decodeUdPacket(datagram)
    if (isWireError(p)) return void this.drops.malformed++
    if ((p.pkey & 0x7fff) !== 0x7fff) return void this.drops.badPkey++
    if (p.qkey !== this.qkey) return void this.drops.badQkey++
    this.packetsReceived++
    const grh = grhArea(this.#device.family, ip.src, ip.dst, datagram.length)
    const buffer = new Uint8Array(GRH_BYTES + p.payload.length)
    buffer.set(grh, 0)
    buffer.set(p.payload, GRH_BYTES)
    this.#onReceive({
      buffer, grh: buffer.subarray(0, GRH_BYTES), payload: buffer.subarray(GRH_BYTES), srcQpn: p.srcQpn,
      ...(p.immDt === undefined ? {} : { immDt: p.immDt }), address: ip.src, port: ip.srcPort,
    })
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#device.detachUd(this.qpn, this)
  }
}
