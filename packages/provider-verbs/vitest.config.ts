import { defineConfig } from 'vitest/config'
import { vitestConfig } from '../../vitest.shared.mjs'

// Host tests only; guest/ holds the suite that runs inside the rxe guest (test/guest.test.ts boots it).
export default defineConfig(vitestConfig({ test: { include: ['test/**/*.test.ts'] } }))
