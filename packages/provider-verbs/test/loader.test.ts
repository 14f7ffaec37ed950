/**
 * Host tests (no RDMA here): every way loading the verbs provider can fail gives one error with a
 * stable code and what to do; importing the package never loads anything native.
 */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { createContext, isRdmaError, loadProvider } from '@rdma-session/core'
import { AddonMissingError, NoDeviceError, addonStatus, createCm, describeStatus, classifyLoadError, resolveAddonPath, verbs, type AddonMissingReason, type NoDeviceReason } from '../src/index.js'
import { fakeBinding } from './fake-binding.js'
import { environmentSkip } from '../../../tools/test-env.mjs'

function realAddonPath(): string {
  try {
    return resolveAddonPath()
  } catch {
    return ''
  }
}
const realAddon = realAddonPath()
const hostHasRdma = existsSync('/sys/class/infiniband_verbs')
const realAddonMissing = environmentSkip('provider-verbs real addon', realAddon !== '' ? null : 'the addon is neither built nor prebuilt (apt-get install libibverbs-dev, then pnpm build)')

function catchError(fn: () => unknown): Error & { code?: string; details?: Record<string, unknown> } {
  try {
    fn()
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('expected an error')
}

function expectAddonMissing(err: unknown, reason: AddonMissingReason, ...mentions: string[]): void {
  expect(err).toBeInstanceOf(AddonMissingError)
  const e = err as AddonMissingError
  expect(e.code).toBe('ERR_ADDON_MISSING')
  expect(e.reason).toBe(reason)
  expect(isRdmaError(e)).toBe(true)
  expect(e.message).toContain('Possible solutions:')
  expect(e.message).toContain('provider-softroce')
  for (const m of mentions) expect(e.message).toContain(m)
  expect(e.details.solutions).toEqual(e.solutions)
}

function expectNoDevice(err: unknown, reason: NoDeviceReason, ...mentions: string[]): void {
  expect(err).toBeInstanceOf(NoDeviceError)
  const e = err as NoDeviceError
  expect(e.code).toBe('ERR_NO_DEVICE')
  expect(e.reason).toBe(reason)
  expect(isRdmaError(e)).toBe(true)
  expect(e.message).toContain('Possible solutions:')
  expect(e.message).toContain('rdma link add rxe0 type rxe netdev eth0')
  expect(e.message).toContain('provider-softroce')
  for (const m of mentions) expect(e.message).toContain(m)
}

describe('importing and constructing', () => {
  it('importing the package loads nothing native, and verbs() does not either', async () => {
    let loads = 0
    const mod = await import('../src/index.js')
    const p = mod.verbs({ addon: () => { loads++; throw new Error('should not load yet') } })
    expect(p.name).toBe('verbs')
    expect(loads).toBe(0)
  })

  it('bad options fail at once with ERR_INVALID_ARGUMENT', () => {
    expect(catchError(() => verbs({ port: 4792 })).code).toBe('ERR_INVALID_ARGUMENT')
    expect(catchError(() => verbs({ gidType: 'roce-v1' as 'roce-v2' })).code).toBe('ERR_INVALID_ARGUMENT')
  })
})

describe('addon missing: ERR_ADDON_MISSING with what to do', () => {
  it('not built (no .node file)', () => {
    const err = catchError(() => verbs({ addon: '/nonexistent/rdma_verbs.node' }).capabilities)
    expectAddonMissing(err, 'not-built', 'apt-get install -y libibverbs-dev', 'build:addon')
  })

  it("not built, as node-gyp-build reports it", () => {
    const err = catchError(() => verbs({ addon: () => { throw new Error('No native build was found for platform=linux arch=x64 runtime=node abi=115 uv=1 libc=glibc node=20.20.2') } }).capabilities)
    expectAddonMissing(err, 'not-built', 'libibverbs-dev')
  })

  it('libibverbs itself missing (the dynamic linker cannot find libibverbs.so.1)', () => {
    const err = catchError(() => verbs({ addon: () => { throw new Error('/x/build/Release/rdma_verbs.node: libibverbs.so.1: cannot open shared object file: No such file or directory') } }).capabilities)
    expectAddonMissing(err, 'libibverbs-missing', 'apt-get install -y libibverbs1 ibverbs-providers rdma-core')
    expect((err as AddonMissingError).cause).toBeInstanceOf(Error)
  })

  it('built for another Node.js (or otherwise broken)', () => {
    const err = catchError(() => verbs({ addon: () => { throw new Error('The module was compiled against a different Node.js version using NODE_MODULE_VERSION 108') } }).capabilities)
    expectAddonMissing(err, 'load-failed', 'rebuild it for this Node.js')
  })

  it('a module that is not the rdma_verbs addon', () => {
    expectAddonMissing(catchError(() => verbs({ addon: () => ({ hello: 1 }) }).capabilities), 'load-failed')
  })

  it('not Linux', () => {
    expectAddonMissing(classifyLoadError(new Error('whatever'), 'darwin'), 'platform', 'Linux-only')
  })

  it('createContext rejects with the same error (the first use), and so does loading by name', async () => {
    await expect(createContext({ provider: verbs({ addon: '/nonexistent/rdma_verbs.node' }) })).rejects.toMatchObject({ code: 'ERR_ADDON_MISSING' })
    const importer = (s: string): Promise<unknown> => import(s === '@rdma-session/provider-verbs' ? '../src/index.js' : s)
    await expect(loadProvider('verbs', { addon: '/nonexistent/rdma_verbs.node' }, importer)).rejects.toMatchObject({ code: 'ERR_ADDON_MISSING', reason: 'not-built' })
  })
})

describe('libibverbs present, no usable device: ERR_NO_DEVICE with what to do', () => {
  it('the kernel has no verbs support (ibv_get_device_list: ENOSYS)', () => {
    expectNoDevice(catchError(() => verbs({ addon: () => fakeBinding('ENOSYS') }).capabilities), 'no-kernel-support', 'modprobe ib_uverbs rdma_rxe')
  })

  it('no devices', () => {
    expectNoDevice(catchError(() => verbs({ addon: () => fakeBinding([]) }).devices()), 'no-devices')
    expectNoDevice(catchError(() => verbs({ addon: () => fakeBinding([]) }).capabilities), 'no-devices')
  })

  it('the named device does not exist', () => {
    const err = catchError(() => verbs({ device: 'mlx5_0', addon: () => fakeBinding([{ name: 'rxe0', gids: [{ index: 1, address: '10.0.2.15' }] }]) }).capabilities)
    expectNoDevice(err, 'device-not-found', "'mlx5_0'", 'rxe0')
  })

  it('no ACTIVE port', () => {
    const err = catchError(() => verbs({ addon: () => fakeBinding([{ name: 'rxe0', portState: 'PORT_DOWN', gids: [{ index: 1, address: '10.0.2.15' }] }]) }).capabilities)
    expectNoDevice(err, 'no-active-port', 'ip link set', 'PORT_DOWN')
  })

  it('no RoCEv2 GID (interface without an address)', () => {
    const err = catchError(() => verbs({ addon: () => fakeBinding([{ name: 'rxe0', gids: [{ index: 0, address: 'fe80::1', type: 'roce-v1' }] }]) }).capabilities)
    expectNoDevice(err, 'no-roce-gid', 'ip addr add')
  })

  it.skipIf(Boolean(realAddonMissing) || hostHasRdma)('the real addon on this host (no RDMA in the kernel) reports ERR_NO_DEVICE', () => {
    const p = verbs({ addon: realAddon })
    expectNoDevice(catchError(() => p.capabilities), 'no-kernel-support')
    expect(p.binding.listDevices).toBeTypeOf('function')
  })
})

describe('libibverbs is opened at run time, not linked: the addon loads without it', () => {
  it('an addon whose libibverbs() says it did not load: ERR_ADDON_MISSING libibverbs-missing, naming the file and the package to install', () => {
    const missing = { loaded: false, file: '/opt/x/libibverbs.so.1', error: '/opt/x/libibverbs.so.1: cannot open shared object file' }
    const err = catchError(() => verbs({ addon: () => ({ ...fakeBinding([]), libibverbs: () => missing }) }).capabilities)
    expectAddonMissing(err, 'libibverbs-missing', 'the native addon loaded, but libibverbs (rdma-core) did not', '/opt/x/libibverbs.so.1', 'apt-get install -y libibverbs1')
    expect(addonStatus(() => ({ ...fakeBinding([]), libibverbs: () => missing }))).toEqual({ addon: 'loaded', origin: 'custom', libibverbs: missing, reason: 'libibverbs-missing', message: `libibverbs did not load: ${missing.error}` })
  })

  it('addonStatus: a missing addon is "missing" with the reason, not a throw', () => {
    expect(addonStatus('/nonexistent/rdma_verbs.node')).toMatchObject({ addon: 'missing', reason: 'not-built', message: expect.stringContaining('no prebuilt binary for this platform') })
  })

  it.skipIf(Boolean(realAddonMissing))('the real addon: loads, says where it came from, opens libibverbs on this host', () => {
    const s = addonStatus()
    expect(s.addon).toBe('loaded')
    expect(s.path).toBe(realAddon)
    expect(s.origin).toBe(realAddon.includes('/prebuilds/') ? 'prebuilt' : 'built-from-source')
    expect(s.libibverbs).toMatchObject({ file: 'libibverbs.so.1' })
  })

  it.skipIf(Boolean(realAddonMissing) || spawnSync('readelf', ['--version']).status !== 0)('the real addon has no DT_NEEDED on libibverbs and exports only the Node-API entry points of C linkage', () => {
    const dynamic = spawnSync('readelf', ['-d', '--dyn-syms', '-W', realAddon], { encoding: 'utf8' }).stdout
    const needed = [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1])
    expect(needed.length).toBeGreaterThan(0)
    expect(needed.filter((n) => n?.includes('ibverbs') || n?.includes('rdmacm'))).toEqual([])
    // no ibv_* or rdma_* symbol is exported (the forwarders are hidden) or imported (nothing links libibverbs or librdmacm)
    expect(dynamic.split('\n').filter((l) => /\sibv_|\s_ibv_|\srdma_/.test(l))).toEqual([])
  })

  it.skipIf(Boolean(realAddonMissing))('in a process where libibverbs cannot be opened (RDMA_SESSION_LIBIBVERBS=/nonexistent/…), the real addon still loads and says why', () => {
    const script = `const b = require(${JSON.stringify(realAddon)}); const s = b.libibverbs(); let code = null
      try { b.listDevices() } catch (e) { code = e.code }
      try { new b.Device('rxe0') } catch (e) { code += ',' + e.code }
      console.log(JSON.stringify({ s, code }))`
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, RDMA_SESSION_LIBIBVERBS: '/nonexistent/libibverbs.so.1' } })
    expect(r.stderr).toBe('')
    const out = JSON.parse(r.stdout) as { s: { loaded: boolean; file: string; error: string }; code: string }
    expect(out.s).toEqual({ loaded: false, file: '/nonexistent/libibverbs.so.1', error: expect.stringContaining('cannot open shared object file') })
    expect(out.code).toBe('ERR_LIBIBVERBS_MISSING,ERR_LIBIBVERBS_MISSING')
  })

  it.skipIf(Boolean(realAddonMissing))('in a process where librdmacm cannot be opened (RDMA_SESSION_LIBRDMACM=/nonexistent/…), the addon loads and only the connection manager fails, with ERR_LIBRDMACM_MISSING', () => {
    const script = `const b = require(${JSON.stringify(realAddon)}); const s = b.librdmacm(); let err = null
      try { new b.CmChannel(() => {}) } catch (e) { err = { code: e.code, message: e.message } }
      console.log(JSON.stringify({ s, err, verbs: typeof b.listDevices }))`
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, RDMA_SESSION_LIBRDMACM: '/nonexistent/librdmacm.so.1' } })
    expect(r.stderr).toBe('')
    const out = JSON.parse(r.stdout) as { s: { loaded: boolean; file: string; error: string }; err: { code: string; message: string }; verbs: string }
    expect(out.s).toEqual({ loaded: false, file: '/nonexistent/librdmacm.so.1', error: expect.stringContaining('cannot open shared object file') })
    expect(out.err.code).toBe('ERR_LIBRDMACM_MISSING')
    expect(out.err.message).toContain('apt-get install librdmacm1')
    expect(out.verbs).toBe('function')
  })
})

