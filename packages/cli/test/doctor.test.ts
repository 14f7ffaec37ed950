import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { SPECIFICATION_VERSION } from '@rdma-session/core'
import { MOCK_CAPABILITIES } from '@rdma-session/provider-mock'
import { formatDoctor, runDoctor, sessionEncryptionNote } from '../src/doctor/diagnose.js'
import { checkDevices, checkNode, checkRxe, checkUdp4791, listRdmaDevices, type SystemPaths } from '../src/doctor/system-checks.js'

/** A fake /sys with one rxe device: port 1 ACTIVE, a RoCE v2 GID and a zero GID. */
function fakeSys(): SystemPaths {
  const root = mkdtempSync(join(tmpdir(), 'doctor-sys-'))
  const port = join(root, 'infiniband', 'rxe0', 'ports', '1')
  mkdirSync(join(port, 'gids'), { recursive: true })
  mkdirSync(join(port, 'gid_attrs', 'types'), { recursive: true })
  writeFileSync(join(port, 'state'), '4: ACTIVE\n')
  writeFileSync(join(port, 'gids', '0'), 'fe80:0000:0000:0000:0000:0000:0000:0001\n')
  writeFileSync(join(port, 'gid_attrs', 'types', '0'), 'IB/RoCE v1\n')
  writeFileSync(join(port, 'gids', '1'), '0000:0000:0000:0000:0000:ffff:0a00:0002\n')
  writeFileSync(join(port, 'gid_attrs', 'types', '1'), 'RoCE v2\n')
  writeFileSync(join(port, 'gids', '2'), '0000:0000:0000:0000:0000:0000:0000:0000\n')
  mkdirSync(join(root, 'module', 'rdma_rxe'), { recursive: true })
  return { infiniband: join(root, 'infiniband'), modules: join(root, 'module'), libDirs: [] }
}

describe('doctor system checks', () => {
  it('reads devices, port states and non-zero GIDs with their types from sysfs', () => {
    const devices = listRdmaDevices(fakeSys())
    expect(devices).toEqual([{ name: 'rxe0', ports: [{ port: 1, state: 'ACTIVE', gids: [{ index: 0, gid: 'fe80:0000:0000:0000:0000:0000:0000:0001', type: 'IB/RoCE v1' }, { index: 1, gid: '0000:0000:0000:0000:0000:ffff:0a00:0002', type: 'RoCE v2' }] }] }])
    expect(checkDevices(devices)).toMatchObject({ status: 'ok' })
    expect(checkDevices(devices).detail).toContain('1=0000:0000:0000:0000:0000:ffff:0a00:0002 (RoCE v2)')
    expect(checkRxe(devices, fakeSys())).toMatchObject({ status: 'ok', detail: expect.stringContaining('rxe0') })
  })

  it('says what to do when there is no device, no RoCE v2 GID, no rxe, or an old Node', () => {
    const none = { infiniband: '/nonexistent/ib', modules: '/nonexistent/mod', libDirs: [] }
    expect(checkDevices([])).toMatchObject({ status: 'warn', remedy: expect.stringContaining('rdma link add rxe0 type rxe') })
    expect(checkDevices([{ name: 'mlx5_0', ports: [{ port: 1, state: 'DOWN', gids: [] }] }])).toMatchObject({ status: 'warn', remedy: expect.stringContaining('GIDs follow the addresses') })
    expect(checkRxe([], none)).toMatchObject({ status: 'warn', remedy: expect.stringContaining('modprobe rdma_rxe') })
    expect(checkNode('v18.19.0')).toMatchObject({ status: 'fail', remedy: expect.stringContaining('Node 20') })
    expect(checkNode('v20.20.2').status).toBe('ok')
  })

  it('reports a UDP port held by another stack, with the way around it', async () => {
    const { createSocket } = await import('node:dgram')
    const holder = createSocket('udp4')
    await new Promise<void>((r) => holder.bind({ port: 0, address: '127.0.0.1', exclusive: true }, r))
    try {
      const busy = await checkUdp4791(holder.address().port)
      expect(busy).toMatchObject({ status: 'warn', detail: expect.stringContaining('in use'), remedy: expect.stringContaining('port: 0') })
    } finally {
      holder.close()
    }
    // A port the kernel just gave out as free (a random one in 20000-40000 could be any other process's, a parallel test's too).
    const probe = createSocket('udp4')
    await new Promise<void>((r) => probe.bind({ port: 0, address: '127.0.0.1', exclusive: true }, r))
    const port = probe.address().port
    await new Promise<void>((r) => probe.close(() => r()))
    expect(await checkUdp4791(port)).toMatchObject({ status: 'ok', detail: `bound 127.0.0.1:${port} and received a datagram sent to it` })
  })
})

