/**
 * The verbs provider: `verbs(options)` / `createProvider(options)`. Loads the addon on first use,
 * picks a device, an ACTIVE port and its RoCEv2 GID, and reports the device's capabilities.
 */
import { InvalidArgumentError, PATH_MTUS, SPECIFICATION_VERSION, type PathMtu, type Provider, type ProviderCapabilities } from '@rdma-session/provider-interface'
import { NoDeviceError, SOFTROCE_HINT, VerbsError } from './errors.js'
import { gidToText, selectGid } from './gid.js'
import { buffersOf, loadBinding, type AddonSource, type NativeBinding, type NativeDevice } from './native.js'
import { ROCE_V2_PORT, VerbsDevice, type DeviceSelection } from './device.js'
import { PROVIDER_PACKAGE } from './package-info.js'
import type { Context, ProviderConnectionManager, QueuePair } from '@rdma-session/core'
import { createCm, type VerbsCmOptions } from './cm/cm-manager.js'

export interface VerbsOptions {
  /** Device name (`ibv_devices`), e.g. rxe0 or mlx5_0. Default: the first with an ACTIVE port and a RoCEv2 GID. */
  readonly device?: string
  /** GID index to use. Default: the first RoCEv2 IPv4-mapped GID, else the first global IPv6 one. */
  readonly gidIndex?: number
  /** Only RoCEv2 is supported. */
  readonly gidType?: 'roce-v2'
  /** Use the GID of this local address (IPv4 or IPv6). */
  readonly address?: string
  /** RoCEv2's UDP port; only 4791 is possible with verbs. */
  readonly port?: number
  /**
   * Poll mode: while work requests are outstanding, poll the CQs from a setImmediate loop instead of
   * waiting for completion-channel events (lower latency, one core busy). Default false.
   */
  readonly pollMode?: boolean
  /** Load the addon from this .node file, or take the binding a function returns (tests). */
  readonly addon?: AddonSource
}

const IBV_PORT_ACTIVE = 4
const ENOSYS = 38
const NO_DEVICE_HELP = [
  'create a soft-RoCE device on a network interface: modprobe rdma_rxe && rdma link add rxe0 type rxe netdev eth0',
  'for a RoCE NIC: load its driver (e.g. mlx5_ib) and check `rdma link show` / `ibv_devices`',
  SOFTROCE_HINT,
]

interface Probe {
  readonly selection: DeviceSelection
  readonly capabilities: ProviderCapabilities
}

/** Lists the devices or says why there are none. */
function listDevices(binding: NativeBinding): string[] {
  let list
  try {
    list = binding.listDevices()
  } catch (err) {
    if (err instanceof VerbsError && err.errno === ENOSYS) {
      throw new NoDeviceError('no-kernel-support', 'the kernel has no RDMA verbs support (libibverbs found no /sys/class/infiniband_verbs)', [
        'load the kernel modules: modprobe ib_uverbs rdma_rxe (soft-RoCE) or your NIC\'s RDMA driver',
        ...NO_DEVICE_HELP,
      ])
    }
    throw err
  }
  if (list.length === 0) throw new NoDeviceError('no-devices', 'libibverbs found no RDMA device', NO_DEVICE_HELP)
  return list.map((d) => d.name)
}

/** Opens `name` and finds its first ACTIVE port with a usable RoCEv2 GID; null (device left open) when there is none. */
function inspect(binding: NativeBinding, native: NativeDevice, name: string, options: VerbsOptions): DeviceSelection | { problem: 'no-active-port' | 'no-roce-gid'; detail: string } {
  const attrs = native.query()
  const gidTable = native.gidTable()
  let problem: 'no-active-port' | 'no-roce-gid' = 'no-active-port'
  const states: string[] = []
  for (let port = 1; port <= attrs.physPortCnt; port++) {
    const portAttrs = native.queryPort(port)
    states.push(`port ${port}: ${portAttrs.state}`)
    if (portAttrs.stateCode !== IBV_PORT_ACTIVE) continue
    problem = 'no-roce-gid'
    const gid = selectGid(gidTable, port, options)
    if (gid !== null) return { name, port, gid, gidTable, attrs, portAttrs }
  }
  void binding
  const table = gidTable.map((e) => `port ${e.port} index ${e.index}: ${gidToText(e.gid)} (${e.type})`).join('; ') || 'empty'
  return { problem, detail: problem === 'no-active-port' ? states.join(', ') : `GID table: ${table}` }
}

/** Opens the device the options name (or the first usable one) and returns it with its selection. */
function openSelected(binding: NativeBinding, options: VerbsOptions): { native: NativeDevice; selection: DeviceSelection } {
  const names = listDevices(binding)
  if (options.device !== undefined && !names.includes(options.device)) {
    throw new NoDeviceError('device-not-found', `no RDMA device named '${options.device}'; found ${names.join(', ')}`, [`use one of: ${names.join(', ')}`, ...NO_DEVICE_HELP], { devices: names })
  }
  const problems: string[] = []
  let last: 'no-active-port' | 'no-roce-gid' = 'no-active-port'
  for (const name of options.device !== undefined ? [options.device] : names) {
    const native = new binding.Device(name)
    let found
    try {
      found = inspect(binding, native, name, options)
    } catch (err) {
      native.close()
      throw err
    }
    if (!('problem' in found)) return { native, selection: found }
    native.close()
    last = found.problem
    problems.push(`${name}: ${found.detail}`)
  }
  if (last === 'no-active-port') {
    throw new NoDeviceError('no-active-port', `no RDMA device has an ACTIVE port (${problems.join('; ')})`, [
      'bring the network interface under it up: ip link set <netdev> up (rdma link show names it)',
      ...NO_DEVICE_HELP,
    ], { devices: names })
  }
  throw new NoDeviceError('no-roce-gid', `no ACTIVE port has a RoCEv2 GID${options.gidIndex !== undefined || options.address !== undefined ? ' matching the options' : ''} (${problems.join('; ')})`, [
    'give the network interface an IP address: ip addr add 10.0.0.1/24 dev <netdev> (RoCEv2 GIDs follow its addresses)',
    ...NO_DEVICE_HELP,
  ], { devices: names })
}

