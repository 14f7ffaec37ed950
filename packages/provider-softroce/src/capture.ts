/** The `capture` option: every packet a device sends and receives, written to a pcap file (tshark: `-d udp.port==PORT,infiniband`). */
import { PcapWriter } from './wire/pcap.js'
import type { IpContext } from './wire/icrc.js'

export class PacketCapture {
  readonly path: string
  readonly #writer: PcapWriter

  constructor(path: string) {
    this.path = path
    this.#writer = PcapWriter.open(path)
  }

  /** Packets written so far. */
  get packets(): number {
    return this.#writer.packets
  }

  /** Records one UDP payload (ICRC included) with the IP/UDP header it travelled with. */
  record(udpPayload: Uint8Array, ip: IpContext): void {
    this.#writer.write(udpPayload, ip)
  }

  close(): Promise<void> {
    return this.#writer.close()
  }
}
