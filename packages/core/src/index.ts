/** @rdma-session/core: RDMA session sharing for Node.js. */
export * from './constants.js'
export * from './errors.js'
export type * from './spi.js'
export { checkQpTransition, canPostSend, canPostRecv } from './qp-state-machine.js'
