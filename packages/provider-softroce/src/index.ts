/** @rdma-session/provider-softroce: a RoCEv2 RC stack in TypeScript over UDP, wire-compatible with kernel rxe and RoCE NICs. */
export { softroce, createProvider, SoftRoceProvider, type SoftRoceOptions } from './provider.js'
export { SoftRoceDevice, type DeviceDiagnostics } from './device.js'
export { DeviceCounters, DROP_REASONS, type DropReason, type DropCounts, type DeviceCountersSnapshot } from './rc/device-counters.js'
export { LinkImpairment, type ImpairmentOptions, type ImpairmentStats } from './rc/link-impairment.js'
export type { RcTimerOptions } from './rc/ib-timers.js'
export type { DelayWindowOptions } from './rc/delay-window.js'
export type { AdoptedSocket } from './device-socket.js'
export { PSP_HEADER_BYTES, TAG_BYTES } from './crypto/packet-protection.js'
