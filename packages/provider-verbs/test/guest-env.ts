/**
 * What provider-verbs' guest-booting tests share: where the package and the repository are, when
 * a guest test cannot run here (environmentSkip's reason), and the GUEST-RESULT lines the guest
 * side prints, one JSON object a part.
 */
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'
import { hostSupport } from '../../../tools/rxe-vm/index.mjs'
import { environmentSkip } from '../../../tools/test-env.mjs'
import { addonFile } from './addon-file.js'

/** The package directory and the repository root, with a trailing slash. */
export const pkg = fileURLToPath(new URL('..', import.meta.url))
export const repo = fileURLToPath(new URL('../../..', import.meta.url))

/**
 * Why `what` cannot run here (false when it can): RDMA_SESSION_RXE_VM=off, no QEMU/root support, no
 * addon, or a file of `needs` (built packages) missing; `addonNeeds` names the -dev packages.
 * Under CI, a missing environment throws instead (environmentSkip).
 */
export function guestSkip(what: string, needs: readonly string[], addonNeeds: string): string | false {
  const support = hostSupport()
  const off = /^(0|off|false|no)$/i.test(process.env.RDMA_SESSION_RXE_VM ?? '')
  const missing = [...(addonFile(pkg) === undefined ? [`the addon (no build/Release/rdma_verbs.node, no prebuilds/${process.platform}-${process.arch}/)`] : []), ...needs.filter((f) => !existsSync(f))]
  return environmentSkip(what, off ? 'RDMA_SESSION_RXE_VM=off' : !support.ok ? support.reasons.join('; ') : missing.length > 0 ? `not built: ${missing.join(', ')} (pnpm build; the addon needs ${addonNeeds})` : '')
}

/** The guest's GUEST-RESULT lines by part; a line cut by kernel output is left out (the part is then missing). */
export function guestResults<T extends { part: string }>(output: string): Map<string, T> {
  const m = new Map<string, T>()
  for (const line of output.split('\n')) {
    const i = line.indexOf('GUEST-RESULT ')
    if (i < 0) continue
    try {
      const r = JSON.parse(line.slice(i + 13)) as T
      m.set(r.part, r)
    } catch {
      // a console line cut by kernel output: the part is then reported missing
    }
  }
  return m
}

/** The guest's result of part `name`; the test fails when it is missing (showing `consoleTail`) or reports an error. */
export function expectPart<T extends { part: string; error?: string; stack?: string }>(results: Map<string, T>, name: string, consoleTail: string): T {
  const r = results.get(name)
  expect(r, `no ${name} result in the guest output:\n${consoleTail}`).toBeDefined()
  expect(r!.error, `${name} failed in the guest: ${r!.error}\n${r!.stack ?? ''}`).toBeUndefined()
  return r!
}
