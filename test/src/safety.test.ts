/**
 * Safe to volunteer, at the coordinator: each test is an attack, made as an attacker would
 * (a raw WebSocket peer speaking the msgpack protocol, or plain HTTP, with an ordinary submit
 * token or the join token every volunteer has), and what must come of it.
 */
import { after, afterEach, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import WebSocket from 'ws'
import { connect } from '@colony-grid/client'
import { PROTOCOL_VERSION, decodeFrame, encodeFrame, encodeValue, returnId } from '@colony-grid/shared'
import { byzantinePeer, type ByzantinePeer } from './byzantine.js'
import { api, metric, startGrid, until, withGrid, type GridProcs } from './harness.js'

type Msg = Record<string, unknown>
type PeerRow = { id: string; reputation: number; quarantined: boolean; trusted?: boolean }

interface RawPeer {
  ws: WebSocket
  id: string
  secret: string
  welcome: Msg
  /** Every message received, in order. */
  seen: Msg[]
  /** The first message not taken yet (received or to come) that `match` accepts, within the deadline. */
  next(match: (m: Msg) => boolean, what: string, timeoutMs?: number): Promise<Msg>
  send(...msgs: unknown[]): void
  closed: Promise<{ code: number; reason: string }>
  close(): void
}

/** Raw peers still open: each test's are closed after it, whatever happened. */
const opened = new Set<{ close(): void }>()
afterEach(() => { for (const p of opened) p.close(); opened.clear() })

/** test/src/byzantine.ts's hostile peer (it answers every task wrong), closed after the test. */
async function hostilePeer(...args: Parameters<typeof byzantinePeer>): Promise<ByzantinePeer> {
  const p = await byzantinePeer(...args)
  opened.add(p)
  return p
}

/** A hand-driven peer: it says hello with `hello` (over a worker's defaults) and waits for the answer. */
async function rawPeer(g: { url: string }, hello: Msg): Promise<RawPeer> {
  const ws = new WebSocket(g.url.replace('http', 'ws') + '/ws')
  opened.add({ close: () => ws.close() })
  const seen: Msg[] = []
  const waiters = new Set<() => void>()
  let ping: ReturnType<typeof setInterval> | undefined
  ws.on('message', (data: Buffer) => {
    seen.push(...decodeFrame(data) as Msg[])
    for (const w of waiters) w()
  })
  const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => { clearInterval(ping); r({ code, reason: reason.toString() }) }))
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j) })
  const taken = new Set<number>()
  const p: RawPeer = {
    ws, id: '', secret: '', welcome: {}, seen, closed,
    send: (...msgs) => ws.send(encodeFrame(msgs)),
    close: () => { clearInterval(ping); ws.close() },
    next(match, what, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          for (let i = 0; i < seen.length; i++) if (!taken.has(i) && match(seen[i])) { taken.add(i); done(); resolve(seen[i]); return }
        }
        const timer = setTimeout(() => { done(); reject(new Error(`no ${what} within ${timeoutMs} ms; got ${JSON.stringify(seen.map((m) => m.t))}`)) }, timeoutMs)
        const done = () => { clearTimeout(timer); waiters.delete(check) }
        waiters.add(check)
        check()
      })
    },
  }
  p.send({ t: 'hello', v: PROTOCOL_VERSION, kind: 'node', role: 'worker', capabilities: [], resources: { cpu: 1 }, ...hello })
  const first = await p.next((m) => m.t === 'welcome' || m.t === 'error', 'welcome')
  if (first.t === 'error') throw new Error(`refused: ${String(first.message)}`)
  p.welcome = first
  p.id = first.peerId as string
  p.secret = first.peerSecret as string
  ping = setInterval(() => { if (ws.readyState === WebSocket.OPEN) p.send({ t: 'ping' }) }, first.pingMs as number)
  return p
}

/** The peer's next pong: everything the coordinator sent it before has arrived by then. */
async function roundTrip(p: RawPeer): Promise<void> {
  const pongs = p.seen.filter((m) => m.t === 'pong').length
  p.send({ t: 'ping' })
  await p.next(() => p.seen.filter((m) => m.t === 'pong').length > pongs, 'pong')
}

const bundleHash = (src: string) => createHash('sha256').update(Buffer.from(src, 'utf8')).digest('hex').slice(0, 32)

