import { defineConfig } from 'vitest/config'
import { vitestConfig } from '../../vitest.shared.mjs'

// The package's hang limit (tools/vitest-watchdog.mjs): test/perftest-rxe.test.ts runs ~40 perftest
// steps in one TCG guest (with the -D steps of send BW and the latency tests); on a loaded 2-core
// host it went past the default 20 min while still making progress. 35 min still stops a hang
// well inside CI's 60 min test budget.
process.env.RDMA_TEST_WATCHDOG_MIN ??= '35'

export default defineConfig(vitestConfig())
