/** The softroce provider: `softroce(options)` / `createProvider(options)` for core, one UDP-backed device per openDevice(). */
import { InvalidArgumentError, PATH_MTUS, SPECIFICATION_VERSION, type PathMtu, type Provider, type ProviderCapabilities } from '@rdma-session/provider-interface'
import type { Context, ProviderConnectionManager, QueuePair } from '@rdma-session/core'
import { ENGINE_LIMITS } from '@rdma-session/rc-engine'
import { createCm, type CmOptions } from './cm/cm-manager.js'
import { SoftRoceDevice } from './device.js'
import { PROVIDER_PACKAGE } from './package-info.js'
import { adoptDeviceSocket, openDeviceSocket, type AdoptedSocket } from './device-socket.js'
import { resolveTimers, type RcTimerOptions } from './rc/timer-options.js'
import type { ImpairmentOptions } from './rc/link-impairment.js'
import { resolveDelayWindow, type DelayWindowOptions } from './rc/delay-window.js'
import { MAX_REPLAY_WINDOW, MIN_REPLAY_WINDOW } from './crypto/replay-window.js'

export interface SoftRoceOptions {
  /** Address to bind and to advertise (IPv4 or IPv6). Default '127.0.0.1'. */
  readonly address?: string
  /** UDP port; default 4791 (RoCEv2). 0 picks an ephemeral port, so several stacks can share a host. */
  readonly port?: number
  /** Device name; default softroce0, softroce1, … */
  readonly deviceName?: string
  /** Write every packet sent and received to this pcap file. */
  readonly capture?: string
  /** Largest path MTU QPs may use (default 4096). */
  readonly mtu?: PathMtu
  /** Timer overrides (tests shorten the ACK timeout and RNR waits). */
  readonly timers?: RcTimerOptions
  /** Bytes a QP may have unacknowledged (default: a quarter of the socket receive buffer, 64 KiB–1 MiB). */
  readonly windowBytes?: number
  /** Anti-replay window of encrypted QPs, 64–1024 packets (default 256). */
  readonly replayWindow?: number
  /**
   * Unsignaled WRs do not set AckReq on their last packet (default false). A softroce responder
   * still ACKs them within timers.ackDelayMs, so a verbs-style ping-pong (signal every N) needs
   * far fewer ACK packets. Leave it off toward kernel rxe and NICs: they ACK only on AckReq
   * (and on duplicates), so a trailing unsignaled message would wait for the ACK timeout.
   */
  readonly lazyAcks?: boolean
  /**
   * Selective repeat between softroce peers (default true): the device announces the
   * `selective-repeat` extension in the session negotiation, and a QP whose remote announced it
   * too keeps out-of-order requests in a reorder window (windowBytes), reports gaps with SACK NAKs
   * and resends only the missing packets. Toward kernel rxe and NICs (which announce nothing),
   * or with false, QPs use go-back-N, unchanged on the wire.
   */
  readonly selectiveRepeat?: boolean
  /**
   * The delay-based congestion window of QPs of QoS class `bulk` (default; `classes` selects
   * others; false: every QP's window stays at windowBytes). Such a QP's requester samples its
   * round trips from ACKs and keeps its packets in flight at the round-trip floor plus a small
   * queue (see rc/delay-window.ts), so it does not park a window's worth of packets in front of
   * a latency QP of the same device at the peer's socket.
   */
  readonly congestion?: DelayWindowOptions | false
  /** Most QPs per device (default 65536). */
  readonly maxQps?: number
  /** Test hook: impair the device's link from the start (see LinkImpairment). */
  readonly impairment?: ImpairmentOptions
  /**
   * Use this already-bound UDP socket (by fd) instead of opening one, e.g. one a launcher
   * created with IP_PMTUDISC_DO (IPv4) or UDP_NO_CHECK6_RX (IPv6) set; say which in the record.
   * `address` must then be the socket's address family; the bound address and port are read from it.
   */
  readonly socket?: AdoptedSocket
}

let deviceCounter = 0

/**
 * A quarter of the receive buffer the kernel granted (it counts skb overhead, roughly twice the
 * payload), between 64 KiB and 1 MiB: a full window then fits a peer with the same buffer.
 */
function defaultWindow(recvBufferBytes: number): number {
  if (recvBufferBytes <= 0) return 256 * 1024
  return Math.min(1 << 20, Math.max(64 * 1024, Math.floor(recvBufferBytes / 4)))
}

export class SoftRoceProvider implements Provider {
  readonly name = 'softroce'
  readonly specificationVersion = SPECIFICATION_VERSION
  /** This package and the @rdma-session/core range it works with (checked by createContext). */
  readonly package = PROVIDER_PACKAGE
  readonly capabilities: ProviderCapabilities
  readonly options: SoftRoceOptions

  constructor(options: SoftRoceOptions = {}) {
    const mtu = options.mtu ?? 4096
    if (!(PATH_MTUS as readonly number[]).includes(mtu)) throw new InvalidArgumentError(`softroce mtu must be one of ${PATH_MTUS.join(', ')}, got ${String(mtu)}`)
    const replay = options.replayWindow ?? 256
    if (!Number.isInteger(replay) || replay < MIN_REPLAY_WINDOW || replay > MAX_REPLAY_WINDOW) {
      throw new InvalidArgumentError(`softroce replayWindow must be ${MIN_REPLAY_WINDOW}–${MAX_REPLAY_WINDOW} packets, got ${String(replay)}`)
    }
    this.options = { ...options }
    this.capabilities = Object.freeze({
      encryption: true,
      atomics: true,
      immediate: true,
      maxMtu: mtu,
      maxQps: options.maxQps ?? 65536,
      ...ENGINE_LIMITS,
      qosScheduling: true,
    })
  }

  /**
   * Core's rdma_cm hook (see cm-spi.ts in @rdma-session/provider-interface): `ctx.listen({ cm })`, `ctx.connect('rdma-cm://…')`
   * and `ctx.connectQp` reach softroce's connection manager through it. The same as createCm(ctx, options).
   */
  createConnectionManager(ctx: Context, options: CmOptions = {}): ProviderConnectionManager<QueuePair> {
    return createCm(ctx, options)
  }

  async openDevice(): Promise<SoftRoceDevice> {
    const o = this.options
    const address = o.address ?? '127.0.0.1'
    const ds = o.socket !== undefined ? await adoptDeviceSocket(o.socket, address.includes(':') ? 6 : 4) : await openDeviceSocket(address, o.port ?? 4791)
    return new SoftRoceDevice(
      {
        name: o.deviceName ?? `softroce${deviceCounter++}`,
        maxMtu: this.capabilities.maxMtu,
        maxQps: this.capabilities.maxQps,
        timers: resolveTimers(o.timers),
        windowBytes: Math.max(4096, o.windowBytes ?? defaultWindow(ds.recvBufferBytes)),
        replayWindow: o.replayWindow ?? 256,
        lazyAcks: o.lazyAcks === true,
        selectiveRepeat: o.selectiveRepeat !== false,
        delayWindow: resolveDelayWindow(o.congestion),
        capture: o.capture ?? null,
        impairment: o.impairment ?? null,
      },
      ds,
    )
  }
}

/** A softroce provider: pass it to createContext({ provider: softroce({ address }) }). */
export function softroce(options: SoftRoceOptions = {}): SoftRoceProvider {
  return new SoftRoceProvider(options)
}

/** The same, under the name core's loader looks for (RDMA_SESSION_PROVIDER=softroce). */
export function createProvider(options: SoftRoceOptions = {}): SoftRoceProvider {
  return new SoftRoceProvider(options)
}
