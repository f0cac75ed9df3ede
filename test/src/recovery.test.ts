/** Recovery paths: actors restarted elsewhere, objects rebuilt from lineage, hung peers found by heartbeats. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { PeerDiedError, type ObjectRef } from '@colony-grid/client'
import { api, until, withGrid } from './harness.js'

type TaskRow = { id: string; name: string; state: string; attempts: number; peer?: string }

describe('an actor whose peer dies', () => {
  it('is re-created on another peer within maxRestarts, and its later calls run there', async () => {
    await withGrid({ workers: 3, executors: 1, memory: true }, async (g, grid) => {
      const Counter = grid.remote(class Counter { n = 0; inc() { return ++this.n } }, { maxRestarts: 1 })
      const kept = Counter.remote()
      const Fragile = grid.remote(class Fragile { ping() { return 'pong' } })
      const fragile = Fragile.remote()
      assert.deepEqual(await grid.get([kept.inc.remote(), kept.inc.remote(), fragile.ping.remote()]), [1, 2, 'pong'])
      const tasks = (await api<{ items: TaskRow[] }>(g, `/api/jobs/${grid.jobId}/tasks?limit=10000`)).body.items
      const host = tasks.find((t) => t.name === 'Counter')!.peer!
      const fragileHost = tasks.find((t) => t.name === 'Fragile')!.peer!
      // Kill both hosts (they may be one peer); a third peer is left for the restart.
      for (const id of new Set([host, fragileHost])) await g.workers[g.workerIds.indexOf(id)].kill('SIGKILL')
      // Restarted without its state (its class has no checkpoint()): counting starts again. The call may be
      // dispatched before the coordinator sees the peer go, so it carries maxRetries, as the error advises.
      assert.equal(await grid.get(kept.inc.options({ maxRetries: 1 }).remote(), { timeoutMs: 30_000 }), 1)
      const after = (await api<{ items: TaskRow[] }>(g, `/api/jobs/${grid.jobId}/tasks?limit=10000`)).body.items
      assert.notEqual(after.find((t) => t.name === 'Counter')!.peer, host)
      // Without maxRestarts, calls to a dead actor fail at once, naming it.
      await assert.rejects(grid.get(fragile.ping.remote(), { timeoutMs: 30_000 }), (e: unknown) =>
        e instanceof PeerDiedError && /Fragile .* no restarts left/.test(e.message))
    })
  })

  it('takes up from its last checkpoint when re-created, with each call counted once', async () => {
    await withGrid({ workers: 2, executors: 1, memory: true }, async (g, grid) => {
      const Ledger = grid.remote(class Ledger {
        entries: number[] = []
        add(x: number) { this.entries.push(x); return this.entries.length }
        all() { return this.entries }
        checkpoint() { return { entries: this.entries } }
        restore(state: { entries: number[] }) { this.entries = state.entries }
      }, { maxRestarts: 1 })
      const ledger = Ledger.remote()
      assert.deepEqual(await grid.get([1, 2, 3].map((x) => ledger.add.remote(x))), [1, 2, 3])
      const host = (await api<{ items: TaskRow[] }>(g, `/api/jobs/${grid.jobId}/tasks?limit=10000`)).body.items.find((t) => t.name === 'Ledger')!.peer!
      await g.workers[g.workerIds.indexOf(host)].kill('SIGKILL')
      assert.equal(await grid.get(ledger.add.options({ maxRetries: 1 }).remote(4), { timeoutMs: 30_000 }), 4, 'the state came back')
      assert.deepEqual(await grid.get(ledger.all.remote()), [1, 2, 3, 4])
      const after = (await api<{ items: TaskRow[] }>(g, `/api/jobs/${grid.jobId}/tasks?limit=10000`)).body.items
      assert.notEqual(after.find((t) => t.name === 'Ledger')!.peer, host)
    })
  })
})

describe('an object whose only holder dies', () => {
  it('is rebuilt by re-running the task that made it (lineage)', async () => {
    await withGrid({ workers: 2, executors: 1, memory: true }, async (g, grid) => {
      const make = grid.remote(function make(n: number) { return new Float64Array(n).fill(1) })
      const sum = grid.remote(function sum(a: Float64Array) { return a.reduce((x, y) => x + y, 0) })
      const big = make.remote(100_000) // 800 KB: held by its maker only
      await grid.wait([big], { timeoutMs: 30_000 })
      const maker = (await api<{ items: TaskRow[] }>(g, `/api/jobs/${grid.jobId}/tasks?limit=10000`)).body.items.find((t) => t.name === 'make')!
      await g.workers[g.workerIds.indexOf(maker.peer!)].kill('SIGKILL')
      assert.equal(await grid.get(sum.remote(big), { timeoutMs: 30_000 }), 100_000)
      const rerun = (await api<{ items: TaskRow[] }>(g, `/api/jobs/${grid.jobId}/tasks?limit=10000`)).body.items.find((t) => t.name === 'make')!
      assert.equal(rerun.attempts, 2)
      assert.notEqual(rerun.peer, maker.peer)
    })
  })
})

describe('a task with several large results, all on a peer that dies', () => {
  it('rebuilds every one of them from one re-run', async () => {
    await withGrid({ workers: 2, executors: 1, memory: true }, async (g, grid) => {
      const pair = grid.remote(function pair(n: number) { return [new Float64Array(n).fill(1), new Float64Array(n).fill(2)] }, { numReturns: 2 })
      const sum = grid.remote(function sum(a: Float64Array) { return a.reduce((x, y) => x + y, 0) })
      const [a, b] = pair.remote(50_000) as unknown as ObjectRef<Float64Array>[]
      await grid.wait([a, b], { numReturns: 2, timeoutMs: 30_000 })
      const maker = (await api<{ items: TaskRow[] }>(g, `/api/jobs/${grid.jobId}/tasks?limit=10000`)).body.items.find((t) => t.name === 'pair')!
      await g.workers[g.workerIds.indexOf(maker.peer!)].kill('SIGKILL')
      assert.deepEqual(await grid.get([sum.remote(a), sum.remote(b)], { timeoutMs: 30_000 }), [50_000, 100_000])
    })
  })
})

describe('a put object with replicate: 2', () => {
  it('outlives the peer that put it: a second peer keeps a copy, and readers fetch it there', async () => {
    await withGrid({ workers: 0, memory: true }, async (g, grid) => {
      await g.addWorker(1, ['--capabilities', 'a'])
      await g.addWorker(1, ['--capabilities', 'b'])
      const make = grid.remote(function make(replicate: number) {
        const here = (globalThis as unknown as { colony: { grid: { put(v: unknown, o: object): unknown } } }).colony.grid
        return { ref: here.put(new Uint8Array(300_000).fill(9), { replicate }) }
      }, { capabilities: ['a'] })
      const { ref } = await grid.get(make.remote(2)) as unknown as { ref: ObjectRef<Uint8Array> }
      const holders = async () => (await api<{ items: { id: string; holders: string[] }[] }>(g, `/api/jobs/${grid.jobId}/objects?limit=10000`)).body.items.find((o) => o.id === ref.id)?.holders ?? []
      await until(async () => (await holders()).length === 2, 15_000, 'a second copy of the object')
      assert.deepEqual(new Set(await holders()), new Set(g.workerIds))
      await g.workers[0].kill('SIGKILL')
      const size = grid.remote(function size(x: Uint8Array) { return x.length + x[299_999] }, { capabilities: ['b'] })
      assert.equal(await grid.get(size.remote(ref), { timeoutMs: 30_000 }), 300_009)
    })
  })
})

describe('a driver whose connection blips', () => {
  it('keeps its large put objects: they are readable after it reconnects, past the grace period', async () => {
    const GRACE_MS = 1500 // the heartbeat timeout: how long the coordinator keeps a put whose holder left
    await withGrid({ workers: 1, memory: true, env: { COLONY_HEARTBEAT_TIMEOUT_MS: String(GRACE_MS) } }, async (g, grid) => {
      const big = grid.put(new Uint8Array(300_000).fill(4))
      const sum = grid.remote(function sum(b: Uint8Array) { return b.reduce((s, v) => s + v, 0) })
      const peer = (grid as unknown as { peer: { peerId: string; conn: { ws?: { close(): void }; status: string } } }).peer
      const { conn, peerId } = peer
      const holders = async () => (await api<{ items: { id: string; holders: string[] }[] }>(g, `/api/jobs/${grid.jobId}/objects?limit=10000`)).body.items.find((o) => o.id === big.id)?.holders ?? []
      // Nothing has read it yet: the driver's is the only copy, so the driver's drop leaves the put in its grace.
      await grid.wait([big], { timeoutMs: 10_000 })
      assert.deepEqual(await holders(), [peerId], 'the driver holds the only copy')
      const old = conn.ws!
      old.close()
      // Reconnected: welcomed on a new socket. (The status alone says 'connected' until the old socket's
      // onclose, so it cannot tell a reconnect from no disconnect yet.) The coordinator dropped this driver's
      // session before it welcomed the new one (on the old socket's close, or when the new hello replaced it),
      // and that drop started the put's grace: by the welcome, the grace has begun.
      await until(async () => conn.ws !== undefined && conn.ws !== old && conn.status === 'connected', 10_000, 'the driver reconnects: welcomed on a new socket')
      const welcomed = Date.now()
      assert.equal(peer.peerId, peerId, 'with the same id')
      assert.deepEqual(await holders(), [peerId], 'the coordinator has the driver as the put\'s holder again')
      // Past the grace a lost put gets, counted from the welcome (the grace began before it): a put the
      // reconnect did not claim would be lost by now.
      await new Promise((r) => setTimeout(r, Math.max(0, welcomed + GRACE_MS + 500 - Date.now())))
      assert.deepEqual(await holders(), [peerId], 'still held, past the grace')
      assert.equal(await grid.get(sum.remote(big), { timeoutMs: 20_000 }), 1_200_000)
    })
  })
})

describe('a peer that hangs without closing its socket', () => {
  it('is dropped after the heartbeat timeout; its tasks run elsewhere, and it rejoins when it wakes', async () => {
    await withGrid({ workers: 2, executors: 1, memory: true, env: { COLONY_HEARTBEAT_TIMEOUT_MS: '1500' } }, async (g, grid) => {
      const slow = grid.remote((i: number) => new Promise<number>((r) => setTimeout(() => r(i), 50)))
      const refs = Array.from({ length: 40 }, (_, i) => slow.remote(i))
      await grid.wait(refs, { numReturns: 4, timeoutMs: 30_000 })
      const hung = g.workers[0]
      hung.child.kill('SIGSTOP')
      const values = await grid.get(refs, { timeoutMs: 30_000 })
      assert.deepEqual(values, Array.from({ length: 40 }, (_, i) => i))
      const peers = (await api<{ id: string }[]>(g, '/api/peers')).body
      assert.ok(!peers.some((p) => p.id === g.workerIds[0]), 'the hung peer was dropped')
      hung.child.kill('SIGCONT')
      await until(async () => (await api<{ id: string }[]>(g, '/api/peers')).body.some((p) => p.id === g.workerIds[0]), 20_000, 'the peer rejoins')
      assert.equal(await grid.get(slow.remote(7), { timeoutMs: 20_000 }), 7)
    })
  })
})
