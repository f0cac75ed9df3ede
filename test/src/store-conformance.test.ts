/**
 * The control store's contract (coordinator/src/store/types.ts): one list of cases, written once and
 * run against every store: memory, SQLite (a file), Redis (a real redis-server with AOF, fsync always).
 * Then what only Redis can do: fail while the server is down and land its writes, once, when it is back.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { MemoryStore, RedisStore, SqliteStore, type ControlStore } from '@colony-grid/coordinator'
import { returnId, type TaskSpec } from '@colony-grid/shared'
import { until } from './harness.js'
import { startRedisServer, type RedisServer } from './redis-server.js'

interface Backend {
  name: string
  /** A second store on the same tables sees what was committed (memory: only the same store does). */
  durable: boolean
  /** A store on new, empty tables. */
  fresh(): Promise<ControlStore>
  /** Another store on the tables of `s`, as a restarted coordinator opens them (memory: `s` itself). */
  again(s: ControlStore): Promise<ControlStore>
}

interface Case { name: string; durableOnly?: boolean; run(b: Backend): Promise<void> }

const spec = (id: string, name = 'f', deps: string[] = []): TaskSpec =>
  ({ id, name, fn: 'f1', args: new Uint8Array([0x90]), deps, opts: {} })
const text = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b) : undefined)
const bytes = (b: Uint8Array | undefined) => (b ? [...b] : undefined)
const sorted = <T>(xs: T[]) => [...xs].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1))

async function fill(s: ControlStore): Promise<void> {
  s.jobs.put({ id: 'j_1', name: 'demo', state: 'running', createdAt: 1 })
  s.tasks.put({ id: 't.a.1', job: 'j_1', spec: { id: 't.a.1', name: 'f', fn: 'f1', args: new Uint8Array([0x90]), deps: [], opts: { maxRetries: 2 } }, state: 'waiting', attempts: 0 })
  s.tasks.put({ id: 't.a.2', job: 'j_1', spec: { id: 't.a.2', name: 'g', fn: 'f1', args: new Uint8Array([0x90]), deps: ['t.a.1.r0'], opts: {} }, state: 'waiting', attempts: 0 })
  s.tasks.setState('t.a.1', 'finished', 1)
  s.objects.put({ id: 't.a.1.r0', job: 'j_1', size: 3, inline: new Uint8Array([1, 2, 3]) })
  s.objects.put({ id: 't.a.9.r0', job: 'j_1', size: 0, error: { type: 'TaskError', message: 'boom', remoteStack: 'at f' } })
  s.actors.put({ id: 't.a.3', job: 'j_1', name: 'Counter', state: 'alive', peer: 'p_1', restarts: 0 })
  s.fns.put('j_1', { id: 'f1', kind: 'inline', name: 'f', src: '(x) => x' })
  s.peers.put({ id: 'p_1', kind: 'node', role: 'worker', lastSeen: 5, secretHash: 'ab'.repeat(32), origin: 'k_1@127.0.0.1' })
  await s.bundles.put('abc123', new TextEncoder().encode('export default 1'), 'k_owner')
  s.origins.put({ origin: 'k_1@127.0.0.1', reputation: 0.25, quarantined: true })
  s.origins.put({ origin: 'k_2@10.0.0.1', reputation: 0.5, quarantined: false })
  s.origins.remove('k_2@10.0.0.1')
  s.locations.put({ object: 'o.a.1', peer: 'p_1' })
  s.locations.put({ object: 'o.a.1', peer: 'p_2' })
  s.locations.put({ object: 'o.a.2', peer: 'p_1' })
  s.locations.remove({ object: 'o.a.1', peer: 'p_2' })
  s.locations.removeAll('o.a.2')
}

async function check(s: ControlStore): Promise<void> {
  const snap = await s.load()
  assert.deepEqual(snap.jobs.map((j) => j.id), ['j_1'])
  assert.deepEqual(snap.tasks.map((t) => [t.id, t.state, t.attempts]), [['t.a.1', 'finished', 1], ['t.a.2', 'waiting', 0]])
  assert.deepEqual(snap.tasks[1].spec.deps, ['t.a.1.r0'])
  assert.equal(snap.tasks[0].spec.opts.maxRetries, 2)
  assert.deepEqual(bytes(snap.objects.find((o) => o.id === 't.a.1.r0')!.inline), [1, 2, 3])
  assert.equal(snap.objects.find((o) => o.id === 't.a.9.r0')!.error!.message, 'boom')
  assert.equal(snap.actors[0].name, 'Counter')
  assert.equal(snap.fns[0].def.id, 'f1')
  assert.equal(snap.fns[0].job, 'j_1')
  assert.equal(snap.peers[0].id, 'p_1')
  assert.deepEqual([snap.peers[0].secretHash, snap.peers[0].origin], ['ab'.repeat(32), 'k_1@127.0.0.1'])
  assert.equal(text(await s.bundles.get('abc123')), 'export default 1')
  assert.deepEqual(snap.bundles, [{ hash: 'abc123', owners: ['k_owner'] }])
  assert.deepEqual(snap.origins, [{ origin: 'k_1@127.0.0.1', reputation: 0.25, quarantined: true }])
  assert.deepEqual(snap.locations, [{ object: 'o.a.1', peer: 'p_1' }])
}

