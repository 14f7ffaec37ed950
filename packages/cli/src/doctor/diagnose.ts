/** `rdma-session doctor`: which providers work on this machine, and for each that does not, why and what to do. */
import { createContext, type Provider } from '@rdma-session/core'
import { nativeSystemChecks, softroceNative, verbsNative, type NativeCheck } from './native-checks.js'
import { checkDevices, checkLibibverbs, checkNode, checkRxe, checkUdp4791, listRdmaDevices, SYSTEM_PATHS, type Check, type RdmaDevice, type SystemPaths } from './system-checks.js'

export type { Check } from './system-checks.js'
export type { NativeCheck } from './native-checks.js'

export interface ProviderVerdict {
  readonly provider: 'mock' | 'softroce' | 'verbs'
  readonly packageName: string
  readonly usable: boolean
  readonly detail: string
  /** Why it cannot run here (an error code such as ERR_NO_DEVICE, or 'not-installed'). */
  readonly reason?: string
  /** What to do, most promising first. */
  readonly remedies: readonly string[]
  /** Warnings that do not stop it from working (e.g. softroce without its socket helper). */
  readonly notes: readonly string[]
}

export interface DoctorReport {
  readonly system: readonly Check[]
  readonly devices: readonly RdmaDevice[]
  readonly providers: readonly ProviderVerdict[]
  /** softroce's socket helper and the verbs addon: loaded or missing, prebuilt or built from source. */
  readonly native: readonly NativeCheck[]
}

/** How provider packages are imported; tests substitute one. */
export type Importer = (specifier: string) => Promise<unknown>

export interface DoctorOptions {
  readonly paths?: SystemPaths
  readonly importer?: Importer
  /** UDP port to check (default 4791). */
  readonly udpPort?: number
}

const PACKAGES = { mock: '@rdma-session/provider-mock', softroce: '@rdma-session/provider-softroce', verbs: '@rdma-session/provider-verbs' } as const

function isNotFound(err: unknown, pkg: string): boolean {
  const e = err as { code?: string; message?: string }
  return (e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'MODULE_NOT_FOUND') && (e.message ?? '').includes(pkg)
}

/** Error code, first line of the message, and the "Possible solutions" a provider error carries. */
function describeError(err: unknown): { reason: string; summary: string; remedies: string[] } {
  const e = err as { code?: string; message?: string; solutions?: unknown; details?: { solutions?: unknown } }
  const solutions = Array.isArray(e.solutions) ? e.solutions : Array.isArray(e.details?.solutions) ? e.details.solutions : []
  return { reason: e.code ?? (err as Error).name ?? 'Error', summary: (e.message ?? String(err)).split('\n')[0]!, remedies: solutions.map(String) }
}

/** What a session made with this provider gets by default (sessions are encrypted unless asked otherwise). */
export function sessionEncryptionNote(encrypts: boolean): string {
  return encrypts
    ? 'sessions: encrypted by default (aes-256-gcm per packet); plaintext only with encryption: \'none\' (kernel rxe, NICs)'
    : 'sessions: this provider cannot encrypt: the default (encrypted) fails with ERR_ENCRYPTION_UNSUPPORTED; pass encryption: \'none\' (plaintext) or \'preferred\''
}

async function openAndClose(provider: Provider): Promise<{ detail: string; encrypts: boolean }> {
  const ctx = await createContext({ provider })
  try {
    const i = ctx.info
    const encrypts = ctx.capabilities.encryption
    return { detail: `device ${i.name} at ${i.address}:${i.port}, GID ${i.gid}; encryption ${encrypts ? 'yes' : 'no'}, max MTU ${ctx.capabilities.maxMtu}`, encrypts }
  } finally {
    await ctx.close()
  }
}

async function checkProvider(name: keyof typeof PACKAGES, importer: Importer): Promise<ProviderVerdict> {
  const packageName = PACKAGES[name]
  let mod: Record<string, unknown>
  try {
    mod = (await importer(packageName)) as Record<string, unknown>
  } catch (err) {
    if (isNotFound(err, packageName)) {
      return { provider: name, packageName, usable: false, reason: 'not-installed', detail: `${packageName} is not installed`, remedies: [`npm install ${packageName}  (or: pnpm add ${packageName})`], notes: [] }
    }
    const d = describeError(err)
    return { provider: name, packageName, usable: false, reason: d.reason, detail: `${packageName} does not load: ${d.summary}`, remedies: d.remedies.length > 0 ? d.remedies : [`reinstall ${packageName}`], notes: [] }
  }
  const create = mod.createProvider as ((o?: Record<string, unknown>) => Provider) | undefined
  if (typeof create !== 'function') return { provider: name, packageName, usable: false, reason: 'ERR_PROVIDER_INVALID', detail: `${packageName} exports no createProvider()`, remedies: [`reinstall ${packageName}`], notes: [] }
  const notes: string[] = []
  try {
    if (name === 'softroce') {
      // Port 0: the check must not collide with kernel rxe or a running stack on 4791.
      const provider = create({ address: '127.0.0.1', port: 0 })
      const ctx = await createContext({ provider })
      try {
        const diag = (ctx.device as { diagnostics?: { helper?: string; reason?: string; sendPath?: string; sendPathReason?: string; receivePath?: string; receivePathReason?: string } }).diagnostics
        if (diag?.helper === 'native') notes.push('native socket helper: loaded (IPv4 DF + IP ID 0, IPv6 zero-checksum receive): kernel rxe and NICs accept our packets')
        else if (diag !== undefined) notes.push(`native socket helper: not used. ${diag.reason ?? ''}`.trim())
        if (diag?.sendPath === 'native') notes.push('send path: native sendmsg (per-QP DSCP/ECN and hop limit on the wire)')
        else if (diag?.sendPath === 'dgram') notes.push(`send path: node:dgram (per-QP DSCP/ECN and hop limit not applied). ${diag.sendPathReason ?? ''}`.trim())
        if (diag?.receivePath === 'native') notes.push('receive path: native recvmmsg (a batch of datagrams per system call)')
        else if (diag?.receivePath === 'dgram') notes.push(`receive path: node:dgram (one callback and allocation per datagram). ${diag.receivePathReason ?? ''}`.trim())
        const batched = (diag as { batchedIo?: Parameters<typeof batchedIoNote>[0] } | undefined)?.batchedIo
        if (batched !== undefined) notes.push(batchedIoNote(batched))
        notes.push(sessionEncryptionNote(ctx.capabilities.encryption))
        return { provider: name, packageName, usable: true, detail: `UDP RoCEv2 stack: device ${ctx.info.name} at ${ctx.info.address}:${ctx.info.port}, encryption yes`, remedies: [], notes }
      } finally {
        await ctx.close()
      }
    }
    const { detail, encrypts } = await openAndClose(create())
    notes.push(sessionEncryptionNote(encrypts))
    return { provider: name, packageName, usable: true, detail, remedies: [], notes }
  } catch (err) {
    const d = describeError(err)
    return { provider: name, packageName, usable: false, reason: d.reason, detail: d.summary, remedies: d.remedies.length > 0 ? d.remedies : ['see the error above; `rdma-session doctor --json` has the details'], notes }
  }
}

