/**
 * Async actors (`maxConcurrency`: calls that interleave at their awaits, still started in order,
 * at most n at once) and owned actors (one created inside another actor's call ends with it).
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { connect, PeerDiedError, TaskError, type ActorHandle, type Grid } from '@colony-grid/client'
import { api, startGrid, until, withGrid, type GridProcs } from './harness.js'

declare const colony: { grid: Grid }

type ActorRow = { id: string; name: string; state: string; peer?: string; restarts: number; owner?: string; error?: { type: string; message: string } }

let g: GridProcs
let grid: Grid & { jobId: string }

before(async () => {
  g = await startGrid({ workers: 2, executors: 1, memory: true })
  grid = await connect(g.url, { token: g.submitToken, onLog: false }) as Grid & { jobId: string }
})
after(async () => {
  await grid?.close()
  await g?.stop()
})

/** `wait` lasts until `open` is called, or `ms` at most (so a test that runs them one at a time cannot hang). */
class Gate {
  release?: () => void
  wait(ms: number): Promise<string> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.release = undefined; resolve('timed out') }, ms)
      this.release = () => { clearTimeout(timer); this.release = undefined; resolve('opened') }
    })
  }
  open(): string {
    if (!this.release) return 'nothing waiting'
    this.release()
    return 'released'
  }
}

/** Counts the calls in flight, and records the order they started in. */
class Tracker {
  started: number[] = []
  inFlight = 0
  most = 0
  async track(i: number, ms: number): Promise<number> {
    this.started.push(i)
    this.most = Math.max(this.most, ++this.inFlight)
    try {
      await new Promise((r) => setTimeout(r, ms))
      if (i === 5) throw new Error('call 5 fails, and gives its turn back')
      return i
    } finally { this.inFlight-- }
  }
  stats(): { started: number[]; most: number } { return { started: this.started, most: this.most } }
}