const cases: Case[] = [
  {
    name: 'keeps every table, across a reopen',
    async run(b) {
      const a = await b.fresh()
      await fill(a)
      await a.commit()
      await a.close()
      const s = await b.again(a)
      await check(s)
      s.peers.remove('p_1')
      await s.commit()
      assert.deepEqual((await s.load()).peers, [])
      await s.close()
    },
  },
  {
    name: 'only committed writes are visible, to the store and to another on the same tables; close commits the rest',
    durableOnly: true,
    async run(b) {
      const a = await b.fresh()
      await fill(a)
      assert.deepEqual((await a.load()).tasks, [], 'nothing is written before commit (group commit)')
      await a.commit()
      a.jobs.put({ id: 'j_2', name: 'late', state: 'running', createdAt: 2 })
      a.tasks.put({ id: 't.b.1', job: 'j_2', spec: spec('t.b.1'), state: 'waiting', attempts: 0 })
      a.tasks.setState('t.a.2', 'running', 1)
      // `a` crashes here, as far as the tables know: its queue never reached them.
      const crashed = await b.again(a)
      await check(a)
      await check(crashed)
      await crashed.close()
      await a.close()
      const c = await b.again(a)
      const snap = await c.load()
      assert.deepEqual(sorted(snap.jobs.map((j) => j.id)), ['j_1', 'j_2'])
      assert.deepEqual(snap.tasks.map((t) => [t.id, t.state, t.attempts]), [['t.a.1', 'finished', 1], ['t.a.2', 'running', 1], ['t.b.1', 'waiting', 0]])
      await c.close()
    },
  },
  {
    name: 'retention: dropDetails leaves a job\'s summary row and nothing of its work; remove takes the row; other jobs are untouched',
    async run(b) {
      const s = await b.fresh()
      fill(s)
      s.jobs.put({ id: 'j_2', name: 'other', state: 'running', createdAt: 2 })
      s.tasks.put({ id: 't.b.1', job: 'j_2', spec: spec('t.b.1'), state: 'waiting', attempts: 0 })
      s.objects.put({ id: 'o.b.1', job: 'j_2', size: 1, inline: new Uint8Array([9]) })
      s.locations.put({ object: 'o.b.2', peer: 'p_1' })
      s.fns.put('j_2', { id: 'f1', kind: 'inline', name: 'f', src: '(x) => x' })
      s.tasks.finish('t.a.1', 1, { size: 1, inline: new Uint8Array([7]) })
      s.objects.put({ id: 'o.a.1', job: 'j_1', size: 10 })
      await s.commit()
      s.jobs.put({ id: 'j_1', name: 'demo', state: 'finished', createdAt: 1, finishedAt: 5, summary: { tasks: { waiting: 0, ready: 0, running: 0, finished: 2, failed: 0, cancelled: 0 }, result: new Uint8Array([7]) } })
      s.jobs.dropDetails('j_1', { tasks: ['t.a.1', 't.a.2'], objects: ['t.a.1.r0', 't.a.9.r0', 'o.a.1', 'o.a.2'], actors: ['t.a.3'], fns: ['f1'] })
      await s.commit()
      const after = await s.load()
      assert.deepEqual(sorted(after.jobs.map((j) => j.id)), ['j_1', 'j_2'])
      assert.deepEqual([...after.jobs.find((j) => j.id === 'j_1')!.summary!.result!], [7])
      assert.deepEqual(after.tasks.map((t) => t.id), ['t.b.1'])
      assert.deepEqual(sorted(after.objects.map((o) => o.id)), ['o.b.1'])
      assert.deepEqual(after.actors, [])
      assert.deepEqual(after.fns.map((f) => f.job), ['j_2'])
      assert.deepEqual(after.locations, [{ object: 'o.b.2', peer: 'p_1' }])
      s.jobs.remove('j_1')
      await s.commit()
      assert.deepEqual((await s.load()).jobs.map((j) => j.id), ['j_2'])
      await s.close()
    },
  },
  {
    name: 'spent records: dropRecords takes a running job\'s named tasks (with their results) and objects (with their locations); the rest stay in order',
    async run(b) {
      const s = await b.fresh()
      s.jobs.put({ id: 'j_1', name: 'serving', state: 'running', createdAt: 1 })
      for (const id of ['t.1', 't.2', 't.3', 't.4']) s.tasks.put({ id, job: 'j_1', spec: spec(id), state: 'waiting', attempts: 0 })
      s.tasks.finish('t.1', 1, { size: 1, inline: new Uint8Array([1]) })
      s.tasks.finish('t.3', 1, { size: 1, inline: new Uint8Array([3]) })
      s.objects.put({ id: 't.2.r0', job: 'j_1', size: 99 })
      s.objects.put({ id: 'o.put.1', job: 'j_1', size: 5 })
      s.objects.put({ id: 'o.put.2', job: 'j_1', size: 6 })
      s.locations.put({ object: 'o.put.1', peer: 'p_1' })
      s.locations.put({ object: 'o.put.2', peer: 'p_2' })
      await s.commit()
      // A freed result leaves a tombstone row (objects.put with its error): it goes with its task.
      s.objects.put({ id: 't.1.r0', job: 'j_1', size: 1, error: { type: 'ObjectLostError', message: 'freed' } })
      s.jobs.dropRecords('j_1', { tasks: ['t.1', 't.2'], objects: ['t.1.r0', 't.2.r0', 'o.put.1'] })
      await s.commit()
      const again = await b.again(s)
      const after = await again.load()
      assert.deepEqual(after.jobs.map((j) => [j.id, j.state]), [['j_1', 'running']])
      assert.deepEqual(after.tasks.map((t) => t.id), ['t.3', 't.4'])
      assert.deepEqual(sorted(after.objects.map((o) => o.id)), ['o.put.2', 't.3.r0'])
      assert.deepEqual(after.locations, [{ object: 'o.put.2', peer: 'p_2' }])
      // New tasks still go after the rest.
      again.tasks.put({ id: 't.5', job: 'j_1', spec: spec('t.5'), state: 'waiting', attempts: 0 })
      await again.commit()
      assert.deepEqual((await again.load()).tasks.map((t) => t.id), ['t.3', 't.4', 't.5'])
      await again.close()
    },
  },
  {
    name: 'tasks.put is insert-or-ignore: a second put of an id changes nothing',
    async run(b) {
      const s = await b.fresh()
      s.tasks.put({ id: 't.1', job: 'j_1', spec: spec('t.1', 'first'), state: 'waiting', attempts: 0 })
      s.tasks.put({ id: 't.1', job: 'j_9', spec: spec('t.1', 'same batch'), state: 'failed', attempts: 7 })
      s.tasks.put({ id: 't.main', job: 'j_1', spec: spec('t.main', 'main'), state: 'waiting', attempts: 0, main: true })
      s.tasks.setState('t.1', 'running', 1)
      await s.commit()
      s.tasks.put({ id: 't.1', job: 'j_9', spec: spec('t.1', 'later batch'), state: 'finished', attempts: 9, error: { type: 'TaskError', message: 'no' } })
      await s.commit()
      const again = await b.again(s)
      const snap = await again.load()
      assert.deepEqual(snap.tasks.map((t) => [t.id, t.job, t.spec.name, t.state, t.attempts, t.error, !!t.main]), [
        ['t.1', 'j_1', 'first', 'running', 1, undefined, false],
        ['t.main', 'j_1', 'main', 'waiting', 0, undefined, true],
      ])
      await again.close()
      await s.close()
    },
  },
  {
    name: 'load gives the tasks in submission order',
    async run(b) {
      const s = await b.fresh()
      // Ids whose order is neither sorted nor a hash order, put over several commits, some put twice.
      const ids = Array.from({ length: 60 }, (_, i) => `t.${((i * 37) % 60).toString(36)}.${'x'.repeat(i % 5)}`)
      for (let i = 0; i < ids.length; i++) {
        s.tasks.put({ id: ids[i], job: 'j_1', spec: spec(ids[i]), state: 'waiting', attempts: 0 })
        if (i % 7 === 0) s.tasks.setState(ids[i], 'running', 1)
        if (i > 0 && i % 9 === 0) s.tasks.put({ id: ids[i - 9], job: 'j_1', spec: spec(ids[i - 9]), state: 'waiting', attempts: 0 })
        if (i % 20 === 19) await s.commit()
      }
      await s.commit()
      assert.deepEqual((await s.load()).tasks.map((t) => t.id), ids)
      await s.close()
      const again = await b.again(s)
      const snap = await again.load()
      assert.deepEqual(snap.tasks.map((t) => t.id), ids)
      assert.deepEqual(snap.tasks.filter((t) => t.state === 'running').map((t) => t.id), ids.filter((_, i) => i % 7 === 0))
      await again.close()
    },
  },
  {
    name: 'tasks.finish stores the state and the small result, from which load derives the return object',
    async run(b) {
      const s = await b.fresh()
      s.tasks.put({ id: 't.1', job: 'j_1', spec: spec('t.1'), state: 'waiting', attempts: 0 })
      s.tasks.setState('t.1', 'running', 1)
      s.tasks.finish('t.1', 2, { size: 3, inline: new Uint8Array([7, 8, 9]) })
      s.tasks.put({ id: 't.2', job: 'j_1', spec: spec('t.2'), state: 'waiting', attempts: 0 })
      // On a task that does not exist these do nothing, even when it is put later.
      s.tasks.finish('t.nobody', 1, { size: 1, inline: new Uint8Array([1]) })
      s.tasks.setState('t.3', 'running', 5)
      s.tasks.put({ id: 't.3', job: 'j_1', spec: spec('t.3'), state: 'waiting', attempts: 0 })
      await s.commit()
      const again = await b.again(s)
      const snap = await again.load()
      assert.deepEqual(snap.tasks.map((t) => [t.id, t.state, t.attempts]), [['t.1', 'finished', 2], ['t.2', 'waiting', 0], ['t.3', 'waiting', 0]])
      const r = snap.objects.filter((o) => o.id === returnId('t.1'))
      assert.deepEqual(r.map((o) => [o.id, o.job, o.size, bytes(o.inline)]), [[returnId('t.1'), 'j_1', 3, [7, 8, 9]]])
      assert.deepEqual(snap.objects.map((o) => o.id), [returnId('t.1')], 'no object for a task that did not finish, or does not exist')
      await again.close()
      await s.close()
    },
  },
  {
    name: 'put replaces a row (jobs, objects, actors, peers, origins); remove deletes it; fns are keyed by job and id',
    async run(b) {
      const s = await b.fresh()
      s.jobs.put({ id: 'j_1', name: 'demo', state: 'running', createdAt: 1 })
      s.jobs.put({ id: 'j_1', name: 'demo', state: 'finished', createdAt: 1, finishedAt: 5, error: { type: 'Error', message: 'x' } })
      s.objects.put({ id: 'o.1', job: 'j_1', size: 1, inline: new Uint8Array([1]) })
      s.objects.put({ id: 'o.1', job: 'j_1', size: 2, hash: 'cafe', error: { type: 'TaskError', message: 'gone' } })
      s.actors.put({ id: 'a.1', job: 'j_1', name: 'Counter', state: 'pending', restarts: 0 })
      s.actors.put({ id: 'a.1', job: 'j_1', name: 'Counter', state: 'alive', peer: 'p_1', restarts: 1, checkpoint: new Uint8Array([4, 2]) })
      s.peers.put({ id: 'p_1', kind: 'node', role: 'worker', lastSeen: 1 })
      s.peers.put({ id: 'p_1', kind: 'node', role: 'worker', lastSeen: 2, reputation: 0.5, quarantined: true })
      s.peers.put({ id: 'p_2', kind: 'browser', role: 'worker', lastSeen: 1 })
      s.peers.remove('p_2')
      s.peers.remove('p_never')
      s.origins.put({ origin: 'k_1@1.2.3.4', reputation: 1, quarantined: false })
      s.origins.put({ origin: 'k_1@1.2.3.4', reputation: 0.1, quarantined: true })
      s.origins.remove('k_never@1.2.3.4')
      s.fns.put('j_1', { id: 'f1', kind: 'inline', name: 'f', src: '(x) => x' })
      s.fns.put('j_2', { id: 'f1', kind: 'inline', name: 'f', src: '(x) => x + 1' })
      await s.commit()
      const again = await b.again(s)
      const snap = await again.load()
      assert.deepEqual(snap.jobs.map((j) => [j.id, j.state, j.finishedAt, j.error?.message]), [['j_1', 'finished', 5, 'x']])
      assert.deepEqual(snap.objects.map((o) => [o.id, o.size, o.inline, o.hash, o.error?.message]), [['o.1', 2, undefined, 'cafe', 'gone']])
      assert.deepEqual(snap.actors.map((a) => [a.id, a.state, a.peer, a.restarts, bytes(a.checkpoint)]), [['a.1', 'alive', 'p_1', 1, [4, 2]]])
      assert.deepEqual(snap.peers.map((p) => [p.id, p.lastSeen, p.reputation, p.quarantined]), [['p_1', 2, 0.5, true]])
      assert.deepEqual(snap.origins, [{ origin: 'k_1@1.2.3.4', reputation: 0.1, quarantined: true }])
      assert.deepEqual(sorted(snap.fns.map((f) => [f.job, f.def.id, f.def.kind === 'inline' ? f.def.src : ''])), [['j_1', 'f1', '(x) => x'], ['j_2', 'f1', '(x) => x + 1']])
      await again.close()
      await s.close()
    },
  },
  {
    name: 'locations are a set per object: put twice is once, remove takes one peer, removeAll every peer',
    async run(b) {
      const s = await b.fresh()
      s.locations.put({ object: 'o.1', peer: 'p_1' })
      s.locations.put({ object: 'o.1', peer: 'p_1' })
      s.locations.put({ object: 'o.1', peer: 'p_2' })
      s.locations.remove({ object: 'o.1', peer: 'p_2' })
      s.locations.remove({ object: 'o.1', peer: 'p_never' })
      s.locations.put({ object: 'o.2', peer: 'p_1' })
      s.locations.put({ object: 'o.2', peer: 'p_2' })
      s.locations.removeAll('o.2')
      s.locations.put({ object: 'o.3', peer: 'p_1' })
      s.locations.remove({ object: 'o.3', peer: 'p_1' })
      await s.commit()
      s.locations.put({ object: 'o.3', peer: 'p_3' })
      s.locations.put({ object: 'o.2', peer: 'p_3' })
      await s.commit()
      const again = await b.again(s)
      assert.deepEqual(sorted((await again.load()).locations), [{ object: 'o.1', peer: 'p_1' }, { object: 'o.2', peer: 'p_3' }, { object: 'o.3', peer: 'p_3' }])
      await again.close()
      await s.close()
    },
  },
  {
    name: 'bundles: the code is stored once, every owner is kept, and put is durable without a commit',
    async run(b) {
      const s = await b.fresh()
      const enc = (t: string) => new TextEncoder().encode(t)
      await s.bundles.put('h1', enc('one'), 'k_1')
      await s.bundles.put('h1', enc('two'), 'k_2')
      await s.bundles.put('h1', enc('three'))
      await s.bundles.put('h1', enc('four'), 'k_1')
      await s.bundles.put('h2', enc('x'))
      assert.equal(text(await s.bundles.get('h1')), 'one')
      assert.equal(await s.bundles.get('h_none'), undefined)
      const again = await b.again(s) // no commit: bundles skip the queue
      const snap = await again.load()
      assert.deepEqual(sorted(snap.bundles.map((x) => ({ hash: x.hash, owners: [...x.owners].sort() }))), [{ hash: 'h1', owners: ['k_1', 'k_2'] }, { hash: 'h2', owners: [] }])
      assert.equal(text(await again.bundles.get('h1')), 'one')
      await again.close()
      await s.close()
    },
  },
  {
    name: 'bundles: remove takes the code and its owners, durably without a commit; a put after it stands',
    async run(b) {
      const s = await b.fresh()
      const enc = (t: string) => new TextEncoder().encode(t)
      await s.bundles.put('h1', enc('one'), 'k_1')
      await s.bundles.put('h1', enc('one'), 'k_2')
      await s.bundles.put('h2', enc('two'), 'k_1')
      await s.bundles.put('h3', enc('three'), 'k_3')
      await s.bundles.remove('h1')
      await s.bundles.remove('h3')
      await s.bundles.remove('h_none')
      assert.equal(await s.bundles.get('h1'), undefined)
      await s.bundles.put('h3', enc('three again'), 'k_4')
      const again = await b.again(s)
      const snap = await again.load()
      assert.deepEqual(sorted(snap.bundles.map((x) => ({ hash: x.hash, owners: [...x.owners].sort() }))), [{ hash: 'h2', owners: ['k_1'] }, { hash: 'h3', owners: ['k_4'] }])
      assert.equal(text(await again.bundles.get('h3')), 'three again')
      await again.close()
      await s.close()
    },
  },
  {
    name: 'states: get gives back every byte value and when it was written; put replaces; remove takes one key; durable without a commit, across a reopen',
    async run(b) {
      const s = await b.fresh()
      const all = Uint8Array.from({ length: 512 }, (_, i) => (i * 7 + 3) % 256)
      // A view into a larger buffer: only its own bytes are stored.
      const framed = new Uint8Array([9, 9, ...all, 9, 9]).subarray(2, 2 + all.length)
      await s.states.put('k_1', 'tune/abc/trial-1', framed, 1000)
      await s.states.put('k_1', 'tune/abc/trial-2', new TextEncoder().encode('first'), 1001)
      await s.states.put('k_1', 'tune/abc/trial-2', new TextEncoder().encode('second, longer'), 1002)
      await s.states.put('k_1', 'empty', new Uint8Array(0), 1003)
      await s.states.put('k_1', 'gone', new Uint8Array([1]), 1004)
      await s.states.put('k_2', 'tune/abc/trial-1', new Uint8Array([42]), 1005)
      await s.states.remove('k_1', 'gone')
      await s.states.remove('k_1', 'never-written')
      await s.states.remove('k_9', 'tune/abc/trial-1')
      await s.close() // no commit: states skip the queue
      const again = await b.again(s)
      const one = await again.states.get('k_1', 'tune/abc/trial-1')
      assert.deepEqual([bytes(one?.value), one?.updatedAt], [[...all], 1000])
      assert.deepEqual(new Set(one!.value), new Set(Array.from({ length: 256 }, (_, i) => i)), 'every byte value, 0 to 255')
      const two = await again.states.get('k_1', 'tune/abc/trial-2')
      assert.deepEqual([text(two?.value), two?.updatedAt], ['second, longer', 1002])
      const empty = await again.states.get('k_1', 'empty')
      assert.deepEqual([empty?.value.byteLength, empty?.updatedAt], [0, 1003])
      assert.equal(await again.states.get('k_1', 'gone'), undefined)
      assert.equal(await again.states.get('k_3', 'tune/abc/trial-1'), undefined, 'another owner\'s key is not this one\'s')
      assert.deepEqual(bytes((await again.states.get('k_2', 'tune/abc/trial-1'))?.value), [42])
      await again.close()
    },
  },
  {
    name: 'states: list gives an owner\'s keys under a prefix, in key order, with sizes and times; never another owner\'s, nor another prefix\'s',
    async run(b) {
      const s = await b.fresh()
      const put = (owner: string, key: string, n: number, at: number) => s.states.put(owner, key, new Uint8Array(n), at)
      await put('k_1', 'tune/b/2', 2, 12)
      await put('k_1', 'tune/b/1', 1, 11)
      await put('k_1', 'tune/bb', 3, 13)
      await put('k_1', 'tune-x', 4, 14)
      await put('k_1', 'tunf', 5, 15)
      await put('k_1', 'a', 6, 16)
      // Owners whose ids start with another's, and the same keys under them.
      await put('k_12', 'tune/b/1', 7, 17)
      await put('k_', 'tune/b/3', 8, 18)
      const keys = async (owner: string, prefix: string) => (await s.states.list(owner, prefix)).map((x) => x.key)
      assert.deepEqual(await s.states.list('k_1', 'tune/b/'), [{ key: 'tune/b/1', size: 1, updatedAt: 11 }, { key: 'tune/b/2', size: 2, updatedAt: 12 }])
      assert.deepEqual(await keys('k_1', 'tune/b'), ['tune/b/1', 'tune/b/2', 'tune/bb'])
      assert.deepEqual(await keys('k_1', 'tune'), ['tune-x', 'tune/b/1', 'tune/b/2', 'tune/bb'])
      assert.deepEqual(await keys('k_1', ''), ['a', 'tune-x', 'tune/b/1', 'tune/b/2', 'tune/bb', 'tunf'])
      assert.deepEqual(await keys('k_1', 'tune/b/1'), ['tune/b/1'], 'a whole key is its own prefix')
      assert.deepEqual(await keys('k_1', 'tune/c'), [])
      assert.deepEqual(await keys('k_12', ''), ['tune/b/1'])
      assert.deepEqual(await keys('k_', 'tune'), ['tune/b/3'])
      assert.deepEqual(await keys('k_9', ''), [])
      await s.states.remove('k_1', 'tune/b/1')
      await put('k_1', 'tune/b/2', 20, 30)
      assert.deepEqual(await s.states.list('k_1', 'tune/b/'), [{ key: 'tune/b/2', size: 20, updatedAt: 30 }], 'a replaced key lists once, as it is now')
      await s.close()
    },
  },
  {
    name: 'states: expire drops the rows of every owner written before the time, however many, and none written at or after it',
    async run(b) {
      const s = await b.fresh()
      // More old rows than Redis drops in one step.
      const old = Array.from({ length: 1050 }, (_, i) => `old/${i}`)
      await Promise.all(old.map((key, i) => s.states.put(i % 2 ? 'k_1' : 'k_2', key, new Uint8Array([i % 256]), 100 + (i % 50))))
      await s.states.put('k_1', 'at-the-time', new Uint8Array([1]), 500)
      await s.states.put('k_2', 'newer', new Uint8Array([2]), 900)
      await s.states.put('k_1', 'old/1', new Uint8Array([3]), 600) // rewritten: young again
      assert.equal(await s.states.expire(500), old.length - 1)
      assert.deepEqual((await s.states.list('k_1', '')).map((x) => [x.key, x.updatedAt]), [['at-the-time', 500], ['old/1', 600]])
      assert.deepEqual((await s.states.list('k_2', '')).map((x) => x.key), ['newer'])
      assert.equal(await s.states.get('k_2', 'old/0'), undefined)
      assert.equal(await s.states.expire(500), 0)
      const again = await b.again(s)
      assert.deepEqual((await again.states.list('k_1', '')).map((x) => x.key), ['at-the-time', 'old/1'])
      await again.close()
      await s.close()
    },
  },
  {
    name: 'commit: calls made while one runs each cover the writes queued before them; an empty commit resolves',
    async run(b) {
      const s = await b.fresh()
      await s.commit()
      const calls: Promise<void>[] = []
      for (let i = 0; i < 5; i++) {
        s.jobs.put({ id: `j_${i}`, name: 'x', state: 'running', createdAt: i })
        s.tasks.put({ id: `t.${i}`, job: `j_${i}`, spec: spec(`t.${i}`), state: 'waiting', attempts: 0 })
        calls.push(s.commit())
      }
      await Promise.all(calls)
      const again = await b.again(s)
      const snap = await again.load()
      assert.deepEqual(sorted(snap.jobs.map((j) => j.id)), ['j_0', 'j_1', 'j_2', 'j_3', 'j_4'])
      assert.deepEqual(snap.tasks.map((t) => t.id), ['t.0', 't.1', 't.2', 't.3', 't.4'])
      await again.close()
      await s.close()
    },
  },
]

