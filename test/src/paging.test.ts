/**
 * State that pages, on a real coordinator: a job of 100,000 tasks read page by page adds up to
 * its total, with unique ids; state filters count what the job's counts say; bad queries are
 * 400s that say what is allowed; jobs, objects, actors and the log page too, and the log's line
 * numbers survive dropped lines; the event stream carries them as ids with the coordinator's
 * term, resumes after a Last-Event-ID of that term (from the start for another), and sends
 * keep-alive comments; /api/summary counts the grid.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Grid, type ObjectRef } from '@colony-grid/client'
import type { ActorSummary, GridSummary, JobInfo, LogLine, ObjectSummary, Page, TaskInfo } from '@colony-grid/shared'
import { api, startGrid, until, type GridProcs } from './harness.js'

const N = 100_000
/** Small, so a log of a few hundred lines drops its oldest. */
const LOG_BYTES = 4000

let g: GridProcs
let grid: Grid & { jobId: string }
/** The big job's results, held so that none is freed (a freed task's record may go). */
let refs: ObjectRef<unknown>[] = []

before(async () => {
  g = await startGrid({ workers: 0, memory: true, env: { COLONY_SSE_KEEPALIVE_MS: '200', COLONY_MAX_JOB_LOG_BYTES: String(LOG_BYTES) } })
  grid = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
  const noop = grid.remote(function noop() { return null })
  for (let i = 0; i < N; i++) refs.push(noop.remote())
  await until(async () => sum((await job(grid.jobId)).tasks) === N, 60_000, `the coordinator to hold the ${N} tasks`)
})
after(async () => {
  await grid?.close()
  await g?.stop()
  refs = []
})

const sum = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0)
const job = async (id: string) => (await api<JobInfo>(g, `/api/jobs/${id}`)).body
const page = async <T>(path: string) => {
  const r = await api<Page<T>>(g, path)
  assert.equal(r.status, 200, `${path}: ${JSON.stringify(r.body).slice(0, 300)}`)
  return r.body
}
/** Every page of a list (after `cursor`, if given), `limit` at a time, checking each page's shape on the way. */
async function readAll<T>(path: string, limit: number, cursor?: string): Promise<{ items: T[]; pages: number; totals: Set<number> }> {
  const items: T[] = [], totals = new Set<number>()
  let pages = 0
  for (;;) {
    const p = await page<T>(`${path}${path.includes('?') ? '&' : '?'}limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`)
    pages++
    totals.add(p.total)
    items.push(...p.items)
    assert.ok(p.items.length <= limit)
    if (!p.truncated) { assert.equal(p.next, undefined); return { items, pages, totals } }
    assert.equal(p.items.length, limit, 'a page that is not the last is full')
    assert.ok(p.next, 'a truncated page says where the next starts')
    cursor = p.next
  }
}

