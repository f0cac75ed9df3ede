/** Tasks, DAGs, nesting, actors and the object API, on a real coordinator with two Node peer processes. */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { connect, CancelledError, TaskError, TimeoutError, ObjectRef, type Grid } from '@colony-grid/client'
import { api, startGrid, type GridProcs } from './harness.js'

declare const colony: { grid: Grid }

let g: GridProcs
let grid: Grid

before(async () => {
  g = await startGrid({ workers: 2, executors: 1 })
  grid = await connect(g.url, { token: g.submitToken, onLog: false })
})
after(async () => {
  await grid?.close()
  await g?.stop()
})

describe('tasks', () => {
  it('runs the README example', async () => {
    const square = grid.remote((x: number) => x * x)
    const refs = [1, 2, 3].map((x) => square.remote(x))
    const total = grid.remote((...xs: number[]) => xs.reduce((a, b) => a + b, 0))
    assert.equal(await grid.get(total.remote(...refs)), 14)
  })

  it('computes a 1,000-task DAG with refs as arguments, across both peers', async () => {
    const before = await api<{ id: string; tasksDone: number }[]>(g, '/api/peers')
    const leaf = grid.remote((i: number) => i + 1)
    const add = grid.remote((a: number, b: number) => a + b)
    let level = Array.from({ length: 500 }, (_, i) => leaf.remote(i))
    let submitted = level.length
    while (level.length > 1) {
      const next = []
      for (let i = 0; i + 1 < level.length; i += 2) next.push(add.remote(level[i], level[i + 1]))
      if (level.length % 2) next.push(level[level.length - 1])
      submitted += Math.floor(level.length / 2)
      level = next
    }
    const third = grid.remote((x: number) => x * 3)
    const result = await grid.get(third.remote(level[0]), { timeoutMs: 60_000 })
    submitted += 1
    assert.ok(submitted >= 1000, `submitted ${submitted} tasks`)
    assert.equal(result, 3 * (500 * 501) / 2)
    const after = await api<{ id: string; tasksDone: number }[]>(g, '/api/peers')
    for (const id of g.workerIds) {
      const done = after.body.find((p) => p.id === id)!.tasksDone - (before.body.find((p) => p.id === id)?.tasksDone ?? 0)
      assert.ok(done > 50, `peer ${id} ran only ${done} of the DAG's tasks`)
    }
  })

  it('runs nested tasks: a recursive tree sum of depth 6 submitted from inside tasks', async () => {
    const treeSum = grid.remote(async function treeSum(depth: number): Promise<number> {
      if (depth === 0) return 1
      const inner = colony.grid
      const self = inner.remote(treeSum)
      const [a, b] = await inner.get([self.remote(depth - 1), self.remote(depth - 1)])
      return a + b
    })
    assert.equal(await grid.get(treeSum.remote(6), { timeoutMs: 60_000 }), 64)
  })

  it('reports a throwing task as a TaskError with the remote stack, task name and peer', async () => {
    const explode = grid.remote(function explode(n: number) {
      if (n > 1) throw new RangeError(`n is ${n}`)
      return n
    })
    const plusOne = grid.remote((x: number) => x + 1)
    const bad = explode.remote(5)
    await assert.rejects(grid.get(bad), (e: unknown) => {
      assert.ok(e instanceof TaskError)
      assert.equal(e.taskName, 'explode')
      assert.match(e.message, /RangeError: n is 5/)
      assert.match(e.remoteStack, /at explode/)
      assert.ok(g.workerIds.includes(e.peerId!), `peer ${e.peerId}`)
      return true
    })
    // A task downstream of a failure fails with the same error.
    await assert.rejects(grid.get(plusOne.remote(bad)), (e: unknown) => e instanceof TaskError && e.taskName === 'explode')
  })

  it('returns several values with numReturns', async () => {
    const split = grid.remote((a: number, b: number) => [a + b, a * b], { numReturns: 2 })
    const [s, p] = split.remote(3, 4) as unknown as ObjectRef<number>[]
    assert.deepEqual(await grid.get([s, p]), [7, 12])
  })

  it('places tasks by capability: a capability no peer has waits, and can be cancelled', async () => {
    const where = grid.remote(() => 'on a node peer', { capabilities: ['node'] })
    assert.equal(await grid.get(where.remote()), 'on a node peer')
    const gpu = grid.remote(() => 'never', { capabilities: ['webgpu'] })
    const ref = gpu.remote()
    const { ready } = await grid.wait([ref], { timeoutMs: 300 })
    assert.equal(ready.length, 0)
    grid.cancel(ref)
    await assert.rejects(grid.get(ref), CancelledError)
  })

  it('moves typed arrays and objects larger than the inline limit between peers', async () => {
    const make = grid.remote((n: number) => { const a = new Float64Array(n); for (let i = 0; i < n; i++) a[i] = i; return a })
    const sum = grid.remote((a: Float64Array) => a.reduce((x, y) => x + y, 0))
    const n = 200_000 // 1.6 MB: held by its maker, pulled by the reader
    const arr = make.remote(n)
    assert.equal(await grid.get(sum.remote(arr)), (n * (n - 1)) / 2)
    const back = await grid.get(arr)
    assert.ok(back instanceof Float64Array)
    assert.equal(back.length, n)
  })
})

