/** Test helper: tshark as an independent RoCEv2 decoder (JSON fields per frame, the expert summary). */
import { execFileSync, spawnSync } from 'node:child_process'

export const TSHARK_MISSING =
  'tshark is not installed, and this test needs it to check the packets with an independent decoder. ' +
  "Install it: echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections; " +
  'DEBIAN_FRONTEND=noninteractive apt-get install -y tshark  (CI installs it)'

/** Field name -> values (tshark -T json -e ...). */
export type Layers = Record<string, string[] | undefined>

/** The fields the wire tests read: IP/UDP checksums, every BTH/ETH field, ICRC, payload, expert info. */
export const ROCE_FIELDS = [
  'frame.number', 'ip.checksum.status', 'udp.checksum.status', 'ipv6.flow',
  'infiniband.bth.opcode', 'infiniband.bth.se', 'infiniband.bth.m', 'infiniband.bth.padcnt', 'infiniband.bth.tver',
  'infiniband.bth.p_key', 'infiniband.bth.destqp', 'infiniband.bth.a', 'infiniband.bth.psn',
  'infiniband.reth.va', 'infiniband.reth.r_key', 'infiniband.reth.dmalen',
  'infiniband.aeth.syndrome', 'infiniband.aeth.msn', 'infiniband.immdt', 'infiniband.ieth',
  'infiniband.atomiceth.swapdt', 'infiniband.atomiceth.cmpdt', 'infiniband.atomicacketh.origremdt',
  'infiniband.invariant.crc', 'data.data', '_ws.expert', '_ws.expert.severity', '_ws.malformed',
] as const

function requireTshark(): void {
  const probe = spawnSync('tshark', ['--version'], { encoding: 'utf8' })
  if (probe.error || probe.status !== 0) throw new Error(TSHARK_MISSING)
}

/** The arguments that make tshark dissect UDP `ports` as RoCEv2 (InfiniBand), RPC-over-RDMA off. */
export function roceDecodeArgs(ports: readonly number[] = [4791]): string[] {
  return [...new Set(ports)].flatMap((p) => ['-d', `udp.port==${p},infiniband`]).concat(['--disable-protocol', 'rpcordma'])
}

/** Every frame of `file` with `fields` (default ROCE_FIELDS), IP and UDP checksums verified. */
export function tshark(file: string, options: { ports?: readonly number[]; fields?: readonly string[] } = {}): Layers[] {
  requireTshark()
  const fields = options.fields ?? ROCE_FIELDS
  const out = execFileSync(
    'tshark',
    ['-r', file, ...roceDecodeArgs(options.ports), '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-T', 'json', ...fields.flatMap((f) => ['-e', f])],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000, maxBuffer: 64 << 20 },
  )
  return (JSON.parse(out) as { _source: { layers: Layers } }[]).map((x) => x._source.layers)
}

/** `tshark -q -z expert`: the expert-info summary (empty when there is none), lines without the banner. */
export function tsharkExpert(file: string, ports: readonly number[] = [4791]): string[] {
  requireTshark()
  const out = execFileSync('tshark', ['-r', file, ...roceDecodeArgs(ports), '-q', '-z', 'expert'], {
    encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000, maxBuffer: 64 << 20,
  })
  return out.split('\n').filter((l) => l.trim() !== '')
}

/** The first value of a field. */
export const one = (l: Layers, f: string): string | undefined => l[f]?.[0]