describe('state that pages', () => {
  it('a 100,000-task job\'s tasks, read page by page, add up to the total', async () => {
    const first = await page<TaskInfo>(`/api/jobs/${grid.jobId}/tasks`)
    assert.equal(first.items.length, 100, 'the default page is 100')
    assert.equal(first.total, N)
    assert.equal(first.truncated, true)

    const all = await readAll<TaskInfo>(`/api/jobs/${grid.jobId}/tasks`, 10_000)
    assert.equal(all.pages, 10)
    assert.deepEqual([...all.totals], [N], 'every page gives the same total')
    const ids = new Set(all.items.map((t) => t.id))
    assert.equal(ids.size, N, 'no task twice')
    assert.equal(all.items.length, N)
    assert.ok(all.items.every((t) => t.state === 'ready'), 'with no worker, every task waits in the queue')

    // Newest first is the same list the other way round.
    const newest = await page<TaskInfo>(`/api/jobs/${grid.jobId}/tasks?order=desc&limit=3`)
    assert.deepEqual(newest.items.map((t) => t.id), all.items.slice(-3).reverse().map((t) => t.id))
    const before = await page<TaskInfo>(`/api/jobs/${grid.jobId}/tasks?order=desc&limit=3&cursor=${newest.next}`)
    assert.deepEqual(before.items.map((t) => t.id), all.items.slice(-6, -3).reverse().map((t) => t.id))

    // A page from the middle costs a page, not the job.
    const mid = await page<TaskInfo>(`/api/jobs/${grid.jobId}/tasks?limit=1000`)
    const times: number[] = []
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now()
      await page<TaskInfo>(`/api/jobs/${grid.jobId}/tasks?cursor=${Number(mid.next) + 40_000}`)
      times.push(performance.now() - t0)
    }
    times.sort((a, b) => a - b)
    console.error(`a page of 100 of ${N} tasks from the middle: median ${times[5].toFixed(1)} ms, worst ${times[9].toFixed(1)} ms`)
  })

  it('answers a bad limit, cursor, state or order with a 400 that says what is allowed', async () => {
    const cases: [string, RegExp][] = [
      ['tasks?limit=0', /limit must be a whole number from 1 to 10000/],
      ['tasks?limit=abc', /limit must be a whole number from 1 to 10000 \(got "abc"\)/],
      ['tasks?limit=10001', /limit must be a whole number from 1 to 10000/],
      ['tasks?cursor=xyz', /cursor "xyz" is not one this API gave: pass the "next" of the page before/],
      ['tasks?state=bogus', /state "bogus" is not a state of tasks: use one of waiting, ready, running, finished, failed, cancelled/],
      ['tasks?state=ready,bogus', /state "bogus"/],
      ['tasks?order=sideways', /order must be "asc" \(oldest first\) or "desc" \(newest first\)/],
      ['objects?state=alive', /state "alive" is not a state of objects: use one of pending, ready, error/],
      ['actors?state=ready', /state "ready" is not a state of actors: use one of pending, alive, restarting, dead/],
      ['logs?state=ready', /log lines have no states to filter by/],
    ]
    for (const [path, message] of cases) {
      const r = await api<{ error: { code: string; message: string } }>(g, `/api/jobs/${grid.jobId}/${path}`)
      assert.equal(r.status, 400, path)
      assert.equal(r.body.error.code, 'PROTOCOL', path)
      assert.match(r.body.error.message, message, path)
    }
    const jobs = await api<{ error: { message: string } }>(g, '/api/jobs?state=done')
    assert.equal(jobs.status, 400)
    assert.match(jobs.body.error.message, /not a state of jobs: use one of running, finished, failed, cancelled/)
    const events = await api<{ error: { message: string } }>(g, `/api/jobs/${grid.jobId}/events`, { headers: { 'last-event-id': 'abc' } })
    assert.equal(events.status, 400)
    assert.match(events.body.error.message, /Last-Event-ID header must be the id of a 'log' event/)
    // The token is checked before the query, and a query opens no job that is not there.
    assert.equal((await api(g, `/api/jobs/${grid.jobId}/tasks?limit=0`, { token: 'not-a-token' })).status, 401)
    assert.equal((await api(g, '/api/jobs/j_nope/tasks?limit=5')).status, 404)
  })

  it('/api/summary counts the grid from kept counts', async () => {
    const s = (await api<GridSummary>(g, '/api/summary')).body
    assert.equal(s.ready, true)
    assert.ok(Math.abs(s.at - Date.now()) < 60_000)
    assert.equal(s.tasks.ready, N)
    assert.equal(s.jobs.running, 1)
    assert.equal(s.peers.byRole.driver, 1)
    assert.equal(s.peers.byRole.worker ?? 0, 0)
    assert.equal(s.peers.total, 1)
    assert.ok(s.objects.kept >= N, 'each task\'s result object is kept')
    assert.equal((await api(g, '/api/summary', { token: g.joinToken })).status, 401, 'a join token may not read it')
  })

  it('a job\'s objects page in the order they were made, with a state filter', async () => {
    const objects = await page<ObjectSummary>(`/api/jobs/${grid.jobId}/objects?limit=5`)
    assert.deepEqual([objects.items.length, objects.total, objects.truncated], [5, N, true])
    assert.ok(objects.items.every((o) => o.state === 'pending'), 'no task has run: every result is still to be made')
    const tasks = await page<TaskInfo>(`/api/jobs/${grid.jobId}/tasks?limit=5`)
    assert.deepEqual(objects.items.map((o) => o.id), tasks.items.map((t) => `${t.id}.r0`), 'a task\'s result, in the tasks\' order')
    assert.equal((await page<ObjectSummary>(`/api/jobs/${grid.jobId}/objects?state=pending&limit=1`)).total, N)
    assert.equal((await page<ObjectSummary>(`/api/jobs/${grid.jobId}/objects?state=ready,error`)).total, 0)
  })

  it('jobs page newest first; actors page; a log pages by line numbers that outlive dropped lines', async () => {
    await g.addWorker(2)
    const other = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
    try {
      const Counter = other.remote(class Counter { n = 0; inc() { return ++this.n } })
      const counters = [Counter.remote(), Counter.remote(), Counter.remote()]
      assert.deepEqual(await other.get(counters.map((c) => c.inc.remote())), [1, 1, 1])
      const LINES = 300
      const logger = other.remote(function logger(n: number) { for (let i = 1; i <= n; i++) console.log(`line ${i}`); return n })
      assert.equal(await other.get(logger.remote(LINES)), LINES)

      const jobs = await page<JobInfo>('/api/jobs?limit=1')
      assert.equal(jobs.items[0].id, other.jobId, 'the newest job first')
      assert.equal(jobs.total, 2)
      assert.equal(jobs.truncated, true)
      const older = await page<JobInfo>(`/api/jobs?limit=1&cursor=${jobs.next}`)
      assert.deepEqual([older.items[0].id, older.truncated], [grid.jobId, false])
      assert.deepEqual((await page<JobInfo>('/api/jobs?order=asc')).items.map((j) => j.id), [grid.jobId, other.jobId])
      assert.equal((await page<JobInfo>('/api/jobs?state=cancelled')).total, 0)

      const actors = await readAll<ActorSummary>(`/api/jobs/${other.jobId}/actors`, 2)
      assert.deepEqual([actors.items.length, actors.pages, [...actors.totals]], [3, 2, [3]])
      assert.equal((await page<ActorSummary>(`/api/jobs/${other.jobId}/actors?state=alive`)).total, 3)
      assert.equal((await page<ActorSummary>(`/api/jobs/${other.jobId}/actors?state=dead`)).total, 0)


      // The log is cut to LOG_BYTES: its first lines went, and kept their numbers.
      const log = await until(async () => {
        const l = await readAll<LogLine>(`/api/jobs/${other.jobId}/logs`, 25)
        return l.items.at(-1)?.line.endsWith(`line ${LINES}`) && l
      }, 10_000, 'the last log line')
      const seqs = log.items.map((l) => l.seq)
      assert.ok(seqs[0] > 1, `the oldest lines were dropped (the first kept is number ${seqs[0]})`)
      assert.deepEqual(seqs, seqs.map((_, i) => seqs[0] + i), 'numbered in a row')
      assert.deepEqual([...log.totals], [log.items.length], 'the total is the lines kept')
      for (const l of log.items) assert.match(l.line, new RegExp(`line ${l.seq}$`), 'a line\'s number is its place in the whole log')
      const newest = await page<LogLine>(`/api/jobs/${other.jobId}/logs?order=desc&limit=2`)
      assert.deepEqual(newest.items.map((l) => l.seq), [LINES, LINES - 1])
    } finally { await other.close() }
  })

  it('the event stream numbers log lines in the coordinator\'s term, resumes after Last-Event-ID or ?after= of that term, and keeps the connection alive', async () => {
    const other = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
    try {
      const logger = other.remote(function logger(from: number, n: number) { for (let i = from; i < from + n; i++) console.log(`line ${i}`); return n })
      await other.get(logger.remote(1, 10))
      const url = `/api/jobs/${other.jobId}/events`
      await until(async () => (await page<LogLine>(`/api/jobs/${other.jobId}/logs`)).total === 10, 10_000, 'the 10 lines')

      // From the start: every line with `<its number>@<the term>` as its id, then the state, then keep-alive comments while nothing happens.
      const all = await events(url, {}, (got) => got.filter((e) => e.comment === 'keep-alive').length >= 2)
      const logs = all.filter((e) => e.event === 'log')
      const ids = logs.map((e) => /^(\d+)@([0-9a-z]+)$/.exec(e.id ?? ''))
      assert.ok(ids.every(Boolean), `each id is <seq>@<term>: ${logs.map((e) => e.id).join(' ')}`)
      assert.deepEqual(ids.map((m) => m![1]), Array.from({ length: 10 }, (_, i) => String(i + 1)))
      const term = ids[0]![2]
      assert.deepEqual(new Set(ids.map((m) => m![2])), new Set([term]), 'one term for the coordinator\'s lines')
      const seqs = (got: Sse[]) => got.filter((e) => e.event === 'log').map((e) => e.id)
      const inTerm = (...n: number[]) => n.map((i) => `${i}@${term}`)
      assert.match(JSON.parse(logs[9].data!) as string, /line 10$/, 'the data is the line as a JSON string')
      const state = all.findIndex((e) => e.event === 'state')
      assert.ok(state > all.indexOf(logs[9]), 'the state follows the log so far')
      assert.equal(all[state].id, undefined, 'a state event has no id')
      assert.equal((JSON.parse(all[state].data!) as JobInfo).id, other.jobId)
      // /logs pages number the same lines with plain numbers.
      assert.deepEqual((await page<LogLine>(`/api/jobs/${other.jobId}/logs`)).items.map((l) => l.seq), Array.from({ length: 10 }, (_, i) => i + 1))

      // A reconnect after line 7 of this term (as EventSource does it) gets 8, 9 and 10, then the state; ?after= does the same.
      const resumed = await events(url, { 'last-event-id': `7@${term}` }, (got) => got.some((e) => e.event === 'state'))
      assert.deepEqual(seqs(resumed), inTerm(8, 9, 10))
      const after = await events(`${url}?after=9@${term}`, {}, (got) => got.some((e) => e.event === 'state'))
      assert.deepEqual(seqs(after), inTerm(10))

      // An id from another term (a coordinator before a restart numbered its own lines) or with none: every line kept, all new to that client.
      for (const [headers, path] of [[{ 'last-event-id': '7@0' }, url], [{ 'last-event-id': '12@zzzzzzzz' }, url], [{ 'last-event-id': '7' }, url], [{}, `${url}?after=9`]] as const) {
        const got = await events(path, headers, (so) => so.some((e) => e.event === 'state'))
        assert.deepEqual(seqs(got), inTerm(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), `${JSON.stringify(headers)} ${path}`)
      }

      // Live lines carry the numbers that follow (a stream that opens after they came replays them: the same ids).
      const live = events(`${url}?after=10@${term}`, {}, (got) => got.filter((e) => e.event === 'log').length >= 3)
      await other.get(logger.remote(11, 3))
      assert.deepEqual(seqs(await live), inTerm(11, 12, 13))
    } finally { await other.close() }
  })

  it('a cursor stays good while tasks are added: the pages that follow go on from it, with nothing twice', async () => {
    const other = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
    try {
      const slow = other.remote(function later() { return null })
      const held = Array.from({ length: 50 }, () => slow.remote())
      const tasks = `/api/jobs/${other.jobId}/tasks`
      await until(async () => (await page<TaskInfo>(tasks)).total === 50, 10_000, 'the 50 tasks')
      const first = await page<TaskInfo>(`${tasks}?limit=20`)
      held.push(...Array.from({ length: 30 }, () => slow.remote()))
      await until(async () => (await page<TaskInfo>(tasks)).total === 80, 10_000, '30 more')
      const rest = await readAll<TaskInfo>(tasks, 25, first.next)
      const ids = [...first.items, ...rest.items].map((t) => t.id)
      assert.equal(ids.length, 80)
      assert.equal(new Set(ids).size, 80)
      assert.deepEqual(ids, (await page<TaskInfo>(`${tasks}?limit=80`)).items.map((t) => t.id), 'in submission order')
      assert.equal(held.length, 80)
    } finally { await other.close() }
  })

  it('state filters count what the job\'s counts say, and page through exactly those', async () => {
    // The worker added above works through the big job; once some of it has run, cancel the rest.
    await until(async () => (await job(grid.jobId)).tasks.finished >= 500, 30_000, '500 of the big job\'s tasks to finish')
    assert.equal((await api(g, `/api/jobs/${grid.jobId}`, { method: 'DELETE' })).status, 200)
    const counts = await until(async () => { const j = await job(grid.jobId); return j.state === 'cancelled' && j.tasks.running === 0 && j.tasks.ready === 0 && j.tasks }, 10_000, 'the job to be cancelled')
    assert.equal(sum(counts), N)
    for (const state of ['finished', 'cancelled', 'ready', 'running'] as const) {
      assert.equal((await page<TaskInfo>(`/api/jobs/${grid.jobId}/tasks?state=${state}&limit=1`)).total, counts[state], state)
    }
    assert.equal((await page<TaskInfo>(`/api/jobs/${grid.jobId}/tasks?state=finished,cancelled&limit=1`)).total, counts.finished + counts.cancelled)
    const finished = await readAll<TaskInfo>(`/api/jobs/${grid.jobId}/tasks?state=finished`, 200)
    assert.equal(finished.items.length, counts.finished)
    assert.equal(new Set(finished.items.map((t) => t.id)).size, counts.finished)
    assert.ok(finished.items.every((t) => t.state === 'finished' && t.startedAt && t.peer))
    // The timeline's window: the latest tasks that started, newest first.
    const window = await page<TaskInfo>(`/api/jobs/${grid.jobId}/tasks?state=running,finished,failed&order=desc&limit=200`)
    assert.deepEqual(window.items.map((t) => t.id), finished.items.slice(-200).reverse().map((t) => t.id))
    const s = (await api<GridSummary>(g, '/api/summary')).body
    assert.ok(s.tasksFinishedTotal >= counts.finished)
    assert.equal(s.jobs.cancelled, 1)
  })
})

