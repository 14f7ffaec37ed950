/**
 * @rdma-session/provider-interface: what an rdma-session provider implements (the SPI types),
 * the constants and errors it shares with core, and the small runtime kit JavaScript providers use.
 */
export { SPECIFICATION_VERSION, specificationMajor } from './version.js'
export type * from './spi.js'
export type * from './cm-spi.js'
export * from './constants.js'
export * from './errors.js'
export { registerErrorCodes, registeredErrorCode, type RegisteredErrorCode } from './error-registry.js'
export { checkQpTransition, canPostSend, canPostRecv } from './qp-state-machine.js'
// The runtime kit for providers written in JavaScript.
export { CompletionRing, type CompletionProducer } from './provider-kit/completion-ring.js'
export { FifoQueue } from './provider-kit/fifo-queue.js'
export { ResponderResources, type ReadReplay } from './provider-kit/responder-resources.js'
export { microtaskRunner } from './provider-kit/microtask.js'
export { seededRandom } from './provider-kit/seeded-random.js'
// The rdma_cm kit both connection managers (softroce, verbs) share: argument checks, the listener's accept queue, the connection shell.
export { CM_ALL_ACCESS, checkCmPort, checkCmBacklog, checkCmPrivateData, cmTarget } from './cm-kit/cm-checks.js'
export { CmListenerBase } from './cm-kit/cm-listener-base.js'
export { CmConnectionShell, cmQpToError, createCmQp, type CmKitQp } from './cm-kit/cm-connection-shell.js'