// One server for the file, as durable as it gets: every EXEC fsynced to the AOF before it is answered.
let redis: RedisServer
let prefixes = 0
const tmp = mkdtempSync(join(tmpdir(), 'colony-store-'))
let files = 0
const opened: ControlStore[] = []
const track = (s: ControlStore) => { opened.push(s); return s }

before(async () => { redis = await startRedisServer({ appendOnly: true }) })
after(async () => {
  for (const s of opened) await s.close().catch(() => {})
  await redis?.dispose()
  rmSync(tmp, { recursive: true, force: true })
})

const backends: Backend[] = [
  { name: 'MemoryStore', durable: false, fresh: async () => track(new MemoryStore()), again: async (s) => s },
  {
    name: 'SqliteStore', durable: true,
    fresh: async () => track(new SqliteStore(join(tmp, `store-${++files}.db`))),
    again: async (s) => track(new SqliteStore((s as SqliteStore).path)),
  },
  {
    name: 'RedisStore', durable: true,
    fresh: async () => track(new RedisStore(redis.url, `conf${++prefixes}:`)),
    again: async (s) => track(new RedisStore(redis.url, (s as RedisStore).prefix)),
  },
]

for (const b of backends) {
  describe(`control store contract: ${b.name}`, () => {
    for (const c of cases) {
      it(c.name, { skip: c.durableOnly && !b.durable ? 'memory keeps nothing past its process' : false }, () => c.run(b))
    }
  })
}