describe('actors', () => {
  it('runs an actor\'s calls in submission order', async () => {
    const Log = grid.remote(class Log {
      items: number[] = []
      async append(i: number) { await new Promise((r) => setTimeout(r, (i * 7) % 5)); this.items.push(i); return this.items.length }
      all() { return this.items }
    })
    const log = Log.remote()
    const lens = Array.from({ length: 100 }, (_, i) => log.append.remote(i))
    assert.deepEqual(await grid.get(lens), Array.from({ length: 100 }, (_, i) => i + 1))
    assert.deepEqual(await grid.get(log.all.remote()), Array.from({ length: 100 }, (_, i) => i))
  })

  it('reaches one actor through a handle passed to 10 tasks', async () => {
    const Counter = grid.remote(class Counter { n = 0; inc() { return ++this.n } })
    const counter = Counter.remote()
    const bump = grid.remote(async (c: { inc: { remote(): ObjectRef<number> } }) => colony.grid.get(c.inc.remote()))
    const seen = await grid.get(Array.from({ length: 10 }, () => bump.remote(counter)))
    assert.deepEqual([...seen].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    assert.equal(await grid.get(counter.inc.remote()), 11)
  })

  it('keeps submission order when some calls wait on refs that must be fetched', async () => {
    const Log = grid.remote(class Log { xs: unknown[] = []; add(x: unknown) { this.xs.push(typeof x === 'number' ? x : 'big'); return this.xs.length } all() { return this.xs } })
    const log = Log.remote()
    const make = grid.remote((n: number) => new Float64Array(n).fill(n))
    const big = make.remote(20_000) // 160 KB: the actor's peer pulls it from its maker
    await grid.wait([big])
    const calls = Array.from({ length: 20 }, (_, i) => (i % 2 ? log.add.remote(i) : log.add.remote(big as unknown as number)))
    assert.deepEqual(await grid.get(calls), Array.from({ length: 20 }, (_, i) => i + 1))
    assert.deepEqual(await grid.get(log.all.remote()), Array.from({ length: 20 }, (_, i) => (i % 2 ? i : 'big')))
  })

  it('keeps an actor and its state when an ordinary task is cancelled or times out', async () => {
    const Counter = grid.remote(class Counter { n = 0; inc() { return ++this.n } })
    const c = Counter.remote()
    assert.equal(await grid.get(c.inc.remote()), 1)
    const spin = grid.remote(function spin() { for (;;) { /* never returns */ } })
    const spinning = spin.remote()
    await grid.wait([spinning], { timeoutMs: 200 })
    grid.cancel(spinning)
    await assert.rejects(grid.get(spinning), CancelledError)
    await assert.rejects(grid.get(spin.options({ timeoutMs: 200 }).remote()), (e: unknown) => e instanceof TaskError && /TimeoutError: task spin \(\S+\) ran past its time limit of 200 ms/.test(e.message))
    assert.equal(await grid.get(c.inc.remote()), 2)
  })

  it('reports a throwing constructor on every call of the actor', async () => {
    const Broken = grid.remote(class Broken { constructor() { throw new Error('no state for you') } ping() { return 1 } })
    const b = Broken.remote()
    await assert.rejects(grid.get(b.ping.remote()), /no state for you/)
  })

  it('holds an actor\'s explicit resources for its life; grid.kill ends it and frees them', async () => {
    const Slot = grid.remote(class Slot { where() { return (globalThis as unknown as { colony: { peerId: string } }).colony.peerId } }, { resources: { cpu: 1 } })
    const [a, b] = [Slot.remote(), Slot.remote()]
    const peers = await grid.get([a.where.remote(), b.where.remote()])
    assert.deepEqual(new Set(peers), new Set(g.workerIds), 'one actor on each 1-cpu peer')
    const c = Slot.remote()
    const waiting = c.where.remote()
    const early = await grid.wait([waiting], { timeoutMs: 1500 })
    assert.equal(early.ready.length, 0, 'a third actor waits: no cpu is free')
    grid.kill(a)
    assert.equal(await grid.get(waiting, { timeoutMs: 20_000 }), peers[0], 'it takes the slot the killed actor freed')
    await assert.rejects(grid.get(a.where.remote()), CancelledError)
    grid.kill(b)
    grid.kill(c)
  })
})

describe('objects: put, get, wait, cancel', () => {
  it('put stores a value that tasks and get can read', async () => {
    const ref = grid.put({ xs: [1, 2, 3], label: 'hi' })
    assert.deepEqual(await grid.get(ref), { xs: [1, 2, 3], label: 'hi' })
    const len = grid.remote((o: { xs: number[] }) => o.xs.length)
    assert.equal(await grid.get(len.remote(ref)), 3)
    const big = grid.put(new Uint8Array(300_000).fill(7))
    const total = grid.remote((a: Uint8Array) => a.reduce((s, x) => s + x, 0))
    assert.equal(await grid.get(total.remote(big)), 2_100_000)
  })

  it('get with a timeout rejects with TimeoutError', async () => {
    const slow = grid.remote(() => new Promise((r) => setTimeout(() => r('late'), 3000)))
    const ref = slow.remote()
    await assert.rejects(grid.get(ref, { timeoutMs: 100 }), TimeoutError)
    assert.equal(await grid.get(ref, { timeoutMs: 10_000 }), 'late')
  })

  it('wait returns the first numReturns ready refs, and the rest as not ready', async () => {
    const sleep = grid.remote((ms: number) => new Promise((r) => setTimeout(() => r(ms), ms)))
    const fast = [sleep.remote(10), sleep.remote(20)]
    const slow = sleep.remote(4000)
    const { ready, notReady } = await grid.wait([slow, ...fast], { numReturns: 2, timeoutMs: 3000 })
    assert.deepEqual(ready, fast)
    assert.deepEqual(notReady, [slow])
    const timedOut = await grid.wait([slow], { numReturns: 1, timeoutMs: 50 })
    assert.deepEqual(timedOut, { ready: [], notReady: [slow] })
  })

  it('cancel ends a running task (even an endless one) and a queued one; the grid goes on', async () => {
    const spin = grid.remote(function spin() { for (;;) { /* never returns */ } })
    const running = [spin.remote(), spin.remote()]
    const queued = spin.remote()
    const { ready } = await grid.wait(running, { numReturns: 1, timeoutMs: 500 })
    assert.equal(ready.length, 0)
    for (const r of [...running, queued]) grid.cancel(r)
    for (const r of [...running, queued]) await assert.rejects(grid.get(r, { timeoutMs: 10_000 }), CancelledError)
    const ok = grid.remote(() => 'still working')
    assert.equal(await grid.get(ok.remote(), { timeoutMs: 20_000 }), 'still working')
  })

  it('a task past its timeoutMs is stopped by its peer, failing with a TaskError that names the limit, and its executor is replaced', async () => {
    const spin = grid.remote(function spin() { for (;;) { /* never returns */ } }, { timeoutMs: 300 })
    const ref = spin.remote()
    const taskId = ref.id.replace(/\.r0$/, '')
    const t0 = Date.now()
    // The driver's own deadline is far past the task's limit: only the task's timeoutMs can end this get in time,
    // and only the peer's TimeoutError names the task and its limit (the get's own would be "grid.get timed out after 20000 ms").
    await assert.rejects(grid.get(ref, { timeoutMs: 20_000 }), (e: unknown) => {
      assert.ok(e instanceof TaskError, `a TaskError (README: "get rejects with a TaskError naming the limit"), not ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`)
      assert.ok(e.message.includes(`TimeoutError: task spin (${taskId}) ran past its time limit of 300 ms and was stopped`), e.message)
      assert.equal(e.taskId, taskId)
      assert.equal(e.taskName, 'spin')
      return true
    })
    const took = Date.now() - t0
    assert.ok(took < 10_000, `the task was stopped ${took} ms after it was submitted: its 300 ms limit, not the get's 20 s, ended it`)
    const ok = grid.remote(() => 42)
    assert.equal(await grid.get(ok.remote(), { timeoutMs: 20_000 }), 42)
  })
})
