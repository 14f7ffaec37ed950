/**
 * The start of every perftest run (exchange_versions, check_version_compatibility,
 * check_sys_data, check_mtu): versions, then, for peers from 5.32 on, page and cache-line size
 * (the larger of each wins), then the MTU (the smaller wins).
 */
import type { PathMtu } from '@rdma-session/core'
import type { PerftestExchange } from './exchange.js'
import { decodeMtu, decodeSysValue, decodeVersion, encodeInt32, encodeMtu, encodeVersion, VERSION_BYTES } from './wire.js'

const CYCLE_BUFFER = 4096
const CACHE_LINE = 64

export interface Negotiated {
  readonly peer: { text: string; value: number }
  readonly cycleBuffer: number
  readonly cacheLine: number
  readonly mtu: PathMtu
}

export async function negotiate(channel: PerftestExchange, ourMtu: PathMtu): Promise<Negotiated> {
  const peer = decodeVersion(await channel.xchg(encodeVersion(), VERSION_BYTES, 'the peer\'s version'))
  let cycleBuffer = CYCLE_BUFFER
  let cacheLine = CACHE_LINE
  if (peer.value >= 5.32) {
    cycleBuffer = Math.max(cycleBuffer, decodeSysValue(await channel.xchg(encodeInt32(CYCLE_BUFFER), 4, 'the peer\'s page size'), 'cycle buffer'))
    cacheLine = Math.max(cacheLine, decodeSysValue(await channel.xchg(encodeInt32(CACHE_LINE), 4, 'the peer\'s cache line size'), 'cache line size'))
  }
  // From 5.31 on 2 bytes ("3\0"), before that sizeof(int).
  const mtuMsg = encodeMtu(ourMtu)
  const wide = peer.value < 5.31
  const theirMtu = decodeMtu(await channel.xchg(wide ? Buffer.concat([mtuMsg, Buffer.alloc(2)]) : mtuMsg, wide ? 4 : 2, 'the peer\'s MTU'))
  return { peer, cycleBuffer, cacheLine, mtu: Math.min(ourMtu, theirMtu) as PathMtu }
}
