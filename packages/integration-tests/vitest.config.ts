import { defineConfig } from 'vitest/config'
import { vitestConfig } from '../../vitest.shared.mjs'

// Files run one at a time: the daemon and namespace tests start processes of their own.
export default defineConfig(vitestConfig({ test: { fileParallelism: false } }))