describe('RedisStore, beyond the contract', () => {
  // The tasks of job j_1, the job every case below uses, in submission order.
  const order = async (s: RedisStore) => s.redis.lrange(`${s.prefix}tasks:order:j_1`, 0, -1)

  it('never sent the KEYS command (in the contract cases above)', async () => {
    const s = track(new RedisStore(redis.url, 'keys:')) as RedisStore
    const stats = await s.redis.info('commandstats')
    assert.match(stats, /cmdstat_exec:calls=\d+/, 'the stats count the commands of this file')
    assert.doesNotMatch(stats, /cmdstat_keys:/)
    await s.close()
  })

  it('a commit made while Redis is down rejects fast and keeps its writes; a later one lands them once, in order', async () => {
    const s = track(new RedisStore(redis.url, 'down:')) as RedisStore
    s.jobs.put({ id: 'j_1', name: 'before', state: 'running', createdAt: 1 })
    s.tasks.put({ id: 't.1', job: 'j_1', spec: spec('t.1'), state: 'waiting', attempts: 0 })
    await s.commit()
    await redis.kill9()
    s.tasks.put({ id: 't.2', job: 'j_1', spec: spec('t.2'), state: 'waiting', attempts: 0 })
    s.tasks.setState('t.1', 'running', 1)
    s.jobs.put({ id: 'j_2', name: 'during', state: 'running', createdAt: 2 })
    let t0 = Date.now()
    await assert.rejects(s.commit())
    assert.ok(Date.now() - t0 < 3000, `the commit failed fast (${Date.now() - t0} ms)`)
    // Later writes queue behind the failed ones, and overwrite them where they overlap.
    s.jobs.put({ id: 'j_2', name: 'during', state: 'finished', createdAt: 2, finishedAt: 3 })
    s.tasks.setState('t.2', 'running', 1)
    s.tasks.put({ id: 't.3', job: 'j_1', spec: spec('t.3'), state: 'waiting', attempts: 0 })
    t0 = Date.now()
    await assert.rejects(s.commit())
    assert.ok(Date.now() - t0 < 3000, `the commit failed fast (${Date.now() - t0} ms)`)
    await redis.restart()
    await until(() => s.commit().then(() => true, () => false), 15_000, 'a commit to succeed once redis is back')
    const again = track(new RedisStore(redis.url, 'down:'))
    const snap = await again.load()
    assert.deepEqual(sorted(snap.jobs.map((j) => [j.id, j.state])), [['j_1', 'running'], ['j_2', 'finished']])
    assert.deepEqual(snap.tasks.map((t) => [t.id, t.state, t.attempts]), [['t.1', 'running', 1], ['t.2', 'running', 1], ['t.3', 'waiting', 0]])
    assert.deepEqual(await order(s), ['t.1', 't.2', 't.3'], 'each task is in the order list once')
    await again.close()
    await s.close()
  })

  it('a batch that Redis applied but never answered is not applied twice', async () => {
    const s = track(new RedisStore(redis.url, 'unanswered:', { commandTimeout: 300 })) as RedisStore
    s.jobs.put({ id: 'j_1', name: 'x', state: 'running', createdAt: 1 })
    await s.commit()
    // Applied twice, this batch would differ from applied once: the second time the task exists, so the
    // setState that came before its put would take effect.
    s.tasks.setState('t.1', 'running', 5)
    s.tasks.put({ id: 't.1', job: 'j_1', spec: spec('t.1'), state: 'waiting', attempts: 0 })
    redis.pause()
    try {
      await assert.rejects(s.commit(), /timed out/i)
    } finally { redis.resume() }
    await s.commit()
    const again = track(new RedisStore(redis.url, 'unanswered:'))
    assert.deepEqual((await again.load()).tasks.map((t) => [t.id, t.state, t.attempts]), [['t.1', 'waiting', 0]])
    assert.deepEqual(await order(s), ['t.1'])
    await again.close()
    await s.close()
  })

  it('stores with different prefixes on one Redis do not see each other', async () => {
    const a = track(new RedisStore(redis.url, 'iso-a:')), c = track(new RedisStore(redis.url, 'iso-b:'))
    a.jobs.put({ id: 'j_1', name: 'a', state: 'running', createdAt: 1 })
    a.tasks.put({ id: 't.1', job: 'j_1', spec: spec('t.1', 'a'), state: 'waiting', attempts: 0 })
    a.locations.put({ object: 'o.1', peer: 'p_a' })
    await a.bundles.put('h', new TextEncoder().encode('a'), 'k_a')
    c.tasks.put({ id: 't.1', job: 'j_2', spec: spec('t.1', 'b'), state: 'running', attempts: 3 })
    c.peers.put({ id: 'p_b', kind: 'node', role: 'worker', lastSeen: 1 })
    await Promise.all([a.commit(), c.commit()])
    const [sa, sb] = await Promise.all([a.load(), c.load()])
    assert.deepEqual([sa.jobs.map((j) => j.id), sa.tasks.map((t) => [t.spec.name, t.state]), sa.peers, sa.locations, sa.bundles],
      [['j_1'], [['a', 'waiting']], [], [{ object: 'o.1', peer: 'p_a' }], [{ hash: 'h', owners: ['k_a'] }]])
    assert.deepEqual([sb.jobs, sb.tasks.map((t) => [t.spec.name, t.state]), sb.peers.map((p) => p.id), sb.locations, sb.bundles],
      [[], [['b', 'running']], ['p_b'], [], []])
    assert.equal(await c.bundles.get('h'), undefined)
    await a.close()
    await c.close()
  })

  it('a fenced store commits only while its lease holds its id: a deposed leader writes nothing', async () => {
    const s = track(new RedisStore(redis.url, 'fence:')) as RedisStore
    await s.redis.set('fence:leader', 'me', 'PX', 60_000)
    s.fence('fence:leader', 'me')
    s.jobs.put({ id: 'j_1', name: 'mine', state: 'running', createdAt: 1 })
    await s.commit()
    await s.redis.set('fence:leader', 'the-standby', 'PX', 60_000)
    s.jobs.put({ id: 'j_2', name: 'late', state: 'running', createdAt: 2 })
    await assert.rejects(s.commit(), /no longer holds the leader lease \(the-standby does\)/)
    const other = track(new RedisStore(redis.url, 'fence:')) as RedisStore
    assert.deepEqual((await other.load()).jobs.map((j) => j.id), ['j_1'])
    await other.close()
  })

})

