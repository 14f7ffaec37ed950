#!/usr/bin/env node
/** The `rdma-session` executable. */
import { main } from './dispatcher.js'

main(process.argv.slice(2)).then((code) => process.exit(code))