/** The largest inline size the device gives an RC QP (ibv_query_device does not report it). */
function probeMaxInline(binding: NativeBinding, native: NativeDevice): number {
  const pd = new binding.Pd(native)
  const cq = new binding.Cq(native, 4, false)
  try {
    for (const want of [256, 128, 64, 0]) {
      try {
        const qp = new binding.Qp(pd, cq, cq, { maxSendWr: 1, maxRecvWr: 1, maxSendSge: 1, maxRecvSge: 1, maxInlineData: want })
        const got = qp.caps.maxInlineData
        qp.destroy()
        return Math.max(want, Math.min(got, 1024))
      } catch {
        // try a smaller size
      }
    }
    return 0
  } finally {
    cq.destroy()
    pd.dealloc()
  }
}

function capabilitiesOf(binding: NativeBinding, native: NativeDevice, sel: DeviceSelection): ProviderCapabilities {
  const mtu = Math.min(sel.portAttrs.activeMtu, 4096)
  return Object.freeze({
    encryption: false,
    atomics: sel.attrs.atomicCap !== 'none',
    immediate: true,
    maxMtu: ((PATH_MTUS as readonly number[]).includes(mtu) ? mtu : 1024) as PathMtu,
    maxQps: sel.attrs.maxQp,
    maxQpWr: sel.attrs.maxQpWr,
    maxSge: Math.min(sel.attrs.maxSge, binding.layout.maxSge),
    maxInline: probeMaxInline(binding, native),
    maxMrSize: Math.min(sel.attrs.maxMrSize, Number.MAX_SAFE_INTEGER),
    qosScheduling: false,
  })
}

export class VerbsProvider implements Provider {
  readonly name = 'verbs'
  readonly specificationVersion = SPECIFICATION_VERSION
  /** This package (its name and version; createContext checks a stated @rdma-session/core range). */
  readonly package = PROVIDER_PACKAGE
  readonly options: VerbsOptions
  #probe: Probe | null = null

  constructor(options: VerbsOptions = {}) {
    if (options.port !== undefined && options.port !== ROCE_V2_PORT) {
      throw new InvalidArgumentError(`verbs devices send and receive RoCEv2 on UDP port ${ROCE_V2_PORT}; port ${options.port} is not possible`)
    }
    if (options.gidType !== undefined && options.gidType !== 'roce-v2') {
      throw new InvalidArgumentError(`gidType '${String(options.gidType)}' is not supported; only 'roce-v2'`)
    }
    this.options = { ...options }
  }

  /**
   * Core's rdma_cm hook (cm-spi.ts in @rdma-session/provider-interface): `ctx.listen({ cm })`,
   * `ctx.connect('rdma-cm://…')` and `ctx.connectQp` reach librdmacm through it. The same as createCm(ctx, options).
   */
  createConnectionManager(ctx: Context, options: VerbsCmOptions = {}): ProviderConnectionManager<QueuePair> {
    return createCm(ctx, options)
  }

  /** The addon binding (loads it on first use; throws ERR_ADDON_MISSING with what to do). */
  get binding(): NativeBinding {
    return loadBinding(this.options.addon)
  }

  /** The selected device's capability record. Loads the addon and opens the device once to find it. */
  get capabilities(): ProviderCapabilities {
    return this.#probeOnce().capabilities
  }

  /** Names of the RDMA devices libibverbs sees (throws ERR_ADDON_MISSING / ERR_NO_DEVICE with what to do). */
  devices(): string[] {
    return listDevices(this.binding)
  }

  #probeOnce(): Probe {
    if (this.#probe !== null) return this.#probe
    const binding = this.binding
    const { native, selection } = openSelected(binding, this.options)
    try {
      this.#probe = { selection, capabilities: capabilitiesOf(binding, native, selection) }
    } finally {
      native.close()
    }
    return this.#probe
  }

  async openDevice(): Promise<VerbsDevice> {
    const probe = this.#probeOnce()
    const binding = this.binding
    const native = new binding.Device(probe.selection.name)
    try {
      const selection = inspect(binding, native, probe.selection.name, { ...this.options, device: probe.selection.name })
      if ('problem' in selection) throw new NoDeviceError(selection.problem, `${probe.selection.name} is no longer usable: ${selection.detail}`, NO_DEVICE_HELP)
      return new VerbsDevice(binding, buffersOf(binding), native, selection, this.options.pollMode === true)
    } catch (err) {
      native.close()
      throw err
    }
  }
}

/** A verbs provider: pass it to createContext({ provider: verbs({ device: 'rxe0' }) }). */
export function verbs(options: VerbsOptions = {}): VerbsProvider {
  return new VerbsProvider(options)
}

/** The same, under the name core's loader looks for (RDMA_SESSION_PROVIDER=verbs). */
export function createProvider(options: VerbsOptions = {}): VerbsProvider {
  return new VerbsProvider(options)
}
