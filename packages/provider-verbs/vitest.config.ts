import { defineConfig } from 'vitest/config'
import { vitestConfig } from '../../vitest.shared.mjs'

// Host tests only (guest/ holds the suite that runs inside the rxe guest; test/guest.test.ts boots
// it). One file at a time: the two guest-booting files must not run two TCG guests at once.
export default defineConfig(vitestConfig({ test: { include: ['test/**/*.test.ts'], fileParallelism: false } }))