async function makeToken(g: GridProcs, role: 'submit' | 'join', label: string, trusted?: boolean): Promise<{ token: string; id: string }> {
  const r = await api<{ token: string; id: string }>(g, '/api/tokens', { method: 'POST', body: JSON.stringify({ role, label, ...(trusted ? { trusted } : {}) }) })
  assert.equal(r.status, 201)
  return r.body
}

async function getBundle(g: GridProcs, hash: string, authorization: string): Promise<{ status: number; text: string }> {
  const res = await fetch(new URL(`/api/bundles/${hash}`, g.url), { headers: { authorization } })
  return { status: res.status, text: await res.text() }
}

/**
 * A raw driver's job with one task, run by the raw worker `holder` (the one with capability `cap`),
 * whose result (100 kB) stays on it.
 */
async function heldObject(driver: RawPeer, holder: RawPeer, name: string, cap: string): Promise<{ task: string; object: string }> {
  const task = `t.${name}.1`
  driver.send(
    { t: 'fn', def: { id: `${name}-f`, kind: 'inline', name, src: '() => 1' } },
    { t: 'submit', spec: { id: task, name, fn: `${name}-f`, args: encodeValue([]), deps: [], opts: { capabilities: [cap] } } },
  )
  const run = await holder.next((m) => m.t === 'run' && (m.spec as Msg).id === task, `the run of ${task}`)
  holder.send({ t: 'done', task, attempt: run.attempt, results: [{ size: 100_000, hash: 'ab'.repeat(32) }], ms: 1 })
  const object = returnId(task)
  driver.send({ t: 'sub', ids: [object] })
  const obj = await driver.next((m) => m.t === 'obj' && (m.info as Msg).id === object, 'the object ready')
  assert.equal((obj.info as Msg).error, undefined)
  return { task, object }
}