describe('createCm', () => {
  it('refuses a context that is not on a verbs device, in words', () => {
    const ctx = { provider: { name: 'softroce' }, device: {} } as unknown as Parameters<typeof createCm>[0]
    const err = catchError(() => createCm(ctx))
    expect(err.code).toBe('ERR_INVALID_ARGUMENT')
    expect(err.message).toBe('createCm needs a context on a verbs device, got provider softroce')
  })

  it('an addon without the rdma_cm binding gives ERR_ADDON_MISSING with what to do', () => {
    const ctx = { provider: { name: 'verbs' }, device: { binding: {} } } as unknown as Parameters<typeof createCm>[0]
    const err = catchError(() => createCm(ctx))
    expect(err.code).toBe('ERR_ADDON_MISSING')
    expect(err.message).toContain('build:addon')
  })

  it('describes rdma_cm statuses in words: REJ reasons for REJECTED, errno names otherwise', () => {
    expect(describeStatus('RDMA_CM_EVENT_REJECTED', 28)).toBe('status 28 (consumer defined (the application rejected it))')
    expect(describeStatus('RDMA_CM_EVENT_REJECTED', 8)).toBe('status 8 (invalid service ID (nobody listens on that port))')
    expect(describeStatus('RDMA_CM_EVENT_UNREACHABLE', -110)).toBe('status -110 (ETIMEDOUT)')
    expect(describeStatus('RDMA_CM_EVENT_ADDR_ERROR', -113)).toBe('status -113 (EHOSTUNREACH)')
  })
})
