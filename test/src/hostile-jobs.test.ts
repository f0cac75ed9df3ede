/**
 * Job code that tries to harm the peer that runs it, or other jobs on that peer, through what the
 * peer sends for it: log lines, errors and names past the protocol's limits, and reads of another
 * job's objects by id. Each fails only the job's own task; the worker stays on the grid.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { connect, TaskError, type ObjectRef } from '@colony-grid/client'
import { startNodeWorker } from '@colony-grid/worker-web/node'
import { api, until, withGrid, type GridProcs } from './harness.js'

type PeerRow = { id: string; role: string }
const workerIds = async (g: GridProcs) => (await api<PeerRow[]>(g, '/api/peers')).body.filter((p) => p.role === 'worker').map((p) => p.id).sort()

describe('job code past the protocol\'s limits', () => {
  it('logs 21 lines of 100,001 characters: the lines are cut, the task finishes, the worker stays', async () => {
    await withGrid({ workers: 1, executors: 1, memory: true }, async (g, grid) => {
      const before = await workerIds(g)
      const shout = grid.remote(function shout() {
        for (let i = 0; i < 21; i++) console.log('x'.repeat(100_001))
        return 'said'
      })
      assert.equal(await grid.get(shout.remote(), { timeoutMs: 20_000 }), 'said')
      // And again: before, each line cost the worker's connection one of its 20 bad messages.
      assert.equal(await grid.get(shout.remote(), { timeoutMs: 20_000 }), 'said')
      assert.equal(await grid.get(grid.remote((x: number) => x + 1).remote(1)), 2)
      assert.deepEqual(await workerIds(g), before, 'the same worker, never dropped')
      assert.doesNotMatch(g.workers[0].output(), /refused by the coordinator|closed the connection/)
      const logs = { lines: (await api<{ items: { line: string }[] }>(g, `/api/jobs/${grid.jobId}/logs?limit=10000`)).body.items.map((l) => l.line) }
      assert.ok(logs.lines.length >= 21, 'the lines are kept, cut')
      assert.ok(logs.lines.every((l) => l.length < 11_000), 'no line is kept whole')
      assert.match(logs.lines[0], /more characters cut/)
    })
  })

  it('throws an error of 200,000 characters: the task fails with it cut, the worker stays', async () => {
    await withGrid({ workers: 1, executors: 1, memory: true }, async (g, grid) => {
      const before = await workerIds(g)
      const huge = grid.remote(function huge() { throw new Error('e'.repeat(200_000)) })
      await assert.rejects(grid.get(huge.remote(), { timeoutMs: 20_000 }), (e: unknown) =>
        e instanceof TaskError && /more characters cut/.test(e.message) && e.message.length < 25_000)
      const weird = grid.remote(function weird() { throw Object.assign(new Error('x'), { name: 'n'.repeat(10_000) }) })
      await assert.rejects(grid.get(weird.remote(), { timeoutMs: 20_000 }), TaskError)
      assert.equal(await grid.get(grid.remote(() => 'still here').remote()), 'still here')
      assert.deepEqual(await workerIds(g), before)
    })
  })

  it('submits a task named with 600 characters, or a put with a bad id: its own task fails, naming the field', async () => {
    await withGrid({ workers: 1, executors: 1, memory: true }, async (g, grid) => {
      const before = await workerIds(g)
      const nest = grid.remote(async function nest() {
        const inner = { ['n'.repeat(600)]: () => 1 }['n'.repeat(600)]
        const g2 = (globalThis as unknown as { colony: { grid: { remote(f: unknown): { remote(): unknown }; get(r: unknown): Promise<unknown> } } }).colony.grid
        return g2.get(g2.remote(inner).remote())
      })
      await assert.rejects(grid.get(nest.remote(), { timeoutMs: 20_000 }), (e: unknown) =>
        e instanceof TaskError && /ProtocolError/.test(e.message) && /would refuse/.test(e.message) && /name/.test(e.message))
      const badPut = grid.remote(function badPut() {
        const send = process.send!.bind(process)
        const task = (globalThis as unknown as { colony: { taskId: string } }).colony.taskId
        send([{ k: 'grid', task, op: { op: 'put', id: 'o.' + 'x'.repeat(300), bytes: new Uint8Array(4) } }])
        return new Promise((r) => setTimeout(() => r('not stopped'), 5000))
      })
      await assert.rejects(grid.get(badPut.remote(), { timeoutMs: 20_000 }), (e: unknown) => e instanceof TaskError && /put ids/.test(e.message))
      assert.equal(await grid.get(grid.remote(() => 'still here').remote()), 'still here')
      assert.deepEqual(await workerIds(g), before)
    })
  })

  it('keeps logging long lines across a coordinator kill -9: the restored work finishes, the worker keeps its id', async () => {
    await withGrid({ workers: 1, executors: 1 }, async (g, grid) => {
      const before = await workerIds(g)
      const slowShout = grid.remote(async function slowShout() {
        for (let round = 0; round < 6; round++) {
          for (let i = 0; i < 4; i++) console.log('y'.repeat(100_001))
          await new Promise((r) => setTimeout(r, 250))
        }
        return 'done shouting'
      })
      const ref = slowShout.remote()
      await until(async () => (await api<{ items: { state: string }[] }>(g, `/api/jobs/${grid.jobId}/tasks?limit=10000`)).body.items.some((t) => t.state === 'running'), 10_000, 'the task runs')
      await g.coordinator.kill('SIGKILL')
      await g.startCoordinator()
      assert.equal(await grid.get(ref, { timeoutMs: 40_000 }), 'done shouting')
      assert.equal(await grid.get(grid.remote(() => 'after').remote(), { timeoutMs: 20_000 }), 'after')
      assert.deepEqual(await workerIds(g), before, 'the worker came back with its id')
      assert.doesNotMatch(g.workers[0].output(), /refused by the coordinator|closed the connection/)
    })
  })
})

describe('a worker the coordinator closes for anything but its token', () => {
  it('joins again, with its id', async () => {
    await withGrid({ workers: 0, memory: true }, async (g) => {
      const lines: string[] = []
      const peer = await startNodeWorker({ url: g.url, token: g.joinToken, executors: 1, log: (l) => lines.push(l) })
      try {
        const id = peer.peerId
        // A peer bug (or a message a task slipped past it): more bad messages than the coordinator tolerates.
        for (let i = 0; i < 25; i++) peer.conn.send({ t: 'sub', ids: [''] })
        await until(async () => lines.some((l) => /closed the connection/.test(l)), 10_000, 'the coordinator closes it')
        await until(async () => lines.some((l) => /reconnected as/.test(l)), 20_000, 'it joins again')
        assert.equal(peer.peerId, id)
        assert.ok((await workerIds(g)).includes(id))
      } finally { await peer.close() }
    })
  })
})

describe('one job\'s objects on a peer shared with another job', () => {
  it('cannot be read by the other job\'s tasks by naming their ids', async () => {
    await withGrid({ workers: 1, executors: 2, memory: true }, async (g, gridA) => {
      const token = (await api<{ token: string }>(g, '/api/tokens', { method: 'POST', body: JSON.stringify({ role: 'submit', label: 'B' }) })).body.token
      const gridB = await connect(g.url, { token, onLog: false, log: () => {} })
      try {
        // Job A keeps work on the peer (an actor), and a secret there: a large result (held by the peer) and a small one (inline).
        const Keeper = gridA.remote(class Keeper { ping() { return 'here' } })
        const keeper = Keeper.remote()
        assert.equal(await gridA.get(keeper.ping.remote()), 'here')
        const secretBig = gridA.remote(function secretBig() { return new Uint8Array(200_000).fill(7) }).remote()
        const secretSmall = gridA.remote(function secretSmall() { return 'A\'s secret' }).remote()
        await gridA.wait([secretBig, secretSmall], { timeoutMs: 20_000 })
        const steal = gridB.remote(async function steal(id: string) {
          const gr = (globalThis as unknown as { colony: { grid: { put(v: unknown): { constructor: new (id: string) => unknown }; get(r: unknown, o?: object): Promise<unknown> } } }).colony.grid
          const Ref = gr.put(0).constructor
          try { const v = await gr.get(new Ref(id), { timeoutMs: 5000 }); return `read: ${String(v).slice(0, 20)}` } catch (e) { return `refused: ${(e as Error).name}: ${(e as Error).message}` }
        })
        // Straight to the peer, past the client library: a raw fetch request on the executor's channel.
        const stealRaw = gridB.remote(function stealRaw(id: string) {
          const task = (globalThis as unknown as { colony: { taskId: string } }).colony.taskId
          return new Promise((resolve) => {
            process.on('message', (msgs: { k: string; req: number; value?: unknown; error?: { type: string; message: string } }[]) => {
              for (const m of msgs) if (m.k === 'reply' && m.req === 424242) resolve(m.error ? `refused: ${m.error.type}: ${m.error.message}` : `read: ${String(m.value).slice(0, 20)}`)
            })
            process.send!([{ k: 'req', req: 424242, task, op: { op: 'fetch', info: { id, size: 200_000 } } }])
            setTimeout(() => resolve('no answer'), 8000)
          })
        })
        for (const ref of [secretBig, secretSmall] as ObjectRef[]) {
          assert.match(String(await gridB.get(steal.remote(ref.id), { timeoutMs: 20_000 })), /^refused: AuthError/, `get ${ref.id}`)
        }
        assert.match(String(await gridB.get(stealRaw.remote(secretBig.id), { timeoutMs: 20_000 })), /^refused: AuthError/)
        // Job A itself still reads both.
        assert.equal((await gridA.get(secretBig) as Uint8Array).length, 200_000)
        assert.equal(await gridA.get(secretSmall), 'A\'s secret')
      } finally { await gridB.close() }
    })
  })
})
