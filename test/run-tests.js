#!/usr/bin/env node
// Runs every compiled test file with Node's test runner, one file at a time: each
// file starts its own coordinator and peer processes, and this machine has 2 cores.
import { readdirSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const dist = join(dirname(fileURLToPath(import.meta.url)), 'dist')
const only = process.argv.slice(2)
const files = readdirSync(dist)
  .filter((f) => f.endsWith('.test.js'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort()
  .map((f) => join(dist, f))
if (files.length === 0) { console.error('no test files found; run `npx tsc -b` first'); process.exit(1) }
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=180000', '--test-reporter=spec', ...files], { stdio: 'inherit' })
process.exit(r.status ?? 1)
