/** Peers and the coordinator killed with SIGKILL mid-job: the job still gives the right answer, once. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { Grid, ObjectRef } from '@colony-grid/client'

declare const colony: { grid: Grid }
import { api, metric, startGrid, withGrid } from './harness.js'

const N = 300
const expected = (N * (N - 1))

describe('a Node peer killed with SIGKILL mid-job', () => {
  it('re-runs its tasks elsewhere; the result is right and no task is recorded twice', async () => {
    await withGrid({ workers: 2, executors: 1, memory: true }, async (g, grid) => {
      const work = grid.remote((i: number) => new Promise<number>((r) => setTimeout(() => r(i * 2), 15)))
      const refs = Array.from({ length: N }, (_, i) => work.remote(i))
      await grid.wait(refs, { numReturns: N / 5, timeoutMs: 30_000 })
      await g.workers[0].kill('SIGKILL')
      const values = await grid.get(refs, { timeoutMs: 60_000 })
      assert.equal(values.reduce((a, b) => a + b, 0), expected)
      const tasks = (await api<{ items: { state: string; attempts: number; peer?: string }[] }>(g, `/api/jobs/${grid.jobId}/tasks?limit=10000`)).body.items
      assert.equal(tasks.length, N)
      assert.ok(tasks.every((t) => t.state === 'finished'))
      assert.ok(tasks.some((t) => t.attempts > 1), 'some task should have been re-run after the kill')
      assert.equal(await metric(g, 'colony_tasks_finished_total'), N, 'each task recorded exactly once')
      const peers = await api<{ id: string }[]>(g, '/api/peers')
      assert.ok(!peers.body.some((p) => p.id === g.workerIds[0]), 'the killed peer is gone from /api/peers')
    })
  })
})

describe('the coordinator killed with SIGKILL mid-job and restarted on the same SQLite file', () => {
  it('has its peers and driver reconnect, and the job completes with the same result', async () => {
    await withGrid({ workers: 2, executors: 1 }, async (g, grid) => {
      const work = grid.remote((i: number) => new Promise<number>((r) => setTimeout(() => r(i * 2), 15)))
      const refs: ObjectRef<number>[] = Array.from({ length: N }, (_, i) => work.remote(i))
      await grid.wait(refs, { numReturns: N / 4, timeoutMs: 30_000 })
      await g.coordinator.kill('SIGKILL')
      await g.startCoordinator()
      await g.coordinator.waitFor(/restored \d+ job/)
      const values = await grid.get(refs, { timeoutMs: 60_000 })
      assert.equal(values.reduce((a, b) => a + b, 0), expected)
      const peers = await api<{ id: string; role: string }[]>(g, '/api/peers')
      for (const id of g.workerIds) assert.ok(peers.body.some((p) => p.id === id), `worker ${id} reconnected with its id`)
      const jobId = grid.jobId
      const tasks = (await api<{ items: { state: string }[] }>(g, `/api/jobs/${jobId}/tasks?limit=10000`)).body.items
      assert.equal(tasks.length, N, 'no task was lost or submitted twice')
      assert.ok(tasks.every((t) => t.state === 'finished'))
      // New work runs after the restart too.
      assert.equal(await grid.get(work.remote(21)), 42)
    })
  })

  it('runs each actor call exactly once across the restart, in order', async () => {
    await withGrid({ workers: 2, executors: 1 }, async (g, grid) => {
      const Tally = grid.remote(class Tally {
        calls: number[] = []
        async add(i: number) { await new Promise((r) => setTimeout(r, 5)); this.calls.push(i); return this.calls.length }
        all() { return this.calls }
      })
      const t = Tally.remote()
      const refs = Array.from({ length: 200 }, (_, i) => t.add.remote(i))
      await grid.wait(refs, { numReturns: 50, timeoutMs: 30_000 })
      await g.coordinator.kill('SIGKILL')
      await g.startCoordinator()
      assert.deepEqual(await grid.get(refs, { timeoutMs: 60_000 }), Array.from({ length: 200 }, (_, i) => i + 1))
      assert.deepEqual(await grid.get(t.all.remote()), Array.from({ length: 200 }, (_, i) => i))
    })
  })

  it('keeps nested tasks that wait in get (they hold no slot) and a large put object across the restart', async () => {
    await withGrid({ workers: 2, executors: 1 }, async (g, grid) => {
      const tree = grid.remote(async function tree(depth: number): Promise<number> {
        if (depth === 0) return new Promise((r) => setTimeout(() => r(1), 150))
        const inner = colony.grid
        const self = inner.remote(tree)
        const [x, y] = await inner.get([self.remote(depth - 1), self.remote(depth - 1)])
        return x + y
      })
      const big = grid.put(new Float64Array(100_000).fill(3)) // 800 KB: held by this driver
      const sum = grid.remote((a: Float64Array) => a.reduce((s, v) => s + v, 0))
      const root = tree.remote(5)
      // Leaves take 150 ms and only a few run at once: at 500 ms the tree is half done, its parents blocked.
      const { ready } = await grid.wait([root], { timeoutMs: 500 })
      assert.equal(ready.length, 0, 'the kill must land mid-tree')
      await g.coordinator.kill('SIGKILL')
      await g.startCoordinator()
      assert.equal(await grid.get(root, { timeoutMs: 30_000 }), 32)
      assert.equal(await grid.get(sum.remote(big), { timeoutMs: 30_000 }), 300_000)
    })
  })

  it('finishes a submitted bundle job whose main was running when the coordinator died', async () => {
    const g = await startGrid({ workers: 2, executors: 1 })
    try {
      const bundle = `
        export function slowDouble(i) { return new Promise((r) => setTimeout(() => r(i * 2), 15)) }
        export default async function main(grid, n) {
          const f = grid.remote(slowDouble)
          const xs = await grid.get(Array.from({ length: n }, (_, i) => f.remote(i)))
          return xs.reduce((a, b) => a + b, 0)
        }`
      const posted = await api<{ id: string }>(g, '/api/jobs', { method: 'POST', body: JSON.stringify({ bundle, name: 'restart', args: [N] }) })
      assert.equal(posted.status, 201)
      const id = posted.body.id
      const seen = async () => (await api<{ tasks: { finished: number } }>(g, `/api/jobs/${id}`)).body.tasks.finished
      const end = Date.now() + 30_000
      while ((await seen()) < N / 4) { if (Date.now() > end) throw new Error('job made no progress'); await new Promise((r) => setTimeout(r, 20)) }
      await g.coordinator.kill('SIGKILL')
      await g.startCoordinator()
      const deadline = Date.now() + 60_000
      let job: { state: string; result?: unknown; error?: unknown }
      for (;;) {
        job = (await api<{ state: string; result?: unknown }>(g, `/api/jobs/${id}`)).body
        if (job.state !== 'running' || Date.now() > deadline) break
        await new Promise((r) => setTimeout(r, 50))
      }
      assert.equal(job.state, 'finished', JSON.stringify(job))
      assert.equal(job.result, expected)
    } finally {
      await g.stop()
    }
  })
})
