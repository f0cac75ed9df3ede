#!/usr/bin/env node
// Runs every compiled test file with Node's test runner, one file at a time (each file
// starts its own coordinator and peer processes, and this machine has 2 cores), then the
// browser tests (Playwright, Debian's chromium, in a private network namespace).
// `node test/run-tests.js core` runs only the Node files whose names match; `browser` only those.
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
if (files.length === 0 && !(only.length === 1 && only[0] === 'browser')) { console.error('no test files found; run `npm run build` first'); process.exit(1) }
const browserOnly = only.length === 1 && only[0] === 'browser'
let status = 0
if (!browserOnly) {
  // 5 minutes a file: the longest, the demo's convnet trained on 2 peers, takes about 2.5 here.
  const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=300000', '--test-reporter=spec', ...files], { stdio: 'inherit' })
  status = r.status ?? 1
}
if (only.length === 0 || browserOnly) {
  const b = spawnSync('bash', [join(dirname(fileURLToPath(import.meta.url)), 'run-browser-tests.sh')], { stdio: 'inherit' })
  status ||= b.status ?? 1
}
process.exit(status)