/** A package's native part; a package that does not import is 'not-installed' or 'missing' (with why). */
async function nativeOf(component: NativeCheck['component'], packageName: string, importer: Importer,
  check: (pkg: string, mod: Record<string, unknown> | undefined) => NativeCheck): Promise<NativeCheck> {
  try {
    return check(packageName, (await importer(packageName)) as Record<string, unknown>)
  } catch (err) {
    if (isNotFound(err, packageName)) return check(packageName, undefined)
    return { package: packageName, component, status: 'missing', detail: `${packageName} does not load: ${describeError(err).summary}` }
  }
}

/** Runs every check; never throws for a failing check (that is what the report is for). */
export async function runDoctor(options: DoctorOptions = {}): Promise<DoctorReport> {
  const paths = options.paths ?? SYSTEM_PATHS
  const importer = options.importer ?? ((s: string) => import(s))
  const devices = listRdmaDevices(paths)
  const system: Check[] = [checkNode(), checkLibibverbs(paths), checkDevices(devices), checkRxe(devices, paths), await checkUdp4791(options.udpPort)]
  const providers: ProviderVerdict[] = []
  for (const name of ['mock', 'softroce', 'verbs'] as const) providers.push(await checkProvider(name, importer))
  const native = [
    await nativeOf('socket-helper', PACKAGES.softroce, importer, softroceNative),
    await nativeOf('verbs-addon', PACKAGES.verbs, importer, verbsNative),
  ]
  system.splice(2, 0, ...nativeSystemChecks(native))
  return { system, devices, providers, native }
}

const MARK = { ok: '✓', warn: '!', fail: '✗' } as const

/** The report as people read it. */
export function formatDoctor(r: DoctorReport): string {
  const out: string[] = ['system']
  const w = Math.max(...r.system.map((c) => c.name.length))
  for (const c of r.system) {
    out.push(`  ${MARK[c.status]} ${c.name.padEnd(w)}  ${c.detail}`)
    if (c.status !== 'ok' && c.remedy !== undefined) out.push(`  ${' '.repeat(w + 2)}  → ${c.remedy}`)
  }
  out.push('', 'providers')
  for (const p of r.providers) {
    out.push(`  ${p.usable ? MARK.ok : MARK.fail} ${p.provider.padEnd(8)}  ${p.usable ? 'usable' : `not usable here (${p.reason})`}: ${p.detail}`)
    for (const n of p.notes) out.push(`  ${' '.repeat(10)}  note: ${n}`)
    for (const m of p.remedies) out.push(`  ${' '.repeat(10)}  → ${m}`)
  }
  const usable = r.providers.filter((p) => p.usable).map((p) => p.provider)
  out.push('', `${usable.length} of ${r.providers.length} providers usable here${usable.length > 0 ? `: ${usable.join(', ')} (RDMA_SESSION_PROVIDER=${usable.at(-1)})` : ''}`, '')
  return out.join('\n')
}

/** The doctor note on softroce's batched socket I/O (UDP GSO / GRO, or what it falls back to and why). */
export function batchedIoNote(b: { send: string; receive: string; sendReason?: string; receiveReason?: string; receiveRuns?: boolean; receiveRunsReason?: string }): string {
  const send = b.send === 'gso' ? 'UDP GSO (sendmmsg of segmented messages)' : b.send === 'sendmmsg' ? `sendmmsg of single datagrams (${b.sendReason ?? 'no UDP GSO'})` : `one sendmsg per datagram (${b.sendReason ?? 'no batching'})`
  const receive = b.receive === 'gro' ? 'UDP GRO (aggregates split by segment size)' : `recvmmsg of single datagrams (${b.receiveReason ?? 'no UDP GRO'})`
  const runs = b.receiveRuns === true ? '; receive runs on' : b.receiveRuns === false ? `; receive runs off (${b.receiveRunsReason ?? 'unavailable'})` : ''
  return `batched I/O: send ${send}; receive ${receive}${runs}`
}
