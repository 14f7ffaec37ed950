import { defineConfig } from 'vitest/config'
import { packageDefines } from '../../tsup.shared.mjs'
import { vitestConfig } from '../../vitest.shared.mjs'

// The build-time constants (core's version) as the built package has them.
export default defineConfig(vitestConfig({ define: packageDefines() }))
