import { defineConfig } from 'tsup'
import { tsupConfig } from '../../tsup.shared.mjs'

export default defineConfig(tsupConfig())
