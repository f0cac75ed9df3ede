/** Result validation by redundancy: replicas on distinct peers, agreement, reputation and quarantine. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { TaskError } from '@colony-grid/client'
import { byzantinePeer } from './byzantine.js'
import { api, metric, withGrid } from './harness.js'

type PeerRow = { id: string; reputation: number; quarantined: boolean }
declare const colony: { peerId: string }

describe('replicas and quorum', () => {
  it('accepts only results a quorum agrees on, and quarantines a peer that always answers wrong', async () => {
    await withGrid({ workers: 2, executors: 1 }, async (g, grid) => {
      let evil = await byzantinePeer(g)
      const double = grid.remote((x: number) => x * 2, { replicas: 2 })
      const values = await grid.get(Array.from({ length: 30 }, (_, i) => double.remote(i)), { timeoutMs: 60_000 })
      assert.deepEqual(values, Array.from({ length: 30 }, (_, i) => i * 2), 'no wrong answer was accepted')
      assert.ok(evil.tasksAnswered >= 2, `the hostile peer was given work (${evil.tasksAnswered} replicas)`)
      const row = (await api<PeerRow[]>(g, '/api/peers')).body.find((p) => p.id === evil.id)!
      assert.equal(row.quarantined, true)
      assert.ok(row.reputation < 0.5)
      assert.equal(await metric(g, 'colony_peers_quarantined_total'), 1)
      for (const id of g.workerIds) assert.equal((await api<PeerRow[]>(g, '/api/peers')).body.find((p) => p.id === id)!.quarantined, false)

      const answered = evil.tasksAnswered
      assert.deepEqual(await grid.get(Array.from({ length: 10 }, (_, i) => double.remote(i))), Array.from({ length: 10 }, (_, i) => i * 2))
      assert.equal(evil.tasksAnswered, answered, 'a quarantined peer gets no work')

      // A coordinator restart does not clear the quarantine: the peer rejoins as it was.
      evil.close()
      await g.coordinator.kill('SIGKILL')
      await g.startCoordinator()
      const back = await byzantinePeer(g, 666, evil)
      assert.equal(back.id, evil.id)
      assert.equal((await api<PeerRow[]>(g, '/api/peers')).body.find((p) => p.id === evil.id)!.quarantined, true)
      evil = back

      const released = await api<{ released: boolean }>(g, `/api/peers/${evil.id}/release`, { method: 'POST' })
      assert.deepEqual([released.status, released.body.released], [200, true])
      assert.equal((await api<PeerRow[]>(g, '/api/peers')).body.find((p) => p.id === evil.id)!.quarantined, false)
      evil.close()
    })
  })

  it('compares floats within a tolerance; without one, a disagreement with no peer left to ask fails clearly', async () => {
    await withGrid({ workers: 2, executors: 1 }, async (g, grid) => {
      // Each peer answers a slightly different float, as WebGPU and wasm do.
      const noisy = (first: string) => 0.3 + (colony.peerId === first ? 1e-12 : 0)
      const [a] = g.workerIds
      const tolerant = grid.remote(noisy, { replicas: 2, compare: { tolerance: 1e-9 } })
      const v = await grid.get(tolerant.remote(a))
      assert.ok(Math.abs(v - 0.3) < 1e-9)
      const exact = grid.remote(noisy, { replicas: 2 })
      await assert.rejects(grid.get(exact.remote(a)), (e: unknown) => e instanceof TaskError && /no quorum .* no other peer is there to ask/.test(e.message))
    })
  })

  it('agrees on errors too: a task that always throws fails once, with its error', async () => {
    await withGrid({ workers: 2, executors: 1 }, async (_g, grid) => {
      const boom = grid.remote((n: number) => { throw new Error(`bad input ${n}`) }, { replicas: 2 })
      await assert.rejects(grid.get(boom.remote(7)), (e: unknown) => e instanceof TaskError && /bad input 7/.test(e.message))
    })
  })
})