describe('safe to volunteer: the coordinator', () => {
  let g: GridProcs
  before(async () => { g = await startGrid({ workers: 0, memory: true, env: { COLONY_HELLO_TIMEOUT_MS: '1000' } }) })
  after(async () => { await g?.stop() })

  it('a peer id is kept only with its secret: the join token and a victim\'s id neither kick it nor take its id', async () => {
    const victim = await rawPeer(g, { token: g.joinToken })
    const tries = [{}, { peerSecret: 'ab'.repeat(32) }, { peerSecret: '' }]
    for (const extra of tries) {
      const thief = await rawPeer(g, { token: g.joinToken, peerId: victim.id, ...extra })
      assert.notEqual(thief.id, victim.id, 'the thief gets a fresh id')
      thief.close()
    }
    await roundTrip(victim)
    assert.equal(victim.ws.readyState, WebSocket.OPEN, 'the victim was not kicked')
    const peers = (await api<PeerRow[]>(g, '/api/peers')).body
    assert.ok(peers.some((p) => p.id === victim.id))
    assert.match(victim.secret, /^[0-9a-f]{64}$/, 'welcome hands the peer a 32-byte secret')
    assert.equal(victim.welcome.trusted, false, 'the plain join token is not trusted')

    // The victim itself, with its secret, keeps its id (a reconnect).
    victim.close()
    await victim.closed
    const back = await rawPeer(g, { token: g.joinToken, peerId: victim.id, peerSecret: victim.secret })
    assert.equal(back.id, victim.id)
    back.close()

    // Drivers too: the same submit token, a driver's id and its job, but not its secret.
    const driver = await rawPeer(g, { token: g.submitToken, role: 'driver', resources: {} })
    const thief = await rawPeer(g, { token: g.submitToken, role: 'driver', resources: {}, peerId: driver.id, jobId: driver.welcome.jobId })
    assert.notEqual(thief.id, driver.id)
    assert.notEqual(thief.welcome.jobId, driver.welcome.jobId, 'nor does it resume the driver\'s job')
    await roundTrip(driver)
    assert.equal(driver.ws.readyState, WebSocket.OPEN)
    driver.close(); thief.close()
  })

  it('refuses a WebRTC signal between peers no pull plan paired, and relays one between a reader and its holder', async () => {
    const x = await rawPeer(g, { token: g.joinToken, p2p: true })
    const y = await rawPeer(g, { token: g.joinToken, p2p: true, capabilities: ['holder-sig'] })
    const refused = await metric(g, 'colony_signals_refused_total')
    x.send({ t: 'signal', to: y.id, link: 'probe', data: { type: 'offer', sdp: 'x' } })
    // Once x's pong is back its signal was handled; once y's is, anything relayed to y has arrived.
    await roundTrip(x)
    await roundTrip(y)
    assert.ok(!y.seen.some((m) => m.t === 'signal'), 'y learned nothing of x, nor x of y')
    assert.equal(await metric(g, 'colony_signals_refused_total'), refused + 1, 'counted as refused')

    // A driver (reader) and the worker holding its task's result (holder): the plan pairs them.
    const driver = await rawPeer(g, { token: g.submitToken, role: 'driver', resources: {}, p2p: true })
    const { object } = await heldObject(driver, y, 'sig', 'holder-sig')
    driver.send({ t: 'pull', req: 7, id: object })
    const plan = await driver.next((m) => m.t === 'pullPlan', 'a pull plan')
    assert.deepEqual((plan.holders as Msg[]).map((h) => h.peer), [y.id])
    driver.send({ t: 'signal', to: y.id, link: 'l1', data: { type: 'offer' } })
    const sig = await y.next((m) => m.t === 'signal', 'the planned signal')
    assert.equal(sig.from, driver.id)
    y.send({ t: 'signal', to: driver.id, link: 'l1', data: { type: 'answer' } })
    await driver.next((m) => m.t === 'signal' && m.from === y.id, 'the answer')
    // Still not x, which no plan paired with either.
    x.send({ t: 'signal', to: driver.id, link: 'l2', data: {} })
    await roundTrip(x)
    await roundTrip(driver)
    assert.ok(!driver.seen.some((m) => m.t === 'signal' && m.from === x.id))
    assert.equal(await metric(g, 'colony_signals_refused_total'), refused + 2)
    x.close(); y.close(); driver.close()
  })

  it('accepts hello.holds only for objects the peer made or was sent', async () => {
    const holder = await rawPeer(g, { token: g.joinToken, capabilities: ['holder-holds'] })
    const liar = await rawPeer(g, { token: g.joinToken })
    const driver = await rawPeer(g, { token: g.submitToken, role: 'driver', resources: {} })
    const { object } = await heldObject(driver, holder, 'holds', 'holder-holds')
    const jobId = driver.welcome.jobId as string
    const holders = async () => (await api<{ items: { id: string; holders: string[] }[] }>(g, `/api/jobs/${jobId}/objects?limit=10000`)).body.items.find((o) => o.id === object)?.holders ?? []
    assert.deepEqual(await holders(), [holder.id])

    // The liar reconnects as itself (its own id and secret) and claims the object.
    liar.close()
    await liar.closed
    const refused = await metric(g, 'colony_holds_refused_total')
    const again = await rawPeer(g, { token: g.joinToken, peerId: liar.id, peerSecret: liar.secret, holds: [object] })
    assert.equal(again.id, liar.id)
    const drop = await again.next((m) => m.t === 'drop', 'a drop for the claimed object')
    assert.deepEqual(drop.ids, [object])
    assert.deepEqual(await holders(), [holder.id], 'the liar is not a holder')
    assert.equal(await metric(g, 'colony_holds_refused_total'), refused + 1)

    // The holder itself, reconnecting, is one again.
    holder.close()
    await holder.closed
    const back = await rawPeer(g, { token: g.joinToken, peerId: holder.id, peerSecret: holder.secret, holds: [object], capabilities: ['holder-holds'] })
    await until(async () => (await holders()).includes(back.id), 5000, 'the real holder back as a holder')
    assert.ok(!back.seen.some((m) => m.t === 'drop'))
    again.close(); back.close(); driver.close()
  })

  it('closes a WebSocket that sends no hello in time', async () => {
    const before = await metric(g, 'colony_hello_timeouts_total')
    const sockets = await Promise.all(Array.from({ length: 5 }, async () => {
      const ws = new WebSocket(g.url.replace('http', 'ws') + '/ws')
      const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)))
      await new Promise((r, j) => { ws.once('open', r); ws.once('error', j) })
      opened.add({ close: () => ws.terminate() })
      return { closed }
    }))
    let timer: ReturnType<typeof setTimeout> | undefined
    const deadline = new Promise<never>((_, j) => { timer = setTimeout(() => j(new Error('a silent socket was still open after 8 s')), 8000) })
    const codes = await Promise.race([Promise.all(sockets.map((s) => s.closed)), deadline]).finally(() => clearTimeout(timer))
    assert.deepEqual(codes, [4408, 4408, 4408, 4408, 4408])
    assert.equal(await metric(g, 'colony_hello_timeouts_total'), before + 5)
  })

  it('takes tokens only from the Authorization header, never from the query string', async () => {
    for (const path of ['/api/jobs', '/api/peers', '/api/tokens']) {
      const res = await fetch(new URL(`${path}?token=${g.submitToken}`, g.url))
      assert.equal(res.status, 401, `${path}?token= is refused`)
    }
    assert.equal((await api(g, '/api/jobs')).status, 200, 'the header still works')
  })

  it('the coordinator ignores SIGUSR1: no inspector opens', async () => {
    g.coordinator.child.kill('SIGUSR1')
    // Node says "Debugger listening on ws://…" when it opens one; the coordinator says it ignores the signal.
    await g.coordinator.waitFor(/ignoring SIGUSR1|Debugger listening/, 5000)
    assert.doesNotMatch(g.coordinator.output(), /Debugger listening/)
    assert.equal((await api(g, '/api/peers')).status, 200, 'it still serves')
  })

  it('lets a worker read objects only of the job it asks for, and only while it has work of that job', async () => {
    const w = await rawPeer(g, { token: g.joinToken })
    const alice = await connect(g.url, { token: (await makeToken(g, 'submit', 'alice')).token, onLog: false, log: () => {} })
    const bob = await connect(g.url, { token: (await makeToken(g, 'submit', 'bob')).token, onLog: false, log: () => {} })
    try {
      const secret = alice.put('alice\'s secret')
      // One task of each job waits on w (w never answers them): w has work of both jobs.
      alice.remote(() => 1).remote()
      bob.remote(() => 2).remote()
      const runA = await w.next((m) => m.t === 'run' && m.job === alice.jobId, 'alice\'s task')
      const runB = await w.next((m) => m.t === 'run' && m.job === bob.jobId, 'bob\'s task')
      assert.ok(runA && runB)
      // Bob's task asks for alice's object by id.
      w.send({ t: 'sub', ids: [secret.id], job: bob.jobId })
      const sub = await w.next((m) => m.t === 'obj' && (m.info as Msg).id === secret.id, 'the answer to sub')
      assert.equal(((sub.info as Msg).error as Msg | undefined)?.type, 'AuthError', 'sub for another job is refused')
      assert.equal((sub.info as Msg).inline, undefined)
      w.send({ t: 'pull', req: 41, id: secret.id, job: bob.jobId })
      const pull = await w.next((m) => (m.t === 'pullFail' || m.t === 'chunk') && m.req === 41, 'the answer to pull')
      assert.equal(pull.t, 'pullFail')
      assert.equal((pull.error as Msg).type, 'AuthError')
      // A job the worker has no work of, even one it names as the object's own.
      w.send({ t: 'pull', req: 42, id: secret.id, job: 'j_000000000000' })
      assert.equal((await w.next((m) => (m.t === 'pullFail' || m.t === 'chunk') && m.req === 42, 'the answer to pull')).t, 'pullFail')
      // Alice's own task may read it.
      w.send({ t: 'pull', req: 43, id: secret.id, job: alice.jobId })
      assert.equal((await w.next((m) => (m.t === 'pullFail' || m.t === 'chunk') && m.req === 43, 'the answer to pull')).t, 'chunk')
    } finally { w.close(); await alice.close(); await bob.close() }
  })

  it('serves a bundle only to its own token, the operator, and a worker running its job (as the peer it is)', async () => {
    const alice = await makeToken(g, 'submit', 'alice'), bob = await makeToken(g, 'submit', 'bob')
    const uploaded = 'export function f() { return "alice\'s code" }'
    const up = await api<{ hash: string }>(g, '/api/bundles', { method: 'POST', token: alice.token, body: JSON.stringify({ bundle: uploaded }) })
    assert.equal(up.status, 201)
    assert.equal((await getBundle(g, up.body.hash, `Bearer ${alice.token}`)).status, 200, 'the token that uploaded it')
    assert.equal((await getBundle(g, up.body.hash, `Bearer ${bob.token}`)).status, 404, 'another user: as if it did not exist')
    assert.equal((await getBundle(g, up.body.hash, `Bearer ${g.joinToken}`)).status, 404, 'the join token alone')
    assert.equal((await getBundle(g, up.body.hash, `Bearer ${g.submitToken}`)).status, 200, 'the operator')

    // A job's bundle: a hostile volunteer connected, then a trusted worker that runs its main.
    const hostile = await rawPeer(g, { token: g.joinToken })
    const src = 'export default function main() { return "main ran" } // alice\'s job'
    const job = await api<{ id: string }>(g, '/api/jobs', { method: 'POST', token: alice.token, body: JSON.stringify({ bundle: src, name: 'mine' }) })
    assert.equal(job.status, 201)
    const hash = bundleHash(src)
    assert.equal((await getBundle(g, hash, `Bearer ${bob.token}`)).status, 404)
    assert.equal((await getBundle(g, hash, `Peer ${hostile.id}:${hostile.secret}`)).status, 404, 'a peer that runs nothing of the job')
    assert.equal((await getBundle(g, hash, `Peer ${hostile.id}:${'0'.repeat(64)}`)).status, 401, 'a wrong peer secret')
    // The operator's own machine, with a trusted join token it minted (a submit token cannot be trusted).
    assert.equal((await api(g, '/api/tokens', { method: 'POST', body: JSON.stringify({ role: 'submit', trusted: true }) })).status, 400)
    const machine = await makeToken(g, 'join', 'lab machine', true)
    const trusted = await rawPeer(g, { token: machine.token })
    assert.equal(trusted.welcome.trusted, true)
    const run = await trusted.next((m) => m.t === 'run' && m.job === job.body.id, 'the main')
    const fetched = await getBundle(g, hash, `Peer ${trusted.id}:${trusted.secret}`)
    assert.deepEqual([fetched.status, fetched.text], [200, src], 'the worker running the job fetches its bundle')
    assert.equal((await getBundle(g, hash, `Bearer ${alice.token}`)).status, 200, 'the job\'s own token')
    const value = encodeValue('main ran')
    trusted.send({ t: 'done', task: (run.spec as Msg).id, attempt: run.attempt, results: [{ size: value.length, inline: value }], ms: 1 })
    await until(async () => (await api<{ state: string }>(g, `/api/jobs/${job.body.id}`, { token: alice.token })).body.state === 'finished', 10_000, 'the job to finish')
    assert.ok(!hostile.seen.some((m) => m.t === 'run'), 'the anonymous worker was handed nothing')
    // A bundle function naming another user's bundle is refused (else bob's workers would be handed alice's code).
    const snoop = await rawPeer(g, { token: bob.token, role: 'driver', resources: {} })
    snoop.send({ t: 'fn', def: { id: 'steal', kind: 'bundle', name: 'f', bundle: up.body.hash, export: 'f' } })
    const err = await snoop.next((m) => m.t === 'error', 'an error')
    assert.equal(err.code, 'AUTH')
    hostile.close(); trusted.close(); snoop.close()
  })

  it('never hands a bundle job\'s main to an anonymous worker: it waits, says why, and runs once a trusted worker joins', async () => {
    const hostile = await hostilePeer(g, 'forged')
    const src = 'export default function main(grid, n) { return n * 2 }'
    const posted = await api<{ id: string }>(g, '/api/jobs', { method: 'POST', body: JSON.stringify({ bundle: src, name: 'forge-me', args: [21] }) })
    assert.equal(posted.status, 201)
    const id = posted.body.id
    const info = await until(async () => {
      const j = (await api<{ state: string; waiting?: string }>(g, `/api/jobs/${id}`)).body
      return j.waiting || j.state !== 'running' || hostile.tasksAnswered > 0 ? j : undefined
    }, 10_000, 'the job to say it waits (or the main to go to the hostile worker)')
    assert.equal(hostile.tasksAnswered, 0, 'the hostile worker was handed nothing')
    assert.equal(info.state, 'running')
    assert.match(info.waiting!, /waiting for a trusted worker: start one with colony worker --trusted --token <trusted join token>/)
    const logs = (await api<{ items: { line: string }[] }>(g, `/api/jobs/${id}/logs?limit=10000`)).body.items.map((l) => l.line)
    assert.equal(logs.filter((l) => /waiting for a trusted worker/.test(l)).length, 1, 'one clear line in the job\'s log')

    const w = await g.addWorker(1)
    try {
      const done = await until(async () => {
        const j = (await api<{ state: string; result?: unknown; waiting?: string; error?: unknown }>(g, `/api/jobs/${id}`)).body
        return j.state !== 'running' ? j : undefined
      }, 30_000, 'the job to end')
      assert.deepEqual([done.state, done.result, done.waiting], ['finished', 42, undefined], JSON.stringify(done))
      const main = (await api<{ items: { name: string; peer?: string }[] }>(g, `/api/jobs/${id}/tasks?limit=10000`)).body.items.find((t) => t.name === 'forge-me:main')!
      assert.equal(main.peer, g.workerIds.at(-1), 'the main ran on the trusted worker')
      assert.equal(hostile.tasksAnswered, 0)
      assert.equal((await api<PeerRow[]>(g, '/api/peers')).body.find((p) => p.id === g.workerIds.at(-1))?.trusted, true)
    } finally {
      hostile.close()
      await w.kill()
      g.workers.pop(); g.workerIds.pop()
    }
  })
})