describe('an actor with maxConcurrency', () => {
  it('runs a later call while an earlier one awaits it', async () => {
    const gate = grid.remote(Gate).options({ maxConcurrency: 4 }).remote()
    const waiting = gate.wait.remote(20_000)
    const opener = gate.open.remote()
    assert.deepEqual(await grid.get([waiting, opener], { timeoutMs: 15_000 }), ['opened', 'released'])
  })

  it('by default (1) runs the later call only after the earlier one has ended', async () => {
    const gate = grid.remote(Gate).remote()
    const waiting = gate.wait.remote(2000)
    const opener = gate.open.remote()
    assert.deepEqual(await grid.get([waiting, opener], { timeoutMs: 15_000 }), ['timed out', 'nothing waiting'])
  })

  it('starts calls in submission order, and runs at most maxConcurrency of them at once', async () => {
    const tracker = grid.remote(Tracker).options({ maxConcurrency: 3 }).remote()
    const calls = Array.from({ length: 12 }, (_, i) => tracker.track.remote(i, 200))
    const { ready } = await grid.wait(calls, { numReturns: 12, timeoutMs: 20_000 })
    assert.equal(ready.length, 12)
    await assert.rejects(grid.get(calls[5]), /call 5 fails/)
    assert.deepEqual(await grid.get(calls.filter((_, i) => i !== 5)), [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11])
    const { started, most } = await grid.get(tracker.stats.remote())
    assert.deepEqual(started, Array.from({ length: 12 }, (_, i) => i))
    assert.equal(most, 3, 'three calls ran at once, never more')
  })

  it('refuses it on a class with checkpoint(), saying why', async () => {
    const Ledger = grid.remote(class Ledger {
      n = 0
      inc() { return ++this.n }
      checkpoint() { return this.n }
      restore(n: number) { this.n = n }
    })
    const ledger = Ledger.options({ maxConcurrency: 2 }).remote()
    await assert.rejects(grid.get(ledger.inc.remote(), { timeoutMs: 15_000 }), (e: unknown) =>
      e instanceof TaskError && /Ledger has checkpoint\(\), so it cannot have maxConcurrency 2: a checkpoint taken after one call would capture/.test(e.message))
    // Without it, the same class runs (one call at a time, checkpointed).
    assert.equal(await grid.get(Ledger.remote().inc.remote(), { timeoutMs: 15_000 }), 1)
  })

  it('refuses values that are not a whole number from 1 to 1000, and any use but an actor\'s creation', () => {
    const G = grid.remote(Gate)
    for (const bad of [0, 1.5, 10_000, -1]) {
      assert.throws(() => G.options({ maxConcurrency: bad }).remote(), /Gate: bad task options at maxConcurrency: maxConcurrency is a whole number of calls, from 1 to 1000/)
    }
    const gate = G.remote()
    assert.throws(() => gate.open.options({ maxConcurrency: 2 }).remote(), /maxConcurrency is an option of an actor's creation only/)
    assert.throws(() => grid.remote(function plain() { return 1 }).options({ maxConcurrency: 2 }).remote(), /plain: maxConcurrency is an option of an actor's creation only/)
  })

  it('fails a task that asks for a bad maxConcurrency from inside, with the reason', async () => {
    const inner = grid.remote(function makesOne() {
      colony.grid.remote(class Inner { ping() { return 1 } }).options({ maxConcurrency: 0 }).remote()
      return 'not reached'
    })
    await assert.rejects(grid.get(inner.remote(), { timeoutMs: 15_000 }), (e: unknown) =>
      e instanceof TaskError && /maxConcurrency: maxConcurrency is a whole number of calls, from 1 to 1000/.test(e.message))
  })
})

async function actorsOf(gp: GridProcs, jobId: string): Promise<Map<string, ActorRow>> {
  const rows = (await api<{ items: ActorRow[] }>(gp, `/api/jobs/${jobId}/actors?limit=10000`)).body.items
  return new Map(rows.map((a) => [a.id, a]))
}

const idOf = (h: { __actor: { actorId: string } }) => h.__actor.actorId

/** Its `spawn` creates two Childs, and the first of them a Grandchild; it returns their ids. */
class Parent {
  async spawn(): Promise<string[]> {
    const inner = colony.grid
    const Child = inner.remote(class Child {
      async spawn(): Promise<string> {
        const g2 = colony.grid
        const gc = g2.remote(class Grandchild { ping() { return 'grandchild' } }).remote()
        await g2.get(gc.ping.remote())
        return (gc as unknown as { __actor: { actorId: string } }).__actor.actorId
      }
      ping() { return 'child' }
    })
    const a = Child.remote(), b = Child.remote()
    const grandchild = await inner.get(a.spawn.remote())
    await inner.get(b.ping.remote())
    const ids = [a, b].map((h) => (h as unknown as { __actor: { actorId: string } }).__actor.actorId)
    return [...ids, grandchild]
  }
  ping() { return 'parent' }
}

describe('an actor created inside another actor\'s call', () => {
  it('ends, with its own children, when that actor is killed; the reason names the owner', async () => {
    const parent = grid.remote(Parent).remote()
    const [a, b, grandchild] = await grid.get(parent.spawn.remote(), { timeoutMs: 20_000 })
    const pid = idOf(parent)
    const before = await actorsOf(g, grid.jobId)
    assert.equal(before.get(a)?.owner, pid)
    assert.equal(before.get(b)?.owner, pid)
    assert.equal(before.get(grandchild)?.owner, a)
    assert.equal(before.get(pid)?.owner, undefined, 'the driver\'s actor has no owner')
    for (const id of [pid, a, b, grandchild]) assert.equal(before.get(id)?.state, 'alive')

    grid.kill(parent)
    const after = await until(async () => {
      const now = await actorsOf(g, grid.jobId)
      return [pid, a, b, grandchild].every((id) => now.get(id)?.state === 'dead') && now
    }, 10_000, 'the parent, both children and the grandchild are dead')
    assert.match(after.get(a)!.error!.message, new RegExp(`its owner actor Parent \\(${pid}\\) ended`))
    assert.match(after.get(b)!.error!.message, new RegExp(`its owner actor Parent \\(${pid}\\) ended`))
    assert.match(after.get(grandchild)!.error!.message, new RegExp(`its owner actor Child \\(${a}\\) ended`))
    assert.equal(after.get(a)!.error!.type, 'CancelledError')
  })

  it('leaves its owner alone when it is killed itself', async () => {
    const parent = grid.remote(Parent).remote()
    const [a, b, grandchild] = await grid.get(parent.spawn.remote(), { timeoutMs: 20_000 })
    // A handle to a child, from its id: the driver kills it.
    const child = { __actor: { actorId: a, className: 'Child', methods: ['ping'] } } as unknown as ActorHandle<unknown>
    grid.kill(child)
    await until(async () => {
      const now = await actorsOf(g, grid.jobId)
      return now.get(a)?.state === 'dead' && now.get(grandchild)?.state === 'dead'
    }, 10_000, 'the child (and its own child) end')
    assert.equal(await grid.get(parent.ping.remote(), { timeoutMs: 10_000 }), 'parent')
    const now = await actorsOf(g, grid.jobId)
    assert.equal(now.get(idOf(parent))?.state, 'alive')
    assert.equal(now.get(b)?.state, 'alive', 'its sibling lives on')
    grid.kill(parent)
  })

  it('is not owned by an actor when a plain task created it, even one that actor submitted', async () => {
    class Lonely { ping() { return 'lonely' } }
    const makeOne = grid.remote(async function makeOne(): Promise<string> {
      const h = colony.grid.remote(class Lonely { ping() { return 'lonely' } }).remote()
      await colony.grid.get(h.ping.remote())
      return (h as unknown as { __actor: { actorId: string } }).__actor.actorId
    })
    // Its call submits a task, and the task creates the actor: the task made it, not the Submitter.
    const Submitter = grid.remote(class Submitter {
      async viaTask(): Promise<string> {
        const make = colony.grid.remote(async function makeInside(): Promise<string> {
          const h = colony.grid.remote(class Lonely { ping() { return 'lonely' } }).remote()
          await colony.grid.get(h.ping.remote())
          return (h as unknown as { __actor: { actorId: string } }).__actor.actorId
        })
        return colony.grid.get(make.remote())
      }
    })
    const fromDriversTask = await grid.get(makeOne.remote(), { timeoutMs: 20_000 })
    const submitter = Submitter.remote()
    const fromActorsTask = await grid.get(submitter.viaTask.remote(), { timeoutMs: 20_000 })
    const unrelated = grid.remote(Lonely).remote()
    assert.equal(await grid.get(unrelated.ping.remote()), 'lonely')
    grid.kill(unrelated)
    grid.kill(submitter)
    await until(async () => {
      const now = await actorsOf(g, grid.jobId)
      return now.get(idOf(unrelated))?.state === 'dead' && now.get(idOf(submitter))?.state === 'dead'
    }, 10_000, 'the killed actors are dead')
    const now = await actorsOf(g, grid.jobId)
    for (const id of [fromDriversTask, fromActorsTask]) {
      assert.equal(now.get(id)?.state, 'alive')
      assert.equal(now.get(id)?.owner, undefined)
    }
  })
})

describe('an actor whose owner is restarted', () => {
  it('ends: the owner\'s new instance makes its own', async () => {
    await withGrid({ workers: 2, executors: 1, memory: true }, async (g2, grid2) => {
      // Each holds the one cpu of a peer: the owner on one, its child on the other.
      const Owner = grid2.remote(class Owner {
        async spawn(): Promise<string> {
          const h = colony.grid.remote(class Held { ping() { return 'held' } }).options({ resources: { cpu: 1 } }).remote()
          await colony.grid.get(h.ping.remote())
          return (h as unknown as { __actor: { actorId: string } }).__actor.actorId
        }
        ping() { return 'owner' }
      }).options({ resources: { cpu: 1 }, maxRestarts: 1 })
      const owner = Owner.remote()
      const child = await grid2.get(owner.spawn.remote(), { timeoutMs: 20_000 })
      const rows = await actorsOf(g2, grid2.jobId)
      const ownerPeer = rows.get(idOf(owner))!.peer!
      assert.notEqual(rows.get(child)!.peer, ownerPeer)
      await g2.workers[g2.workerIds.indexOf(ownerPeer)].kill('SIGKILL')
      // The child's end frees the only cpu left: the owner is re-created there.
      assert.equal(await grid2.get(owner.ping.options({ maxRetries: 1 }).remote(), { timeoutMs: 30_000 }), 'owner')
      const after = await actorsOf(g2, grid2.jobId)
      assert.equal(after.get(child)?.state, 'dead')
      assert.match(after.get(child)!.error!.message, new RegExp(`its owner actor Owner \\(${idOf(owner)}\\) was restarted`))
      assert.equal(after.get(idOf(owner))?.restarts, 1)
    })
  })
})

describe('ownership across a coordinator restart (SQLite)', () => {
  it('is still known, so killing the owner still ends its child', async () => {
    await withGrid({ workers: 2, executors: 1 }, async (g2, grid2) => {
      const parent = grid2.remote(Parent).remote()
      const [a, b, grandchild] = await grid2.get(parent.spawn.remote(), { timeoutMs: 20_000 })
      await g2.coordinator.kill('SIGKILL')
      await g2.startCoordinator()
      await g2.coordinator.waitFor(/restored \d+ job/)
      const rows = await until(async () => {
        const now = await actorsOf(g2, grid2.jobId)
        return [idOf(parent), a, b, grandchild].every((id) => now.get(id)?.state === 'alive') && now
      }, 20_000, 'the peers claim their actors back')
      assert.equal(rows.get(a)?.owner, idOf(parent))
      assert.equal(rows.get(grandchild)?.owner, a)
      assert.equal(await grid2.get(parent.ping.remote(), { timeoutMs: 20_000 }), 'parent')
      grid2.kill(parent)
      await until(async () => {
        const now = await actorsOf(g2, grid2.jobId)
        return [idOf(parent), a, b, grandchild].every((id) => now.get(id)?.state === 'dead')
      }, 10_000, 'all four are dead')
    })
  })
})

// Last on this file's grid: it kills a worker.
describe('an async actor whose peer dies', () => {
  it('fails each of its calls in flight when its peer dies', async () => {
    const gate = grid.remote(Gate).options({ maxConcurrency: 4 }).remote()
    const calls = [gate.wait.remote(60_000), gate.wait.remote(60_000), gate.wait.remote(60_000)]
    const host = await until(async () => {
      const tasks = (await api<{ items: { state: string; peer?: string; actor?: string }[] }>(g, `/api/jobs/${grid.jobId}/tasks?limit=10000`)).body.items
      const running = tasks.filter((t) => t.actor === gate.__actor.actorId && t.state === 'running')
      return running.length === 3 && running[0].peer
    }, 15_000, 'the three calls are in flight on the actor\'s peer')
    await g.workers[g.workerIds.indexOf(host)].kill('SIGKILL')
    for (const call of calls) {
      await assert.rejects(grid.get(call, { timeoutMs: 15_000 }), (e: unknown) => e instanceof PeerDiedError && /died with peer .* while running Gate.wait/.test(e.message))
    }
  })
})