describe('doctor provider verdicts', () => {
  it('mock and softroce are usable here; verbs gets a verdict with remedies either way', async () => {
    const report = await runDoctor({ udpPort: 20000 + Math.floor(Math.random() * 20000) })
    const by = Object.fromEntries(report.providers.map((p) => [p.provider, p]))
    expect(by.mock).toMatchObject({ usable: true })
    expect(by.softroce).toMatchObject({ usable: true, detail: expect.stringMatching(/UDP RoCEv2 stack: device \S+ at 127\.0\.0\.1:\d+/) })
    expect(by.softroce!.notes.join(' ')).toMatch(/native socket helper: (loaded|not used)/)
    expect(by.softroce!.notes.join(' ')).toMatch(/send path: (native sendmsg|node:dgram)/)
    // Which encryption a session gets by default, per provider.
    for (const p of [by.mock!, by.softroce!]) expect(p.notes, p.provider).toContain(sessionEncryptionNote(true))
    expect(sessionEncryptionNote(true)).toMatch(/encrypted by default \(aes-256-gcm/)
    expect(sessionEncryptionNote(false)).toMatch(/ERR_ENCRYPTION_UNSUPPORTED.*'none'.*'preferred'/)
    if (by.verbs!.usable) expect(by.verbs!.notes).toContain(sessionEncryptionNote(false))
    if (by.verbs!.usable) expect(by.verbs!.detail).toMatch(/device \S+ at /)
    else {
      expect(by.verbs!.reason).toMatch(/^(ERR_NO_DEVICE|ERR_ADDON_MISSING|not-installed)$/)
      expect(by.verbs!.remedies.length).toBeGreaterThan(0)
    }
    const text = formatDoctor(report)
    expect(text).toMatch(/^system\n/)
    expect(text).toMatch(/✓ mock +usable/)
    expect(text).toMatch(/providers usable here: mock, softroce/)
  })

  it('a provider package that is not installed gets the install command; one that fails to open gets its own solutions', async () => {
    const importer = async (spec: string): Promise<unknown> => {
      if (spec.endsWith('provider-verbs')) throw Object.assign(new Error(`Cannot find package '${spec}' imported from x`), { code: 'ERR_MODULE_NOT_FOUND' })
      if (spec.endsWith('provider-softroce')) {
        return { createProvider: () => ({ name: 'softroce', specificationVersion: SPECIFICATION_VERSION, capabilities: MOCK_CAPABILITIES, openDevice: async () => { throw Object.assign(new Error('no UDP for you\nmore'), { code: 'ERR_NO_SOCKET', solutions: ['open the firewall'] }) } }) }
      }
      return import(spec)
    }
    const report = await runDoctor({ importer, udpPort: 20000 + Math.floor(Math.random() * 20000) })
    const by = Object.fromEntries(report.providers.map((p) => [p.provider, p]))
    expect(by.verbs).toMatchObject({ usable: false, reason: 'not-installed', remedies: [expect.stringContaining('npm install @rdma-session/provider-verbs')] })
    expect(by.softroce).toMatchObject({ usable: false, reason: 'ERR_NO_SOCKET', detail: 'no UDP for you', remedies: ['open the firewall'] })
    expect(report.system.find((c) => c.name === 'verbs addon')).toMatchObject({ status: 'warn' })
    expect(formatDoctor(report)).toContain('1 of 3 providers usable here: mock')
  })
})

describe('doctor: the native parts (softroce helper, verbs addon)', () => {
  const port = (): number => 20000 + Math.floor(Math.random() * 20000)

  it('in this workspace both load, from a prebuilt binary or a local build, and the verbs verdict tells "no device" from "no addon"', async () => {
    const report = await runDoctor({ udpPort: port() })
    const [helper, addon] = report.native
    expect(helper).toMatchObject({ package: '@rdma-session/provider-softroce', component: 'socket-helper', status: 'loaded', origin: expect.stringMatching(/^(prebuilt|built-from-source)$/), path: expect.stringMatching(/\.node$/) })
    expect(addon).toMatchObject({ package: '@rdma-session/provider-verbs', component: 'verbs-addon', status: 'loaded', libibverbs: 'loaded', origin: expect.stringMatching(/^(prebuilt|built-from-source)$/) })
    const verbs = report.providers.find((p) => p.provider === 'verbs')!
    // Without RDMA in the kernel the addon loads and the verdict is ERR_NO_DEVICE, never ERR_ADDON_MISSING.
    if (!verbs.usable) expect(verbs.reason).toBe('ERR_NO_DEVICE')
    expect(report.system.find((c) => c.name === 'softroce helper')).toMatchObject({ status: 'ok', detail: expect.stringContaining('native send and receive paths') })
    expect(helper!.detail).toContain('; receive runs (WRITE/SEND packets checked and placed by the helper)')
    expect(report.system.find((c) => c.name === 'verbs addon')).toMatchObject({ status: 'ok', detail: expect.stringMatching(/^loaded \((prebuilt binary|built from source)\); libibverbs loaded$/) })
  })

  it('addon loaded without libibverbs is a warning naming libibverbs; an addon that does not load fails; a helper that does not load says why', async () => {
    const verbsMod = (status: unknown) => ({ createProvider: () => { throw Object.assign(new Error('x'), { code: 'ERR_ADDON_MISSING' }) }, addonStatus: () => status })
    const softMod = { createProvider: () => { throw new Error('unused') }, nativeHelperStatus: () => ({ helper: 'missing', sendPath: false, receivePath: false, why: 'it is not built and there is no prebuilt binary for linux-arm64-musl' }) }
    const run = (status: unknown) => runDoctor({ udpPort: port(), importer: async (s) => (s.endsWith('provider-verbs') ? verbsMod(status) : s.endsWith('provider-softroce') ? softMod : import(s)) })

    const noLib = await run({ addon: 'loaded', origin: 'prebuilt', path: '/p/x.node', libibverbs: { loaded: false, file: 'libibverbs.so.1', error: 'libibverbs.so.1: cannot open shared object file' } })
    expect(noLib.native[1]).toEqual({ package: '@rdma-session/provider-verbs', component: 'verbs-addon', status: 'loaded', origin: 'prebuilt', path: '/p/x.node', libibverbs: 'missing', detail: 'loaded (prebuilt binary); libibverbs did not load (libibverbs.so.1: cannot open shared object file)' })
    expect(noLib.system.find((c) => c.name === 'verbs addon')).toMatchObject({ status: 'warn', remedy: expect.stringContaining('libibverbs1') })
    expect(noLib.native[0]).toMatchObject({ status: 'missing', detail: expect.stringContaining('no prebuilt binary for linux-arm64-musl') })
    expect(noLib.system.find((c) => c.name === 'softroce helper')).toMatchObject({ status: 'warn' })

    const missing = await run({ addon: 'missing', reason: 'not-built', message: 'provider-verbs: the native addon is missing: no prebuilt binary for this platform and no local build' })
    expect(missing.native[1]).toMatchObject({ status: 'missing', detail: expect.stringContaining('no prebuilt binary') })
    expect(missing.system.find((c) => c.name === 'verbs addon')).toMatchObject({ status: 'fail' })
    expect(formatDoctor(missing)).toMatch(/✗ verbs addon +missing: provider-verbs: the native addon is missing/)
  })
})
