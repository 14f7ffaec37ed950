/** The command table: one file per command in this folder, listed here in help order. */
import type { Command } from '../command.js'
import { benchCommand } from './bench.js'
import { captureCommand } from './capture.js'
import { daemonCommand } from './daemon.js'
import { doctorCommand } from './doctor.js'
import { perftestCommand } from './perftest.js'
import { pingpongCommand } from './pingpong.js'
import { sessionsCommand } from './sessions.js'

export const COMMANDS: readonly Command[] = [doctorCommand, benchCommand, captureCommand, daemonCommand, sessionsCommand, pingpongCommand, perftestCommand]
