/**
 * Sharing the grid between users, and the coordinator's limits on what one job can hold:
 * one user's endless tasks cannot starve another user's; a task waiting in `get` holds no
 * slot; tasks get their job's time limit; a job's kept log is capped. Each runs on a real
 * coordinator with Node peer processes, and two drivers with different submit tokens.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Grid } from '@colony-grid/client'
import { JOB_TEXT_LIMITS, taskOfObject } from '@colony-grid/shared'
import { api, until, withGrid, type GridProcs } from './harness.js'

declare const colony: { grid: Grid }

/** A second user: a submit token of its own, made with the operator's. */
async function newUser(g: GridProcs, label: string): Promise<{ token: string; id: string }> {
  const r = await api<{ token: string; id: string }>(g, '/api/tokens', { method: 'POST', body: JSON.stringify({ role: 'submit', label }) })
  assert.equal(r.status, 201)
  return r.body
}

type TaskRow = { id: string; state: string; peer?: string }
const tasksOf = async (g: GridProcs, job: string, token: string) => (await api<{ items: TaskRow[] }>(g, `/api/jobs/${job}/tasks?limit=10000`, { token })).body.items

describe('fair share between users', () => {
  it('one user\'s endless tasks, more than the grid has slots, do not keep another user\'s task from running', async () => {
    await withGrid({ workers: 2, executors: 1, memory: true }, async (g) => {
      const alice = await newUser(g, 'alice'), bob = await newUser(g, 'bob')
      const a = await connect(g.url, { token: alice.token, onLog: false, log: () => {} })
      const b = await connect(g.url, { token: bob.token, onLog: false, log: () => {} })
      try {
        // Six busy loops on two slots: both executors spin, the rest queue behind them.
        const spin = a.remote(function spin() { for (;;) { /* never returns */ } }, { timeoutMs: 60_000 })
        const endless = Array.from({ length: 6 }, () => spin.remote())
        await until(async () => (await tasksOf(g, a.jobId, alice.token)).filter((t) => t.state === 'running').length >= 2, 10_000, 'alice\'s tasks to hold both slots')
        await new Promise((r) => setTimeout(r, 300))
        const started = Date.now()
        const hello = b.remote(function hello() { return 'hello from bob' }).remote()
        // The coordinator places it at once, though every slot is taken (one over-commit per slot)...
        await until(async () => (await tasksOf(g, b.jobId, bob.token)).some((t) => t.peer), 3000, 'bob\'s task to be placed on a peer')
        // ... and the peer runs it at once, beside alice's.
        assert.equal(await b.get(hello, { timeoutMs: 10_000 }), 'hello from bob')
        assert.ok(Date.now() - started < 10_000, `bob waited ${Date.now() - started} ms`)
        const states = (await tasksOf(g, a.jobId, alice.token)).map((t) => t.state)
        assert.ok(states.every((s) => s === 'running' || s === 'ready'), `alice's tasks still run or wait: ${states}`)
        assert.equal((await api(g, `/api/jobs/${a.jobId}`, { method: 'DELETE', token: alice.token })).status, 200)
        void endless
      } finally { await a.close(); await b.close() }
    })
  })

  it('a task blocked in get on an unfinished ref holds no slot: another user\'s task runs on a 1-slot grid', async () => {
    await withGrid({ workers: 1, executors: 1, memory: true }, async (g) => {
      const alice = await newUser(g, 'alice'), bob = await newUser(g, 'bob')
      const a = await connect(g.url, { token: alice.token, onLog: false, log: () => {} })
      const b = await connect(g.url, { token: bob.token, onLog: false, log: () => {} })
      try {
        // An actor call that never resolves (actors hold no slot), and a task that waits for it in get.
        class Gate { shut() { return new Promise(() => {}) } }
        const gate = a.remote(Gate).remote()
        const never = gate.shut.remote()
        const waiter = a.remote(async function waiter(refs: unknown[]) { return colony.grid.get(refs[0] as never) }, { timeoutMs: 60_000 })
        const waiterId = taskOfObject(waiter.remote([never]).id)
        // It runs, and its peer has no slot in use: it is blocked in get.
        await until(async () => (await tasksOf(g, a.jobId, alice.token)).some((t) => t.id === waiterId && t.state === 'running') &&
          (await api<{ id: string; load: number }[]>(g, '/api/peers')).body.find((p) => p.id === g.workerIds[0])?.load === 0, 10_000, 'alice\'s waiter to block in get')
        const started = Date.now()
        assert.equal(await b.get(b.remote(function hello() { return 'hello from bob' }).remote(), { timeoutMs: 10_000 }), 'hello from bob')
        assert.ok(Date.now() - started < 10_000)
        const waiterState = (await tasksOf(g, a.jobId, alice.token)).find((t) => t.id === waiterId)?.state
        assert.equal(waiterState, 'running', 'alice\'s waiter is still waiting')
        await api(g, `/api/jobs/${a.jobId}`, { method: 'DELETE', token: alice.token })
      } finally { await a.close(); await b.close() }
    })
  })
})

