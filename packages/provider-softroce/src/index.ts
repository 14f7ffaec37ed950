/** @rdma-session/provider-softroce: a RoCEv2 RC stack in TypeScript over UDP, wire-compatible with kernel rxe and RoCE NICs. */
export { softroce, createProvider, SoftRoceProvider, type SoftRoceOptions } from './provider.js'
export { SoftRoceDevice, type DeviceDiagnostics } from './device.js'
export { nativeHelperStatus, type NativeHelperStatus } from './socket/helper-status.js'
export type { AddonOrigin as NativeHelperOrigin } from './socket/sockopt-addon.js'
export { DeviceCounters, DROP_REASONS, type DropReason, type DropCounts, type DeviceCountersSnapshot } from './rc/device-counters.js'
export { LinkImpairment, type ImpairmentOptions, type ImpairmentStats } from './rc/link-impairment.js'
export type { RcTimerOptions } from './rc/timer-options.js'
export type { DelayWindowOptions } from './rc/delay-window.js'
export type { AdoptedSocket } from './device-socket.js'
export { PSP_HEADER_BYTES, TAG_BYTES } from './crypto/packet-protection.js'
export {
  createCm, ConnectionManager, CmListener, ROCE_PORT,
  type CmOptions, type CmQpOptions, type CmConnectOptions, type CmListenOptions, type CmRequest, type CmDecision,
} from './cm/cm-manager.js'
export { CmConnection, type CmState, type CmDisconnectInfo } from './cm/cm-connection.js'
export { CM_DROP_REASONS, type CmDropReason, type CmCountersSnapshot } from './cm/cm-drops.js'
export type { CmTimingOptions } from './cm/cm-timing.js'
export { RejReason } from './cm/cm-messages.js'
export { UdQp, GSI_QKEY, GSI_QPN, type AddressHandle, type UdSend, type UdCompletion } from './ud/ud-qp.js'
