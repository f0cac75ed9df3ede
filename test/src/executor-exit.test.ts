/**
 * A Node executor ends when its peer is gone, however it learns of it. Seen in a soak: a peer
 * killed with SIGKILL left an executor spinning a core for ever, reporting a broken stderr on
 * that same stderr. Here the executor is started alone, as its pool would, and loses its stderr.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { ROOT, until } from './harness.js'

const EXECUTOR = join(ROOT, 'worker-web/dist/node/executor-main.js')

describe('a Node executor whose peer is gone', () => {
  it('exits when its stderr breaks, even when what it reports is an error of its own (no spinning orphan)', async () => {
    const child = spawn(process.execPath, [EXECUTOR], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
    try {
      await new Promise<void>((resolve, reject) => {
        child.once('message', () => resolve())
        child.once('exit', (code) => reject(new Error(`the executor exited (${code}) before it started`)))
      })
      // The peer's end of its stderr goes, as when the peer is killed; then the executor meets an
      // error of its own (a message it cannot read), whose report goes to the broken stderr.
      child.stderr!.destroy()
      child.send([null])
      await until(async () => child.exitCode !== null || child.signalCode !== null, 5_000, 'the executor to exit')
    } finally { child.kill('SIGKILL') }
  })

  it('exits when its channel to the peer closes', async () => {
    const child = spawn(process.execPath, [EXECUTOR], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
    try {
      await new Promise<void>((resolve) => child.once('message', () => resolve()))
      child.disconnect()
      await until(async () => child.exitCode !== null, 5_000, 'the executor to exit')
      assert.equal(child.exitCode, 0)
    } finally { child.kill('SIGKILL') }
  })
})
