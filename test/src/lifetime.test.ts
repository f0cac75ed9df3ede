/** Object lifetime: free, pins for tasks that still need an object, garbage-collected refs, job end, and the per-peer cap. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { connect, ObjectLostError, TaskError, type Grid } from '@colony-grid/client'
import { api, until, withGrid, type GridProcs } from './harness.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

const MB = 1024 * 1024
type PeerRow = { id: string; objects: number; bytesHeld: number }

async function held(g: GridProcs, peer: string): Promise<number> {
  return (await api<PeerRow[]>(g, '/api/peers')).body.find((p) => p.id === peer)?.bytesHeld ?? -1
}
const makeFn = (grid: Grid) => grid.remote(function make(n: number) { return new Uint8Array(n).fill(5) })

describe('object lifetime', () => {
  it('free drops the bytes on the holder; a later get says the object was freed', async () => {
    await withGrid({ workers: 1, memory: true }, async (g, grid) => {
      const ref = makeFn(grid).remote(MB)
      await grid.wait([ref])
      assert.ok(await held(g, g.workerIds[0]) >= MB)
      grid.free(ref)
      await until(async () => (await held(g, g.workerIds[0])) === 0, 10_000, 'the holder drops the bytes')
      await assert.rejects(grid.get(ref), (e: unknown) => e instanceof ObjectLostError && /freed/.test(e.message))
    })
  })

  it('keeps a freed object for the queued tasks that need it, then drops it', async () => {
    await withGrid({ workers: 1, memory: true }, async (g, grid) => {
      const sleep = grid.remote((ms: number) => new Promise((r) => setTimeout(() => r(ms), ms)))
      const len = grid.remote(function len(b: Uint8Array) { return b.length })
      const ref = makeFn(grid).remote(MB)
      await grid.wait([ref])
      const busy = Array.from({ length: 4 }, () => sleep.remote(300)) // the executor is taken for a while
      const later = len.remote(ref)
      grid.free(ref)
      assert.equal(await grid.get(later, { timeoutMs: 20_000 }), MB)
      await grid.get(busy)
      await until(async () => (await held(g, g.workerIds[0])) === 0, 10_000, 'dropped once no task needs it')
    })
  })

  it('frees objects whose refs the driver dropped (garbage collection), but not refs passed to tasks', async () => {
    await withGrid({ workers: 1, memory: true }, async (g, grid) => {
      const make = makeFn(grid)
      const len = grid.remote(function len(b: Uint8Array) { return b.length })
      const kept = make.remote(MB)
      const passed = make.remote(MB)
      assert.equal(await grid.get(len.remote(passed)), MB)
      await (async () => { for (let i = 0; i < 4; i++) await grid.wait([make.remote(MB)]) })() // refs dropped at once
      assert.ok(await held(g, g.workerIds[0]) >= 6 * MB)
      // Only `kept` and `passed` (1 MB each, plus a few bytes of framing) remain.
      let last = 0
      await until(async () => { gc(); await new Promise((r) => setTimeout(r, 20)); last = await held(g, g.workerIds[0]); return last < 3 * MB }, 20_000,
        'the four dropped objects are freed').catch((e: Error) => { throw new Error(`${e.message}; the peer still holds ${last} bytes`) })
      assert.equal((await grid.get(kept)).length, MB) // still here: its ref is alive
    })
  })

  it('fails, not hangs, when a lost result must be rebuilt from an input that was freed', async () => {
    await withGrid({ workers: 2, memory: true }, async (g, grid) => {
      const x = grid.put(new Uint8Array(200_000).fill(1))
      const double = grid.remote(function double(b: Uint8Array) { return b.map((v) => v * 2) })
      const y = double.remote(x)
      await grid.wait([y])
      grid.free(x)
      const maker = (await api<{ items: { name: string; peer?: string }[] }>(g, `/api/jobs/${grid.jobId}/tasks?limit=10000`)).body.items.find((t) => t.name === 'double')!.peer!
      await g.workers[g.workerIds.indexOf(maker)].kill('SIGKILL')
      await assert.rejects(grid.get(y, { timeoutMs: 20_000 }), (e: unknown) => e instanceof ObjectLostError && /freed/.test(e.message))
    })
  })

  it('frees a job\'s objects when its driver closes', async () => {
    await withGrid({ workers: 1, memory: true }, async (g) => {
      const other = await connect(g.url, { token: g.submitToken, onLog: false })
      const ref = makeFn(other).remote(2 * MB)
      await other.wait([ref])
      assert.ok(await held(g, g.workerIds[0]) >= 2 * MB)
      await other.close()
      await until(async () => (await held(g, g.workerIds[0])) === 0, 10_000, 'the closed job\'s objects are dropped')
    })
  })

  it('evicts the least recently used copies past a peer\'s cap, and says clearly when an object fits nowhere', async () => {
    await withGrid({ workers: 0, memory: true }, async (g, grid) => {
      await g.addWorker(1, ['--capabilities', 'a'])
      await g.addWorker(1, ['--capabilities', 'b', '--store-mb', '3'])
      const reader = g.workerIds[1]
      const make = grid.remote(function make(n: number, v: number) { return new Uint8Array(n).fill(v) }, { capabilities: ['a'] })
      const first = grid.remote(function first(b: Uint8Array) { return b[0] }, { capabilities: ['b'] })
      const x = make.remote(2 * MB, 1)
      const y = make.remote(2 * MB, 2)
      assert.equal(await grid.get(first.remote(x)), 1)
      assert.ok(await held(g, reader) >= 2 * MB)
      assert.equal(await grid.get(first.remote(y)), 2) // x's copy is evicted to make room
      const b = await held(g, reader)
      assert.ok(b >= 2 * MB && b < 4 * MB, `reader holds ${b} bytes`)
      assert.equal(await grid.get(first.remote(x)), 1) // fetched again from its maker
      const tooBig = grid.remote(function tooBig() { return new Uint8Array(4 * 1024 * 1024) }, { capabilities: ['b'] })
      await assert.rejects(grid.get(tooBig.remote()), (e: unknown) => e instanceof TaskError && /objectStoreBytes|does not fit/.test(e.message))
    })
  })
})
