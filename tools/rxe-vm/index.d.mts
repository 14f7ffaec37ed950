// Types of index.mjs (the rxe-vm guest for tests). See README.md.
import type { ChildProcess, SpawnOptions } from 'node:child_process'
import type { Duplex } from 'node:stream'

export { RcPeerClient, RcPeerError, parseFields } from './rc-peer-client.mjs'
export type { RcPeerHello, RcPeerQpParams, RcPeerOpOptions } from './rc-peer-client.mjs'

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
/** null when a built guest can boot here; otherwise why not (host support, or no build). Builds nothing. */
export declare function guestSupport(): string | null
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

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
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
  /**
   * More guest kernel command line (run.sh -k), e.g. 'clocksource=tsc tsc=reliable': under TCG the
   * guest's default clocksource is the HPET, and every clock read is then an emulated MMIO access.
   */
  kernelArgs?: string
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
  /** Runs a program inside the netns to its end; SIGKILLed after timeoutMs (default: no limit). */
  run(command: string, args?: readonly string[], options?: SpawnOptions & { timeoutMs?: number }): Promise<RunResult>
  /** A stream to a TCP port in the guest (default host 10.77.0.2), retried until it connects. */
  connect(port: number, options?: { host?: string; timeoutMs?: number }): Promise<Duplex>
}

export declare function startGuest(options: StartGuestOptions): Promise<Guest>
