/** @rdma-session/cli: the `rdma-session` command line. Each command is one module under commands/. */
export { main, helpText } from './dispatcher.js'
export { COMMANDS } from './commands/index.js'
export { UsageError, processIo, type Command, type CommandIo } from './command.js'
export { defaultDaemonDir, defaultSocketPath, daemonPaths, readToken, loadOrCreateToken } from './daemon-paths.js'
export { runDoctor, formatDoctor, type DoctorReport, type ProviderVerdict, type Check } from './doctor/diagnose.js'
export { runBench, formatBench, type BenchOptions, type BenchReport } from './bench/run-bench.js'
export { runCapture, countPcapRecords, type CaptureOptions, type CaptureResult } from './capture/run-capture.js'
