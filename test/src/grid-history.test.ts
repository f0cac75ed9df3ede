/**
 * The grid over time (coordinator/src/grid-history.ts), which the operator's dashboard charts:
 * the ring alone (bounded, rates from the finished-tasks counter, `since`), then a real
 * coordinator whose history shows the tasks a real Node peer ran, queued and running ones,
 * and the peers, at GET /api/history for the operator's token only.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from '@colony-grid/client'
import { createServer } from 'node:net'
import { GridHistoryRing, startCoordinator, type Coordinator } from '@colony-grid/coordinator'
import type { GridHistory } from '@colony-grid/shared'
import { api, startGrid, until, type GridProcs } from './harness.js'
import { startRedisServer } from './redis-server.js'

describe('the history ring', () => {
  it('keeps the last `capacity` samples, oldest first, with tasks/s from the counter', () => {
    const ring = new GridHistoryRing(5, 1000)
    for (let i = 0; i < 23; i++) ring.sample({ tasksFinished: i * 10, queued: i, running: 1, peers: 3 }, 1000 * i)
    assert.equal(ring.size, 5)
    const h = ring.since()
    assert.deepEqual([h.capacity, h.intervalMs], [5, 1000])
    assert.deepEqual(h.at, [18_000, 19_000, 20_000, 21_000, 22_000])
    assert.deepEqual(h.queued, [18, 19, 20, 21, 22])
    assert.deepEqual(h.tasksPerSecond, [10, 10, 10, 10, 10], '10 tasks a second')
    assert.deepEqual(ring.since(20_000).at, [21_000, 22_000], 'only what came after `since`')
    assert.deepEqual(ring.since(22_000).at, [])
  })

  it('a counter that starts again (a new control plane) or no control plane gives no negative rate and no sample', () => {
    const ring = new GridHistoryRing(10, 1000)
    ring.sample({ tasksFinished: 500, queued: 0, running: 0, peers: 1 }, 1000)
    ring.sample({ tasksFinished: 3, queued: 0, running: 0, peers: 1 }, 2000)
    ring.sample(undefined, 3000)
    ring.sample({ tasksFinished: 7, queued: 0, running: 0, peers: 1 }, 4000)
    ring.sample({ tasksFinished: 9, queued: 0, running: 0, peers: 1 }, 5000)
    const h = ring.since()
    assert.deepEqual(h.at, [1000, 2000, 4000, 5000])
    assert.deepEqual(h.tasksPerSecond, [0, 0, 0, 2])
  })
})

describe('GET /api/history on a real coordinator', () => {
  let g: GridProcs
  const history = async (query = '', token?: string) => (await api<GridHistory>(g, `/api/history${query}`, { token })).body
  before(async () => { g = await startGrid({ workers: 1, executors: 1, memory: true }) })
  after(async () => { await g?.stop() })

  it('shows the tasks a Node peer ran, the queue and the peers, sampled every 2 s', async () => {
    // Tasks finished before the first sample would have no rate: wait for it.
    await until(async () => (await history()).at.length > 0, 10_000, 'a first sample')
    const grid = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
    try {
      const square = grid.remote((x: number) => x * x)
      const results = await grid.get(Array.from({ length: 40 }, (_, i) => square.remote(i)))
      assert.equal(results.length, 40)
      // More busy tasks than one executor slot and the tasks sent ahead to it (at most 64) take:
      // those on the peer count as running, the rest wait in the coordinator's queue.
      const busyFor = grid.remote((ms: number) => { const end = Date.now() + ms; while (Date.now() < end); return ms })
      const slow = Array.from({ length: 100 }, () => busyFor.remote(50))
      const busy = await until(async () => {
        const h = await history()
        const i = h.at.findIndex((_, k) => h.running[k] >= 1 && h.queued[k] >= 1)
        return i >= 0 && h.peers[i]
      }, 10_000, 'a sample with a task running and one queued')
      assert.ok(busy >= 2, `the worker and the driver are connected (${busy} peers)`)
      await grid.get(slow, { timeoutMs: 30_000 })
      // Every finished task is in the rates: 40 squares and 100 busy ones, once the last is sampled.
      const h = await until(async () => {
        const h = await history()
        return h.running.at(-1) === 0 && h.queued.at(-1) === 0 && h.tasksPerSecond.at(-1) === 0 && h
      }, 10_000, 'a quiet sample after the tasks')
      let finished = 0
      for (let i = 1; i < h.at.length; i++) finished += h.tasksPerSecond[i] * (h.at[i] - h.at[i - 1]) / 1000
      assert.ok(Math.abs(finished - 140) < 0.5, `the rates add up to the 140 tasks that ran (${finished.toFixed(2)})`)
      assert.ok(Math.max(...h.tasksPerSecond) > 0)
      for (let i = 1; i < h.at.length; i++) {
        const step = h.at[i] - h.at[i - 1]
        assert.ok(step >= 1500 && step <= 4000, `samples ~2 s apart (${step} ms)`)
      }
      // A page that has samples up to `since` asks for the rest only (newer ones may have come meanwhile).
      const since = h.at.at(-2)!
      const rest = await history(`?since=${since}`)
      assert.equal(rest.at[0], h.at.at(-1))
      assert.ok(rest.at.every((t) => t > since))
    } finally { await grid.close() }
  })

  it('answers only the operator: another submit token, a join token and a bad `since` get errors that say why', async () => {
    const made = await api<{ token: string }>(g, '/api/tokens', { method: 'POST', body: JSON.stringify({ role: 'submit', label: 'a user' }) })
    assert.equal(made.status, 201)
    for (const token of [made.body.token, g.joinToken, 'not-a-token']) {
      const res = await api<{ error: { code: string; message: string } }>(g, '/api/history', { token })
      assert.equal(res.status, 401, `token ${token.slice(0, 6)}…`)
      assert.equal(res.body.error.code, 'AUTH')
    }
    const user = await api<{ error: { message: string } }>(g, '/api/history', { token: made.body.token })
    assert.match(user.body.error.message, /operator/)
    const bad = await api<{ error: { code: string; message: string } }>(g, '/api/history?since=yesterday')
    assert.equal(bad.status, 400)
    assert.match(bad.body.error.message, /since=yesterday is not a time/)
  })
})

describe('the history of a coordinator that does not lead', () => {
  it('takes no samples while it stands by after losing its lease, and samples again once it leads', async () => {
    const redis = await startRedisServer()
    const c = await startCoordinator({ port: 0, store: redis.url as `redis://${string}`, log: () => {}, leaseTtlMs: 600 })
    const history = async () => {
      const r = await fetch(new URL('/api/history', c.localUrl), { headers: { authorization: `Bearer ${c.tokens.submit}` } })
      assert.equal(r.status, 200)
      return await r.json() as GridHistory
    }
    try {
      await until(async () => (await history()).at.length > 0, 10_000, 'a first sample')
      // Frozen, not gone: the leader cannot renew its lease, stops serving and stands by.
      redis.pause()
      await until(async () => c.role === 'standby' && true, 15_000, 'the leader to lose its lease')
      const lost = Date.now()
      // Long enough for two of the history's 2 s samples, were it still sampling its closed control plane.
      await new Promise((r) => setTimeout(r, 5000))
      const resumed = Date.now()
      redis.resume()
      await until(async () => c.role === 'leader' && true, 30_000, 'it to lead again')
      const h = await until(async () => { const h = await history(); return h.at.some((t) => t > resumed) && h }, 10_000, 'a sample after it leads again')
      const whileStandingBy = h.at.filter((t) => t > lost + 100 && t < resumed)
      assert.deepEqual(whileStandingBy, [], 'no sample while it stood by')
    } finally {
      redis.resume()
      await c.close()
      await redis.dispose()
    }
  })

  it('a coordinator that cannot listen, or cannot lead, leaves no sampling timer behind', async () => {
    // Every interval started meanwhile, and whether it was cleared.
    const started = new Map<unknown, number>()
    const [set, clear] = [globalThis.setInterval, globalThis.clearInterval]
    globalThis.setInterval = ((fn: () => void, ms?: number, ...rest: unknown[]) => { const t = set(fn, ms, ...rest); started.set(t, ms ?? 0); return t }) as typeof setInterval
    globalThis.clearInterval = ((t?: Parameters<typeof clearInterval>[0]) => { started.delete(t); clear(t) }) as typeof clearInterval
    const busy = createServer()
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r))
    const redis = await startRedisServer()
    let lead: Coordinator | undefined
    try {
      const port = (busy.address() as { port: number }).port
      await assert.rejects(startCoordinator({ port, store: 'memory', log: () => {} }), /EADDRINUSE/)
      assert.deepEqual([...started.values()], [], 'no interval left running after a failed listen')
      globalThis.setInterval = set
      lead = await startCoordinator({ port: 0, store: redis.url as `redis://${string}`, log: () => {} })
      globalThis.setInterval = ((fn: () => void, ms?: number, ...rest: unknown[]) => { const t = set(fn, ms, ...rest); started.set(t, ms ?? 0); return t }) as typeof setInterval
      await assert.rejects(startCoordinator({ port: 0, store: redis.url as `redis://${string}`, log: () => {} }), /another coordinator .* leads/)
      assert.deepEqual([...started.values()], [], 'no interval left running after failing to lead')
    } finally {
      globalThis.setInterval = set
      globalThis.clearInterval = clear
      await lead?.close()
      await new Promise<void>((r) => busy.close(() => r()))
      await redis.dispose()
    }
  })
})
