import { resolveAddonPath } from '../src/native.js'

/**
 * The addon a guest run loads through the shared repo, as the provider itself resolves it:
 * build/Release when built from source, else the prebuilt binary under prebuilds/. undefined
 * when there is neither.
 */
export function addonFile(packageRoot: string): string | undefined {
  try {
    return resolveAddonPath(packageRoot)
  } catch {
    return undefined
  }
}