describe('SqliteStore, beyond the contract', () => {
  it('gives the pages of dropped rows back to the file system, a step per commit, down to a reserve as large as what is in use', async () => {
    const s = track(new SqliteStore(join(tmp, 'shrinks.db'))) as SqliteStore
    // What the database takes, its WAL included (the main file alone lags until a checkpoint).
    const fileMb = () => {
      const db = new Database(s.path, { readonly: true })
      try { return (db.pragma('page_count', { simple: true }) as number) * (db.pragma('page_size', { simple: true }) as number) / 2 ** 20 } finally { db.close() }
    }
    const fill = async (job: string, n: number) => {
      s.jobs.put({ id: job, name: 'x', state: 'running', createdAt: 0 })
      for (let i = 0; i < n; i++) s.tasks.put({ id: `t.${job}.${i}`, job, spec: spec(`t.${job}.${i}`, 'f'.repeat(200)), state: 'waiting', attempts: 0 })
      await s.commit()
      return Array.from({ length: n }, (_, i) => `t.${job}.${i}`)
    }
    const small = await fill('j_small', 2_000)
    const big = await fill('j_big', 30_000)
    const full = fileMb()
    assert.ok(full > 8, `${full.toFixed(1)} MB after 32,000 tasks`)
    // The big job's rows go: its pages come back over the next commits, not all in the one that dropped them.
    s.jobs.dropDetails('j_big', { tasks: big, objects: [], actors: [], fns: [] })
    await s.commit()
    const afterOne = fileMb()
    for (let i = 0; i < 100 && fileMb() > full / 4; i++) { s.jobs.put({ id: 'j_small', name: 'x', state: 'running', createdAt: i }); await s.commit() }
    const shrunk = fileMb()
    assert.ok(afterOne > shrunk, `one step per commit (${afterOne.toFixed(1)} MB after the first, ${shrunk.toFixed(1)} MB at the end)`)
    assert.ok(shrunk < full / 4, `the file went from ${full.toFixed(1)} MB to ${shrunk.toFixed(1)} MB`)
    // Then a job of the same size as the one dropped: the file grows back, and no larger than before.
    await fill('j_again', 20_000)
    const third = await fill('j_third', 10_000)
    s.jobs.put({ id: 'j_small', name: 'x', state: 'running', createdAt: 0 })
    await s.commit()
    assert.ok(fileMb() <= full * 1.05, `${fileMb().toFixed(1)} MB, was ${full.toFixed(1)} MB`)
    // Dropping a third of what is in use leaves the file as it is: the next rows take those pages.
    s.jobs.dropDetails('j_third', { tasks: third, objects: [], actors: [], fns: [] })
    const before = fileMb()
    for (let i = 0; i < 10; i++) { s.jobs.put({ id: 'j_again', name: 'x', state: 'running', createdAt: i }); await s.commit() }
    assert.ok(fileMb() >= before * 0.95, `kept as a reserve: ${fileMb().toFixed(1)} MB, was ${before.toFixed(1)} MB`)
    await s.close()
  })
})
