/**
 * The control-plane admission series of one listener (ctx.listen): unauthenticated connections
 * pending and what happened to them, authenticated connections, and the limits in force, so an
 * operator sees a handshake flood (and the limits it meets) without reading logs.
 */
import type { ServerAdmissionStats } from '../control/control-server.js'
import type { Labels } from './families.js'

/** Adds one sample; the family is named by `name` (the same signature as FamilySet.add). */
export type AddSample = (name: string, type: 'counter' | 'gauge', help: string, labels: Labels, value: number) => void

export function addAdmissionSamples(add: AddSample, labels: Labels, a: ServerAdmissionStats): void {
  add('rdma_session_control_pending_connections', 'gauge', 'Control connections that have not finished the handshake', labels, a.pending)
  add('rdma_session_control_pending_connections_peak', 'gauge', 'The most control connections pending the handshake at once', labels, a.peakPending)
  add('rdma_session_control_authenticated_connections', 'gauge', 'Authenticated control connections open', labels, a.authenticatedConnections)
  add('rdma_session_control_admitted_total', 'counter', 'Control connections let into the pending (unauthenticated) pool', labels, a.admitted)
  add('rdma_session_control_handshakes_completed_total', 'counter', 'Control connections that finished the handshake and left the pending pool', labels, a.completed)
  const refused = 'Control connections refused or closed by admission, by reason'
  add('rdma_session_control_admission_refused_total', 'counter', refused, { ...labels, reason: 'early_drop' }, a.earlyDropped)
  add('rdma_session_control_admission_refused_total', 'counter', refused, { ...labels, reason: 'evicted' }, a.evicted)
  add('rdma_session_control_admission_refused_total', 'counter', refused, { ...labels, reason: 'handshake_timeout' }, a.timedOut)
  add('rdma_session_control_admission_refused_total', 'counter', refused, { ...labels, reason: 'max_connections' }, a.refusedAtLimit)
  const limit = 'Control-plane admission limits in force (listen options)'
  add('rdma_session_control_admission_limit', 'gauge', limit, { ...labels, limit: 'max_pending' }, a.limits.maxPending)
  add('rdma_session_control_admission_limit', 'gauge', limit, { ...labels, limit: 'max_pending_per_address' }, a.limits.maxPendingPerAddress)
  add('rdma_session_control_admission_limit', 'gauge', limit, { ...labels, limit: 'early_drop_at' }, a.limits.earlyDropAt)
  add('rdma_session_control_admission_limit', 'gauge', limit, { ...labels, limit: 'handshake_timeout_ms' }, a.limits.handshakeTimeoutMs)
  add('rdma_session_control_admission_limit', 'gauge', limit, { ...labels, limit: 'max_connections' }, a.maxConnections)
}