interface Sse { event?: string; data?: string; id?: string; comment?: string }

/** Reads a job's event stream until `enough` holds of what came (or 10 s pass), then hangs up. */
async function events(path: string, headers: Record<string, string>, enough: (got: Sse[]) => boolean): Promise<Sse[]> {
  const stop = new AbortController()
  const timer = setTimeout(() => stop.abort(), 10_000)
  const got: Sse[] = []
  try {
    const res = await fetch(new URL(path, g.url), { headers: { authorization: `Bearer ${g.submitToken}`, ...headers }, signal: stop.signal })
    assert.equal(res.status, 200)
    const decoder = new TextDecoder()
    let text = ''
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk, { stream: true })
      let end: number
      while ((end = text.indexOf('\n\n')) >= 0) {
        const block = text.slice(0, end)
        text = text.slice(end + 2)
        const e: Sse = {}
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) e.comment = line.slice(1).trim()
          else {
            const i = line.indexOf(':')
            const [field, value] = [line.slice(0, i), line.slice(i + 1).replace(/^ /, '')]
            if (field === 'event' || field === 'data' || field === 'id') e[field] = value
          }
        }
        got.push(e)
      }
      if (enough(got)) return got
    }
    return got
  } catch (e) {
    if (stop.signal.aborted) throw new Error(`the event stream ${path} did not give what was awaited within 10 s; it gave ${JSON.stringify(got)}`)
    throw e
  } finally {
    clearTimeout(timer)
    stop.abort()
  }
}
