/**
 * Infeasible is not busy: a task that no connected peer could ever run (a capability nobody
 * offers) is reported at once, in its job's state and log, naming what it needs and what the
 * peers offer; it runs when such a peer joins, and the report goes. Work that merely waits for
 * a free slot is not reported.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Grid } from '@colony-grid/client'
import type { JobInfo } from '@colony-grid/shared'
import { api, startGrid, until, type GridProcs } from './harness.js'

let g: GridProcs
let grid: Grid & { jobId: string }

before(async () => {
  g = await startGrid({ workers: 1, executors: 1 })
  grid = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
})
after(async () => {
  await grid?.close()
  await g?.stop()
})

const job = async () => (await api<JobInfo>(g, `/api/jobs/${grid.jobId}`)).body
const logs = async () => (await api<{ items: { line: string }[] }>(g, `/api/jobs/${grid.jobId}/logs?limit=10000`)).body.items.map((l) => l.line)

describe('infeasible work', () => {
  it('says at once that no connected peer offers a capability a task needs, and runs it when a worker with it joins', async () => {
    const onGpu = grid.remote(() => 'ran on the worker with the capability', { capabilities: ['colony-test-gpu'] })
    const submitted = Date.now()
    const ref = onGpu.remote()
    const info = await until(async () => { const j = await job(); return j.infeasible?.length ? j : undefined }, 1000, 'the job to report its infeasible task within a second')
    assert.ok(Date.now() - submitted < 1500, `reported after ${Date.now() - submitted} ms`)
    const [work] = info.infeasible!
    assert.deepEqual(work.needs, ['capability colony-test-gpu'])
    assert.equal(work.tasks, 1)
    assert.match(work.offered, /capabilities \[node, wasm/, 'it says what the connected worker offers')
    assert.match(work.message, /needs capability colony-test-gpu, which no connected worker offers/)
    assert.equal(info.waiting, work.message)
    assert.equal(info.tasks.ready, 1)
    const said = (await logs()).filter((l) => /no connected worker offers/.test(l))
    assert.equal(said.length, 1, `one line in the job's log: ${JSON.stringify(said)}`)
    assert.match(said[0], /capability colony-test-gpu/)

    // A second task needing the same thing is counted in the same report; the log does not say it again.
    const again = onGpu.remote()
    await until(async () => (await job()).infeasible?.[0]?.tasks === 2, 1000, 'the second task to join the report')
    assert.equal((await logs()).filter((l) => /no connected worker offers/.test(l)).length, 1)

    await g.addWorker(1, ['--capabilities', 'colony-test-gpu'])
    assert.deepEqual(await grid.get([ref, again], { timeoutMs: 30_000 }), ['ran on the worker with the capability', 'ran on the worker with the capability'])
    const done = await job()
    assert.equal(done.infeasible, undefined, JSON.stringify(done.infeasible))
    assert.equal(done.waiting, undefined)
  })

  it('does not report work that only waits for a free slot, and tells it from a resource total nobody has', async () => {
    // Two workers of one cpu each: two actors that hold a cpu for life fill them, and a third waits for a slot.
    const Slot = grid.remote(class Slot { where() { return (globalThis as unknown as { colony: { peerId: string } }).colony.peerId } }, { resources: { cpu: 1 } })
    const [a, b] = [Slot.remote(), Slot.remote()]
    await grid.get([a.where.remote(), b.where.remote()], { timeoutMs: 20_000 })
    const c = Slot.remote()
    const third = c.where.remote()
    const end = Date.now() + 600
    while (Date.now() < end) {
      const j = await job()
      assert.equal(j.infeasible, undefined, `busy is not infeasible: ${JSON.stringify(j.infeasible)}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    assert.equal((await grid.wait([third], { timeoutMs: 100 })).ready.length, 0, 'the third actor waits for a slot')

    // An actor that needs more cpu than any worker has is infeasible, not busy.
    const Big = grid.remote(class Big { ping() { return 'pong' } }, { resources: { cpu: 4 } })
    const big = Big.remote()
    const info = await until(async () => { const j = await job(); return j.infeasible?.length ? j : undefined }, 1000, 'the job to report the actor nobody can host')
    assert.deepEqual(info.infeasible!.map((w) => w.needs), [['cpu 4']])
    assert.match(info.infeasible![0].message, /Big/)

    grid.kill(a)
    assert.ok(await grid.get(third, { timeoutMs: 20_000 }), 'the third actor takes the freed slot')
    grid.kill(big)
    await until(async () => (await job()).infeasible === undefined, 5000, 'the report to go with the cancelled actor')
    grid.kill(b)
    grid.kill(c)
  })
})
