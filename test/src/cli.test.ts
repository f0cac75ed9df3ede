/** The CLI journey: start, worker, submit (bundled with esbuild) and status, as separate processes. */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { ROOT, startGrid, startProc, type GridProcs } from './harness.js'

let g: GridProcs
before(async () => { g = await startGrid({ workers: 2, executors: 1 }) })
after(async () => { await g?.stop() })

const env = () => ({ COLONY_URL: g.url, COLONY_TOKEN: g.submitToken })

describe('colony submit', () => {
  it('bundles a job, runs it, streams its logs and prints its result', async () => {
    const p = startProc(['submit', join(ROOT, 'client/examples/hello.ts')], { env: env() })
    await p.waitFor(/squared 10 numbers on the grid/, 60_000)
    await p.waitFor(/"sumOfSquares": 385/, 60_000)
    await p.waitFor(/"counter": 3/)
    // The process's exit is captured from its start (Proc.exited): an exit that came before this line is not missed.
    assert.deepEqual(await p.waitExit(), { code: 0, signal: null })
  })

  it('runs nested tasks from a bundle (tree sum of depth 6) with --args', async () => {
    const p = startProc(['submit', join(ROOT, 'client/examples/tree-sum.ts'), '--args', '[6]'], { env: env() })
    await p.waitFor(/^64$/m, 60_000)
    assert.deepEqual(await p.waitExit(), { code: 0, signal: null })
  })

  it('exits non-zero with the remote stack when the job throws', async () => {
    const p = startProc(['submit', join(ROOT, 'test/fixtures/throws.ts')], { env: env() })
    await p.waitFor(/job j_\w+ failed: .*wrong on purpose/, 60_000)
    await p.waitFor(/remote stack:[\s\S]*throws\.ts/)
    assert.deepEqual(await p.waitExit(), { code: 1, signal: null })
  })

  it('says clearly when the file does not bundle', async () => {
    const p = startProc(['submit', join(ROOT, 'test/fixtures/syntax-error.ts')], { env: env() })
    await p.waitFor(/could not bundle .*syntax-error\.ts/)
    assert.deepEqual(await p.waitExit(), { code: 2, signal: null }, 'a usage error, before anything is submitted')
  })
})

describe('colony status', () => {
  it('lists the workers and the jobs', async () => {
    const p = startProc(['status'], { env: env() })
    await p.waitFor(/peers: +2 workers/)
    await p.waitFor(/jobs: +\d+ finished/)
    assert.deepEqual(await p.waitExit(), { code: 0, signal: null })
  })
})
