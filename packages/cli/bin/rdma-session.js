#!/usr/bin/env node
// The `rdma-session` executable. A committed file rather than dist/bin.js itself: pnpm links a
// workspace package's bins at install time, before dist/ is built, and skips a missing target.
import '../dist/bin.js'
