// Types of rc-peer-client.mjs (the host side of rc_peer's protocol). See README.md.
import type { Duplex } from 'node:stream'

export interface RcPeerHello {
  version: number
  dev: string
  port: number
  gidIndex: number
  gid: Buffer
  qpn: number
  psn: number
  rkey: number
  addr: bigint
  len: number
  mtu: number
}

export interface RcPeerQpParams {
  qpn: number
  psn: number
  gid: Buffer | string
  rkey?: number
  addr?: bigint | number
  len?: number
  mtu?: 256 | 512 | 1024 | 2048 | 4096
  timeout?: number
  retry?: number
  rnrRetry?: number
  rdAtomic?: number
  sl?: number
  tclass?: number
  hopLimit?: number
  flowLabel?: number
}

export interface RcPeerOpOptions {
  imm?: number
  rkey?: number
  raddr?: bigint | number
}

export declare class RcPeerError extends Error {
  readonly code: 'RC_PEER_ERR'
  readonly request: string
  readonly reply: string
  /** ibv_wc_status_str of a failed completion, e.g. 'remote access error'. */
  readonly status: string | undefined
}

export declare function parseFields(text: string): Record<string, string>

export declare class RcPeerClient {
  static open(stream: Duplex, options?: { timeoutMs?: number }): Promise<RcPeerClient>
  readonly stream: Duplex
  hello: RcPeerHello
  request(line: string, options?: { timeoutMs?: number }): Promise<string>
  connectQp(params: RcPeerQpParams): Promise<string>
  info(): Promise<Record<string, string>>
  fill(off: number, len: number, byte: number): Promise<string>
  set(off: number, bytes: Uint8Array): Promise<string>
  dump(off?: number, len?: number): Promise<Buffer>
  sha256(off?: number, len?: number): Promise<string>
  write(loff: number, roff: number, len: number, options?: RcPeerOpOptions): Promise<string>
  read(loff: number, roff: number, len: number, options?: RcPeerOpOptions): Promise<string>
  send(loff: number, len: number, options?: RcPeerOpOptions): Promise<string>
  recv(loff: number, len: number): Promise<string>
  waitRecv(timeoutMs?: number): Promise<{ opcode: string; len: number; loff: number; imm: number | undefined }>
  cas(loff: number, roff: number, compare: bigint | number, swap: bigint | number, options?: RcPeerOpOptions): Promise<bigint>
  fadd(loff: number, roff: number, add: bigint | number, options?: RcPeerOpOptions): Promise<bigint>
  /** The device port's hw_counters, e.g. rcvd_pkts (counted after rxe's ICRC check), sent_pkts. */
  counters(): Promise<{ rcvd_pkts: number; sent_pkts: number; [name: string]: number }>
  /** Polls counters() until `until` holds (default deadline 10 s; rejects naming the last values seen). */
  waitForCounters(until: (c: { rcvd_pkts: number; sent_pkts: number; [name: string]: number }) => boolean, opts?: { timeoutMs?: number; intervalMs?: number }): Promise<{ rcvd_pkts: number; sent_pkts: number; [name: string]: number }>
  quit(): Promise<void>
}