describe('limits a job cannot pass', () => {
  it('a task with no timeoutMs gets its job\'s taskTimeoutMs: it ends with a TimeoutError, and the next task runs; main gets none', async () => {
    await withGrid({ workers: 1, executors: 1, memory: true }, async (g) => {
      // Busy loops go to the 'spin' peer, so they never share an executor with main.
      await g.addWorker(1, ['--capabilities', 'spin'])
      const bundle = `
        export function spin() { for (;;) { /* never returns */ } }
        export function quick() { return 'next ran' }
        export default async function main(grid) {
          await new Promise((r) => setTimeout(r, 2000)) // main outlives its job's task limit
          let err
          try { await grid.get(grid.remote(spin, { capabilities: ['spin'] }).remote()) } catch (e) { err = { name: e.name, message: e.message } }
          return { err, next: await grid.get(grid.remote(quick, { capabilities: ['spin'] }).remote()) }
        }`
      const posted = await api<{ id: string }>(g, '/api/jobs', { method: 'POST', body: JSON.stringify({ bundle, name: 'limited', taskTimeoutMs: 1500 }) })
      assert.equal(posted.status, 201, JSON.stringify(posted.body))
      const id = posted.body.id
      try {
        const job = await until(async () => {
          const j = (await api<{ state: string; result?: { err?: { name: string; message: string }; next: string } }>(g, `/api/jobs/${id}`)).body
          return j.state !== 'running' && j
        }, 30_000, 'the job to end')
        assert.equal(job.state, 'finished', JSON.stringify(job))
        assert.match(job.result?.err?.message ?? '', /TimeoutError.*1500 ms/, JSON.stringify(job.result))
        assert.equal(job.result?.next, 'next ran')
      } finally { await api(g, `/api/jobs/${id}`, { method: 'DELETE' }) }
      const bad = await api<{ error: { message: string } }>(g, '/api/jobs', { method: 'POST', body: JSON.stringify({ bundle, taskTimeoutMs: 'soon' }) })
      assert.equal(bad.status, 400)
      assert.match(bad.body.error.message, /taskTimeoutMs/)
    })
  })

  it('a job that logs huge and many lines keeps only its most recent lines within the byte cap, and counts the dropped', async () => {
    await withGrid({ workers: 1, executors: 1, memory: true }, async (g, grid) => {
      const CAP = 2 * 1024 * 1024
      const logger = grid.remote(function logger() {
        for (let i = 0; i < 21; i++) console.log('x'.repeat(100_001))
        for (let i = 0; i < 400; i++) console.log(`${i} ${'y'.repeat(9000)}`)
        for (let i = 0; i < 5000; i++) console.log(`short ${i}`)
        return 'logged'
      })
      assert.equal(await grid.get(logger.remote(), { timeoutMs: 60_000 }), 'logged')
      const total = 21 + 400 + 5000
      const logs = await until(async () => {
        // The log is kept within 10,000 lines: one page of the most it gives holds all of it.
        const r = await fetch(new URL(`/api/jobs/${grid.jobId}/logs?limit=10000`, g.url), { headers: { authorization: `Bearer ${g.submitToken}` } })
        const text = await r.text()
        const page = JSON.parse(text) as { items: { seq: number; line: string }[]; truncated: boolean }
        const last = page.items.at(-1)?.seq ?? 0
        return last >= total && { page, bytes: Buffer.byteLength(text) }
      }, 20_000, 'every log line to reach the coordinator')
      const { items, truncated } = logs.page
      assert.equal(truncated, false)
      // Lines keep their numbers over the whole log: those dropped are the ones before the first kept.
      const lines = items.map((l) => l.line), dropped = items[0].seq - 1
      assert.deepEqual(items.map((l) => l.seq), lines.map((_, i) => dropped + 1 + i), 'the lines kept are numbered in a row')
      assert.equal(lines.length + dropped, total)
      assert.ok(dropped > 0, 'older lines were dropped')
      const kept = lines.reduce((n, l) => n + Buffer.byteLength(l), 0)
      assert.ok(kept <= CAP, `${kept} bytes of lines kept; the cap is ${CAP}`)
      assert.ok(logs.bytes <= CAP + lines.length * 32 + 1024, `the logs answer is ${logs.bytes} bytes`)
      for (const l of lines) assert.ok(l.length <= JOB_TEXT_LIMITS.logLineChars + 300, `a line of ${l.length} characters was kept`)
      assert.match(lines[lines.length - 1], /short 4999$/, 'the most recent lines are kept')
      // The job and the worker are fine: the next task runs.
      assert.equal(await grid.get(grid.remote(() => 'still here').remote(), { timeoutMs: 20_000 }), 'still here')
    })
  })
})
