/**
 * What the commands that stand in for rdma-core's and perftest's programs share about softroce:
 * how its device is opened (one context bound to a local address and UDP port) and how a failed
 * completion is worded (ibv_wc_status numbers and ibv_wc_status_str texts).
 */
import { createContext, type Context, type Provider, type WorkCompletion } from '@rdma-session/core'

/** How softroce is made (tests substitute their own). */
export type SoftroceFactory = (options: Record<string, unknown>) => Provider | Promise<Provider>

async function defaultSoftroce(options: Record<string, unknown>): Promise<Provider> {
  const mod = (await import('@rdma-session/provider-softroce')) as { softroce(o: Record<string, unknown>): Provider }
  return mod.softroce(options)
}

/**
 * Bytes a QP of these commands may have unacknowledged: what kernel rxe keeps in flight
 * (RXE_MAX_UNACKED_PSNS, 128 packets) at the 1024-byte MTU of a RoCE port on a 1500-byte link.
 * Their peers are rxe and NICs, which do go-back-N: softroce's default window (up to 1 MiB) let
 * a slow receiver (rxe in a loaded VM) drop a large part of each burst at its NIC queue, and every
 * drop cost a whole window's resend; with rxe's own window that peer keeps up.
 */
export const PEER_WINDOW_BYTES = 128 * 1024

/** A softroce context bound to `address` and UDP `port`; `deviceName` names it (-d). */
export async function openSoftroceContext(o: { address: string; port: number; deviceName?: string; softroce?: SoftroceFactory }): Promise<Context> {
  const make = o.softroce ?? defaultSoftroce
  const provider = await make({ address: o.address, port: o.port, windowBytes: PEER_WINDOW_BYTES, ...(o.deviceName === undefined ? {} : { deviceName: o.deviceName }) })
  return createContext({ provider })
}

/** enum ibv_wc_status numbers and ibv_wc_status_str texts. */
const WC_STATUS: Record<string, [number, string]> = {
  SUCCESS: [0, 'success'], LOC_LEN_ERR: [1, 'local length error'], LOC_QP_OP_ERR: [2, 'local QP operation error'],
  LOC_PROT_ERR: [4, 'local protection error'], WR_FLUSH_ERR: [5, 'Work Request Flushed Error'], BAD_RESP_ERR: [7, 'bad response error'],
  LOC_ACCESS_ERR: [8, 'local access error'], REM_INV_REQ_ERR: [9, 'remote invalid request error'], REM_ACCESS_ERR: [10, 'remote access error'],
  REM_OP_ERR: [11, 'remote operation error'], RETRY_EXC_ERR: [12, 'transport retry counter exceeded'], RNR_RETRY_EXC_ERR: [13, 'RNR retry counter exceeded'],
  REM_ABORT_ERR: [16, 'aborted error'], FATAL_ERR: [19, 'fatal error'], GENERAL_ERR: [21, 'general error'],
}

/** The status of a completion as verbs numbers and words it: [ibv_wc_status, ibv_wc_status_str]. */
export function wcStatus(wc: WorkCompletion): [number, string] {
  return WC_STATUS[wc.status] ?? [-1, wc.status]
}

/** The device's counters, when the provider keeps them (softroce's `counters.snapshot()`). */
export function deviceCounters(ctx: Context): Record<string, unknown> | undefined {
  const device = ctx.device as { counters?: { snapshot?: () => Record<string, unknown> } }
  return device.counters?.snapshot?.()
}
