/** Job code on a Node peer stays in its sandbox: no files outside it, no processes, no secrets. */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { connect, TaskError, type Grid } from '@colony/client'
import { ROOT, startGrid, type GridProcs } from './harness.js'

let g: GridProcs
let grid: Grid

before(async () => {
  g = await startGrid({ workers: 1, executors: 1 })
  grid = await connect(g.url, { token: g.submitToken, onLog: false })
})
after(async () => { await grid?.close(); await g?.stop() })

describe('the Node sandbox', () => {
  it('cannot read the coordinator\'s tokens or any file outside the sandbox', async () => {
    const read = grid.remote(async (path: string) => {
      const fs = await import('node:fs')
      return fs.readFileSync(path, 'utf8')
    })
    for (const path of [join(g.dataDir, 'tokens.json'), '/etc/hostname', join(process.cwd(), 'package.json')]) {
      await assert.rejects(grid.get(read.remote(path)), (e: unknown) => e instanceof TaskError && /ERR_ACCESS_DENIED|denied/i.test(e.message + e.remoteStack), path)
    }
  })

  it('cannot start processes', async () => {
    const run = grid.remote(async () => {
      const cp = await import('node:child_process')
      return cp.execSync('id').toString()
    })
    await assert.rejects(grid.get(run.remote()), (e: unknown) => e instanceof TaskError && /ERR_ACCESS_DENIED|denied/i.test(e.message + e.remoteStack))
  })

  it('never shares an executor with another job: what one job leaves in memory, another cannot see', async () => {
    const other = await connect(g.url, { token: g.submitToken, onLog: false })
    try {
      const leave = grid.remote(() => { (globalThis as Record<string, unknown>).leftBehind = 'job A\'s secret'; return process.pid })
      const look = other.remote(() => [(globalThis as Record<string, unknown>).leftBehind ?? null, process.pid])
      const pidA = await grid.get(leave.remote())
      const [seen, pidB] = await other.get(look.remote())
      assert.equal(seen, null)
      assert.notEqual(pidB, pidA)
      // And back: job A gets an executor of its own again, and the grid goes on.
      assert.equal(await grid.get(grid.remote((x: number) => x + 1).remote(1)), 2)
    } finally { await other.close() }
  })

  it('cannot load a native addon (which the permission model would not confine)', async () => {
    const addon = join(ROOT, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node')
    const load = grid.remote((path: string) => { process.dlopen({ exports: {} } as NodeJS.Module, path); return 'loaded' })
    await assert.rejects(grid.get(load.remote(addon)), (e: unknown) => e instanceof TaskError && /ERR_DLOPEN_DISABLED|ERR_ACCESS_DENIED|not allowed|denied/i.test(e.message + e.remoteStack))
  })

  it('reads the ML runtimes it needs, and nothing else of the machine, through colony.ml', async () => {
    const backends = grid.remote(async () => (globalThis as unknown as { colony: { ml: { backends(): unknown; tf(): Promise<{ getBackend(): string }> } } }).colony.ml.tf().then((tf) => tf.getBackend()))
    assert.equal(await grid.get(backends.remote()), 'wasm')
    const native = grid.remote(async () => (globalThis as unknown as { colony: { ml: { session(m: string, o: object): Promise<unknown> } } }).colony.ml.session('/etc/hostname', { backend: 'native' }))
    await assert.rejects(grid.get(native.remote()), /native backend takes the model's bytes, not a path/)
  })

  it('sees none of the peer\'s environment, so no token', async () => {
    const env = grid.remote(() => JSON.stringify(process.env))
    const seen = await grid.get(env.remote())
    assert.ok(!seen.includes(g.joinToken) && !seen.includes(g.submitToken))
    assert.ok(!/COLONY/.test(seen))
  })

  it('cannot read the peer\'s command line (which holds --token) through /proc', async () => {
    const steal = grid.remote(async () => {
      const fs = await import('node:fs')
      return fs.readFileSync(`/proc/${process.ppid}/cmdline`, 'utf8')
    })
    await assert.rejects(grid.get(steal.remote()), (e: unknown) => e instanceof TaskError && /ERR_ACCESS_DENIED/.test(e.message))
    const argv = grid.remote(() => process.argv.join(' ') + process.execArgv.join(' '))
    const seen = await grid.get(argv.remote())
    assert.ok(!seen.includes(g.joinToken), 'the executor\'s own argv holds no token')
  })
})