describe('safe to volunteer: reputation follows the token and address', () => {
  it('a quarantined peer that comes back without its id (even after a coordinator restart) is still quarantined', async () => {
    await withGrid({ workers: 2, executors: 1 }, async (g, grid) => {
      const evil = await hostilePeer(g, 666)
      const double = grid.remote((x: number) => x * 2, { replicas: 2 })
      let batch = 0
      await until(async () => {
        const base = 1000 * ++batch
        const values = await grid.get(Array.from({ length: 8 }, (_, i) => double.remote(base + i)), { timeoutMs: 60_000 })
        assert.deepEqual(values, Array.from({ length: 8 }, (_, i) => (base + i) * 2), 'no wrong answer was accepted')
        return (await api<PeerRow[]>(g, '/api/peers')).body.find((p) => p.id === evil.id)?.quarantined
      }, 90_000, 'the hostile peer to be quarantined')

      // It drops its id and joins again, a "new" peer with the same token from the same address.
      evil.close()
      const fresh = await hostilePeer(g, 666)
      assert.notEqual(fresh.id, evil.id)
      const row = (await api<PeerRow[]>(g, '/api/peers')).body.find((p) => p.id === fresh.id)!
      assert.equal(row.quarantined, true, 'the quarantine followed its token and address')
      assert.ok(row.reputation < 0.5)
      const answered = fresh.tasksAnswered
      assert.deepEqual(await grid.get(Array.from({ length: 6 }, (_, i) => double.remote(i))), Array.from({ length: 6 }, (_, i) => i * 2))
      assert.equal(fresh.tasksAnswered, answered, 'and it gets no work')
      // Honest peers (their own ids) keep their own standing.
      for (const id of g.workerIds) {
        const p = (await api<PeerRow[]>(g, '/api/peers')).body.find((x) => x.id === id)!
        assert.deepEqual([p.quarantined, p.reputation], [false, 1])
      }

      // After a kill -9 and a restart, a fresh id from there is still quarantined; the honest peers keep their ids.
      fresh.close()
      await g.coordinator.kill('SIGKILL')
      await g.startCoordinator()
      const again = await hostilePeer(g, 666)
      assert.equal((await api<PeerRow[]>(g, '/api/peers')).body.find((p) => p.id === again.id)?.quarantined, true)
      await until(async () => {
        const rows = (await api<PeerRow[]>(g, '/api/peers')).body
        return g.workerIds.every((id) => rows.some((p) => p.id === id && !p.quarantined))
      }, 20_000, 'the honest workers back with their own ids, not quarantined')
      // The operator's release clears the token and address too.
      const released = await api<{ released: boolean }>(g, `/api/peers/${again.id}/release`, { method: 'POST' })
      assert.deepEqual([released.status, released.body.released], [200, true])
      again.close()
      const later = await hostilePeer(g, 666)
      assert.equal((await api<PeerRow[]>(g, '/api/peers')).body.find((p) => p.id === later.id)?.quarantined, false)
      later.close()
    })
  })
})
