/** The conformance groups in the order they run; each registers its tests on the suite. */
import type { Suite } from '../suite.js'
import { operationTests } from './operations.js'
import { errorStatusTests } from './error-statuses.js'
import { stateMachineTests } from './state-machine.js'
import { sessionTests } from './sessions.js'
import { sessionParameterTests } from './session-parameters.js'
import { orderingTests } from './ordering.js'
import { scaleTests } from './scale.js'
import { stripingTests } from './striping.js'
import { encryptionTests } from './encryption.js'
import { closeTests } from './close.js'
import { qpFailureTests } from './qp-failures.js'

export const CONFORMANCE_GROUPS = {
  'operations': operationTests,
  'error statuses': errorStatusTests,
  'QP state machine': stateMachineTests,
  'sessions': sessionTests,
  'session parameters and QoS': sessionParameterTests,
  'ordering': orderingTests,
  'scale': scaleTests,
  'striping': stripingTests,
  'encryption': encryptionTests,
  'QP failures': qpFailureTests,
  'close and leaks': closeTests,
} as const satisfies Record<string, (suite: Suite) => void>

export type GroupName = keyof typeof CONFORMANCE_GROUPS
