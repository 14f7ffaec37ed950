import { defineConfig } from 'vitest/config'
import { vitestConfig } from '../../vitest.shared.mjs'

// The package's hang limit (tools/vitest-watchdog.mjs): the two guest-booting files take ~12 min
// on a loaded 2-core host (TCG emulation), so 20 min left too little room; 45 min still stops a hang
// well inside CI's 60 min test budget.
process.env.RDMA_TEST_WATCHDOG_MIN ??= '45'

// Host tests only (guest/ holds the suite that runs inside the rxe guest; test/guest.test.ts boots
// it). One file at a time: the two guest-booting files must not run two TCG guests at once.
export default defineConfig(vitestConfig({ test: { include: ['test/**/*.test.ts'], fileParallelism: false } }))
