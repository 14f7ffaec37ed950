/** @rdma-session/provider-verbs: libibverbs (real RoCE NICs, kernel soft-RoCE rxe) for @rdma-session/core. Importing loads nothing native. */
export { verbs, createProvider, VerbsProvider, type VerbsOptions } from './provider.js'
export { VerbsDevice, ROCE_V2_PORT, type AsyncEvent, type DeviceSelection } from './device.js'
export { VerbsPd, VerbsMr, VerbsCq, VerbsSrq, WC_RECORD, completionStatus, completionOpcode, decodeCompletion } from './resources.js'
export { VerbsQp, PreparedSend, QP_DEFAULTS } from './queue-pair.js'
export { AddonMissingError, NoDeviceError, VerbsError, VerbsErrorCode, isVerbsError, type AddonMissingReason, type NoDeviceReason } from './errors.js'
export { addressToGid, gidToAddress, gidToText, selectGid, type GidChoice } from './gid.js'
export { classifyLoadError, loadBinding, resolveAddonPath, type AddonOrigin, type AddonSource, type LibibverbsStatus, type NativeBinding, type NativeGidEntry } from './native.js'
export { addonStatus, type AddonStatus } from './addon-status.js'
