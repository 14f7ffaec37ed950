// Types of index.mjs (the rxe-vm guest for tests). See README.md.
import type { ChildProcess, SpawnOptions } from 'node:child_process'
import type { Duplex } from 'node:stream'

export declare const TAP: {
  readonly hostIpv4: '10.77.0.1'
  readonly hostIpv6: 'fd77::1'
  readonly guestIpv4: '10.77.0.2'
  readonly guestIpv6: 'fd77::2'
  readonly device: 'rxe2'
  readonly hostInterface: 'rxetap0'
  readonly gidIndex: { readonly linkLocal: 0; readonly ipv4: 1; readonly ipv6: 2 }
}

export declare function vmDir(): string
export declare const paths: {
  readonly build: string
  readonly run: string
  readonly bridge: string
  readonly dir: string
  readonly rcPeer: string
}

export declare function hostSupport(): { ok: boolean; reasons: string[] }
export declare function ensureBuilt(options?: { force?: boolean; onLog?: (text: string) => void }): Promise<{ dir: string; ms: number; log: string }>
export declare function netnsExists(name: string): boolean

export interface GuestExit {
  /** The command's exit code; 124 timeout, 125 no code (panic), 143 killed, 2 setup error. */
  code: number | null
  signal: NodeJS.Signals | null
  /** The guest console. */
  output: string
  /** run.sh's messages (netns, qemu pid, ready, timings). */
  stderr: string
}

export interface StartGuestOptions {
  /** A bash command line, run as root in the guest. */
  command: string
  /** A fresh netns with rxetap0 <-> guest eth2/rxe2 (default true). */
  tap?: boolean
  /** The netns name (default rxevm-<pid>-<n>); must not exist yet. */
  netns?: string
  /** Host directory shared at /mnt/host (the command's working directory). */
  share?: string
  shareWritable?: boolean
  /** The host's node binary as `node` in the guest. */
  node?: boolean
  /** Default 120000; rounded up to whole seconds. */
  timeoutMs?: number
  onOutput?: (text: string) => void
  verbose?: boolean
}

export interface Guest {
  readonly netns: string | null
  qemuPid: number | undefined
  /** Resolves when the guest starts the command (rxe devices and GIDs up). */
  readonly ready: Promise<void>
  readonly exited: Promise<GuestExit>
  output(): string
  kill(signal?: NodeJS.Signals): Promise<GuestExit>
  /** child_process.spawn inside the netns. */
  spawn(command: string, args?: readonly string[], options?: SpawnOptions): ChildProcess
  /** A stream to a TCP port in the guest (default host 10.77.0.2), retried until it connects. */
  connect(port: number, options?: { host?: string; timeoutMs?: number }): Promise<Duplex>
}

export declare function startGuest(options: StartGuestOptions): Promise<Guest>

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
  quit(): Promise<void>
}
