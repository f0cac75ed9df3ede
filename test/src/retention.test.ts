/**
 * Retention (issue 17): a finished job keeps its work for a while, then only its summary, then
 * nothing but "expired"; a restart loads only what is kept; and a soak of many jobs, with
 * peers killed and replaced, levels off in memory and on disk.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { connect } from '@colony-grid/client'
import { api, metric, startGrid, until } from './harness.js'
import { soak } from './chaos/soak.js'

interface Info { id: string; state: string; result?: unknown; tasks: Record<string, number>; detailsExpired?: boolean }

describe('retention', () => {
  it('a job\'s result is read while retention keeps it; its work goes first, then its summary, and the API says expired', async () => {
    const g = await startGrid({ workers: 1, env: { COLONY_JOB_DETAIL_MS: '1500', COLONY_JOB_SUMMARY_MS: '4000' } })
    try {
      const made = await api<Info>(g, '/api/jobs', { method: 'POST', body: JSON.stringify({ bundle: 'export default async (grid, n) => n * 6', name: 'answer', args: [7] }) })
      assert.equal(made.status, 201)
      const id = made.body.id
      const done = await until(async () => { const r = await api<Info>(g, `/api/jobs/${id}`); return r.body.state === 'finished' && r.body }, 30_000, 'the job to finish')
      assert.equal(done.result, 42)
      assert.equal((await api(g, `/api/jobs/${id}/tasks`)).status, 200, 'its task records, while they are kept')
      // Its work goes: the summary stays, with its result and counts.
      const tasks = await until(async () => { const r = await api<{ error: { code: string; message: string } }>(g, `/api/jobs/${id}/tasks`); return r.status === 410 && r.body }, 10_000, 'the job\'s work to expire')
      assert.equal(tasks.error.code, 'EXPIRED')
      assert.match(tasks.error.message, /keeps them for 1\.5 s \(COLONY_JOB_DETAIL_MS\)/)
      const summary = await api<Info>(g, `/api/jobs/${id}`)
      assert.equal(summary.status, 200)
      assert.deepEqual([summary.body.result, summary.body.tasks.finished, summary.body.detailsExpired], [42, 1, true])
      // Then the summary: the owner is told it expired; another token still sees nothing.
      const gone = await until(async () => { const r = await api<{ error: { code: string; message: string } }>(g, `/api/jobs/${id}`); return r.status === 410 && r.body }, 15_000, 'the job to expire')
      assert.equal(gone.error.code, 'EXPIRED')
      assert.match(gone.error.message, new RegExp(`job ${id} expired: it finished at \\S+, and a finished job is kept for 4 s`))
      const other = await api<{ token: string }>(g, '/api/tokens', { method: 'POST', body: JSON.stringify({ role: 'submit', label: 'someone' }) })
      assert.equal((await api(g, `/api/jobs/${id}`, { token: other.body.token })).status, 404)
    } finally { await g.stop() }
  })

  it('a restart after retention dropped a job\'s work loads only its summary', async () => {
    const g = await startGrid({ workers: 2, env: { COLONY_JOB_DETAIL_MS: '1000', COLONY_JOB_SUMMARY_MS: '600000' } })
    try {
      const grid = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
      const jobId = grid.jobId
      const double = grid.remote((i: number) => i * 2)
      assert.deepEqual(await grid.get(Array.from({ length: 50 }, (_, i) => double.remote(i))), Array.from({ length: 50 }, (_, i) => i * 2))
      // Replicated tasks: their quorums are records of their own, which go with the tasks'.
      const checked = grid.remote((i: number) => i + 1, { replicas: 2 })
      assert.deepEqual(await grid.get([checked.remote(1), checked.remote(2)]), [2, 3])
      assert.equal(await metric(g, 'colony_quorums_kept'), 2)
      await grid.close()
      const counts = (await until(async () => { const r = await api<Info>(g, `/api/jobs/${jobId}`); return r.body.state === 'finished' && r.body }, 10_000, 'the job to finish')).tasks
      await until(async () => (await api(g, `/api/jobs/${jobId}/tasks`)).status === 410, 15_000, 'the job\'s work to expire')
      assert.equal(await metric(g, 'colony_quorums_kept'), 0)
      await g.coordinator.kill('SIGTERM')
      const db = new Database(join(g.dataDir, 'colony.db'), { readonly: true, fileMustExist: true })
      const rows = (table: string) => (db.prepare(`SELECT COUNT(*) AS n FROM ${table} WHERE job = ?`).get(jobId) as { n: number }).n
      assert.deepEqual([rows('tasks'), rows('objects'), rows('fns')], [0, 0, 0], 'nothing of its work is left in the store')
      assert.equal((db.prepare('SELECT COUNT(*) AS n FROM jobs WHERE id = ?').get(jobId) as { n: number }).n, 1, 'its summary is')
      db.close()
      await g.startCoordinator()
      const info = await api<Info>(g, `/api/jobs/${jobId}`)
      assert.equal(info.status, 200)
      assert.deepEqual([info.body.state, info.body.tasks, info.body.detailsExpired], ['finished', counts, true])
      assert.ok(counts.finished >= 52, JSON.stringify(counts))
      assert.equal((await api(g, `/api/jobs/${jobId}/tasks`)).status, 410)
    } finally { await g.stop() }
  })

  it('a running job keeps only its newest spent records: a long job of tasks and puts, each freed once read, holds a bounded number in memory and in the store, runs past maxTasksPerJob, and goes on after a restart', async () => {
    const keep = 200, chunk = 20, waves = 30, perWave = 100, putsPerWave = 20
    const g = await startGrid({ workers: 2, env: { COLONY_KEEP_SPENT_RECORDS: String(keep), COLONY_MAX_TASKS_PER_JOB: '1000', COLONY_MAX_OBJECTS_PER_JOB: '1000', COLONY_JOB_DETAIL_MS: '1000' } })
    try {
      const grid = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
      const jobId = grid.jobId
      const double = grid.remote((i: number) => i * 2)
      // A result the driver keeps: its task is never spent.
      const held = double.remote(21)
      assert.equal(await grid.get(held), 42)
      const wave = async (w: number) => {
        const refs = Array.from({ length: perWave }, (_, i) => double.remote(w * perWave + i))
        const puts = Array.from({ length: putsPerWave }, (_, i) => grid.put(new Float32Array(2048).fill(w + i)))
        assert.deepEqual(await grid.get(refs), Array.from({ length: perWave }, (_, i) => 2 * (w * perWave + i)))
        grid.free([...refs, ...puts])
      }
      // At most: the kept ones and a chunk, the wave in flight, a wave whose frees are on their way, and the held one.
      const taskBound = keep + chunk + 2 * perWave + 1
      const objectBound = taskBound + keep + chunk + 2 * putsPerWave
      let peakTasks = 0, peakObjects = 0
      for (let w = 0; w < waves; w++) {
        await wave(w)
        peakTasks = Math.max(peakTasks, await metric(g, 'colony_tasks_kept'))
        peakObjects = Math.max(peakObjects, await metric(g, 'colony_objects_kept'))
      }
      const total = waves * perWave + 1
      console.error(`${total} tasks and ${waves * putsPerWave} puts: at most ${peakTasks} task and ${peakObjects} object records held (keep ${keep})`)
      assert.ok(peakTasks <= taskBound, `${peakTasks} task records held, bound ${taskBound}`)
      assert.ok(peakObjects <= objectBound, `${peakObjects} object records held, bound ${objectBound}`)
      await until(async () => await metric(g, 'colony_tasks_kept') <= keep + chunk + 1, 10_000, 'the last frees to land')
      // Its counts still count every task; its timeline lists the newest and the held one.
      const info = await api<Info>(g, `/api/jobs/${jobId}`)
      assert.deepEqual([info.body.state, info.body.tasks.finished], ['running', total])
      const listed = (await api<{ items: { id: string }[] }>(g, `/api/jobs/${jobId}/tasks?limit=10000`)).body.items
      assert.ok(listed.length <= keep + chunk + 1 && listed.length >= keep, `${listed.length} tasks listed`)
      assert.ok(listed.some((t) => held.id.startsWith(`${t.id}.`)), 'the task whose result is held is listed')
      // The store holds as few.
      await g.coordinator.kill('SIGTERM')
      const db = new Database(join(g.dataDir, 'colony.db'), { readonly: true, fileMustExist: true })
      const rows = (table: string) => (db.prepare(`SELECT COUNT(*) AS n FROM ${table} WHERE job = ?`).get(jobId) as { n: number }).n
      const stored = { tasks: rows('tasks'), objects: rows('objects') }
      db.close()
      assert.ok(stored.tasks <= keep + chunk + 1 && stored.objects <= 2 * (keep + chunk) + 1, JSON.stringify(stored))
      // After a restart the job goes on: the held result is read, and new work runs.
      await g.startCoordinator()
      assert.equal(await grid.get(held, { timeoutMs: 30_000 }), 42)
      await wave(waves)
      assert.equal((await api<Info>(g, `/api/jobs/${jobId}`)).body.tasks.finished, total + perWave)
      await grid.close()
      // Once only its summary is kept, the grid's task counts leave it out, after a restart too
      // (the counts of its spent records, kept in its row, must not come back).
      await until(async () => (await api(g, `/api/jobs/${jobId}/tasks`)).status === 410, 15_000, 'the job\'s work to expire')
      type Summary = { tasks: Record<string, number> }
      assert.equal((await api<Summary>(g, '/api/summary')).body.tasks.finished, 0)
      await g.coordinator.kill('SIGTERM')
      await g.startCoordinator()
      assert.equal((await api<Info>(g, `/api/jobs/${jobId}`)).body.tasks.finished, total + perWave, 'its summary still counts every task')
      assert.equal((await api<Summary>(g, '/api/summary')).body.tasks.finished, 0, 'the grid\'s counts do not count it again')
    } finally { await g.stop() }
  })

  it('a bundle\'s code is kept while a running or recent job uses it, then goes from memory and the store; one uploaded and never used goes too', async () => {
    const g = await startGrid({ workers: 1, env: { COLONY_JOB_DETAIL_MS: '1000', COLONY_JOB_SUMMARY_MS: '600000' } })
    try {
      const bundleRows = () => {
        const db = new Database(join(g.dataDir, 'colony.db'), { readonly: true, fileMustExist: true })
        try { return (db.prepare('SELECT hash FROM bundles').all() as { hash: string }[]).map((r) => r.hash).sort() } finally { db.close() }
      }
      // A job whose main waits until it is cancelled, and a bundle uploaded and never used.
      const waits = 'export default () => new Promise(() => {})'
      const made = await api<Info>(g, '/api/jobs', { method: 'POST', body: JSON.stringify({ bundle: waits, name: 'waits' }) })
      assert.equal(made.status, 201)
      const unused = await api<{ hash: string }>(g, '/api/bundles', { method: 'POST', body: JSON.stringify({ bundle: 'export const never = () => 1' }) })
      const running = createHash('sha256').update(waits).digest('hex').slice(0, 32)
      assert.deepEqual(bundleRows(), [running, unused.body.hash].sort())
      await until(async () => (await api(g, `/api/bundles/${unused.body.hash}`)).status === 404, 10_000, 'the unused bundle to go')
      assert.deepEqual(bundleRows(), [running], 'the unused bundle\'s row is gone; the running job\'s stays')
      // The running job's bundle was uploaded first: had it not been kept for its job, the same sweep would have dropped it.
      assert.equal(await metric(g, 'colony_bundles_kept'), 1)
      assert.equal((await api(g, `/api/bundles/${running}`)).status, 200)
      assert.equal((await api<Info>(g, `/api/jobs/${made.body.id}`)).body.state, 'running')
      // Once the job ends and its work expires, its code goes a COLONY_JOB_DETAIL_MS later.
      assert.equal((await api(g, `/api/jobs/${made.body.id}`, { method: 'DELETE' })).status, 200)
      await until(async () => (await api(g, `/api/bundles/${running}`)).status === 404, 10_000, 'the finished job\'s bundle to go')
      assert.deepEqual(bundleRows(), [])
      assert.equal(await metric(g, 'colony_bundles_kept'), 0)
      assert.equal((await api<Info>(g, `/api/jobs/${made.body.id}`)).body.detailsExpired, true)
    } finally { await g.stop() }
  })

  // The memory and store ratios need a long run to get past the process warming up (npm run chaos
  // measures them over 1,000,000 tasks); a short run checks what they rest on: what is kept.
  it('a short soak: jobs one after another and side by side, a peer killed every other round; the records kept stay within retention, nothing lost', async () => {
    const perJob = 2000
    const f = await soak(16, 2, perJob)
    assert.equal(f.lost, 0)
    assert.ok(f.warmRounds >= 0, 'a job expired during the run')
    // At most 4 finished jobs keep their work (SOAK_RETENTION), besides the 2 that run.
    assert.ok(f.keptMax.tasks <= (4 + 2) * perJob, `${f.keptMax.tasks} task records`)
    assert.ok(f.keptMax.objects <= (4 + 2) * perJob, `${f.keptMax.objects} object records`)
    assert.ok(f.keptMax.jobs <= 8 + 4 + 2, `${f.keptMax.jobs} job records`)
    // And so are the store's rows (its file settles over a longer run: npm run chaos).
    assert.ok(f.rowsMax.tasks <= (4 + 2) * perJob && f.rowsMax.objects <= (4 + 2) * perJob && f.rowsMax.jobs <= 8 + 4 + 2, JSON.stringify(f.rowsMax))
  })
})
