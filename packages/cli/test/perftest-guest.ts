/**
 * What the guest tests of `rdma-session perftest` share: the shell around perftest in the guest
 * (each run bounded, output tagged per step) and the parsing of perftest's result tables.
 */

/** `cmd` bounded by `timeout` (`seconds`, default 150), stdout to `out`, stderr to `out`.err. */
export const guestRun = (cmd: string, out: string, seconds = 150): string => `timeout ${seconds} ${cmd} > ${out} 2> ${out}.err`

/**
 * A perftest client retried while the host's server is not there yet (refused TCP connect or
 * rdma_cm REJ); with `stopFile`, not once the host's side has ended (it wrote that file).
 */
export const guestClientLoop = (cmd: string, out: string, stopFile?: string, seconds = 150): string =>
  `for i in $(seq 1 600); do ${guestRun(cmd, out, seconds)}; rc=$?; grep -q "Couldn't connect\\|Unable to init the socket\\|Unable to perform rdma_client" ${out}.err || break; ${stopFile === undefined ? '' : `[ -e "${stopFile}" ] && break; `}sleep 0.2; done`

/** perftest's stdout lines tagged "@@<tag> ", its stderr lines "@@<tag>! ". */
export const guestShow = (out: string, tag: string): string => `sed 's/^/@@${tag} /' ${out}; sed 's/^/@@${tag}! /' ${out}.err`

export function tagged(output: string, tag: string): string[] {
  return output.split(/\r?\n/).filter((l) => l.startsWith(`@@${tag} `)).map((l) => l.slice(tag.length + 3))
}

/**
 * A figure as printf prints it: perftest under TCG sometimes cannot sample its CPU clock (it says
 * "Correlation coefficient r^2: … < 0.9") and prints inf and -nan, while exiting 0.
 */
const F = '(\\d+\\.\\d+|-?inf|-?nan)'
export const BW_ROW = new RegExp(`^ (\\d+) +(\\d+) +${F} +${F}\\s+${F}\\s*$`, 'm')
export const LAT_ROW = new RegExp(`^ (\\d+) +(\\d+) +${F} +${F} +${F}\\s+${F}\\s+${F}\\s+${F}\\s+${F}\\s*$`, 'm')
const figure = (text: string): number => (/inf$/.test(text) ? Infinity : Number(text))

export const kindRow = (kind: 'bw' | 'lat'): RegExp => (kind === 'bw' ? BW_ROW : LAT_ROW)

/** The (last) row of a result table: { size, iters, figure } (figure: BW average MB/s, or typical latency µs). */
export function resultRow(out: string, kind: 'bw' | 'lat'): { size: number; iters: number; figure: number } | null {
  const m = [...out.matchAll(new RegExp(kindRow(kind).source, 'gm'))].at(-1)
  if (m === undefined) return null
  return { size: Number(m[1]), iters: Number(m[2]), figure: figure(kind === 'bw' ? m[4]! : m[5]!) }
}

/** softroce's --stats line. */
export interface SoftroceCounters { packetsSent: number; retransmits: number; drops: Record<string, number> }
