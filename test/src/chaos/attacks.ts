/**
 * Attacks on a running grid by a hostile job author (an ordinary submit token) or a hostile
 * volunteer (the join token and a raw WebSocket), for the chaos run's `auth_violations_allowed`.
 * Each attack reports true only on evidence that it worked (a welcome under a victim's id, a 200,
 * bytes read, a process still reachable), and false only on evidence of the refusal it expects
 * (the error that names it, a 401 or 404, a counter of refusals that rose, a job that says it
 * waits); anything else throws, and `attempt` counts it as inconclusive, so allowed. Where an
 * attack could fail for a reason of its own, a control shows the genuine path works.
 */
import WebSocket from 'ws'
import { connect, type Grid } from '@colony-grid/client'
import { PROTOCOL_VERSION, decodeFrame, encodeFrame } from '@colony-grid/shared'
import { byzantinePeer } from '../byzantine.js'
import { api, metric, until, type GridProcs } from '../harness.js'

/** `p`, or `v` after `ms` (the timer goes when `p` settles, so nothing is left to keep the process up). */
export function orAfter<T, U>(p: Promise<T>, ms: number, v: U): Promise<T | U> {
  let timer: ReturnType<typeof setTimeout> | undefined
  return Promise.race([p, new Promise<U>((r) => { timer = setTimeout(() => r(v), ms) })]).finally(() => clearTimeout(timer))
}

/** `attack` resolves true if it worked, false on the refusal it expects; it throws otherwise (inconclusive). */
export type Attempt = (name: string, attack: () => Promise<boolean>) => Promise<void>

interface RawPeer {
  id: string
  secret: string
  welcomed: boolean
  got: Record<string, unknown>[]
  ws: WebSocket
  send(...msgs: unknown[]): void
  close(): void
}

/** A peer speaking the protocol by hand; resolves once it is welcomed or refused. */
async function rawPeer(g: GridProcs, token: string, hello: Record<string, unknown> = {}): Promise<RawPeer> {
  const ws = new WebSocket(g.url.replace('http', 'ws') + '/ws')
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j) })
  const p: RawPeer = {
    id: '', secret: '', welcomed: false, got: [], ws,
    send: (...msgs) => ws.send(encodeFrame(msgs)),
    close: () => { clearInterval(ping); ws.close() },
  }
  let ping: ReturnType<typeof setInterval> | undefined
  const settled = new Promise<void>((resolve) => {
    ws.on('message', (d: Buffer) => {
      for (const m of decodeFrame(d) as Record<string, unknown>[]) {
        p.got.push(m)
        if (m.t === 'welcome') {
          Object.assign(p, { id: m.peerId, secret: m.peerSecret, welcomed: true })
          ping = setInterval(() => p.send({ t: 'ping' }), m.pingMs as number)
          resolve()
        }
      }
    })
    ws.once('close', () => resolve())
  })
  // No cpu by default: it would be handed tasks it never answers. `hello` may offer some.
  p.send({ t: 'hello', v: PROTOCOL_VERSION, token, kind: 'node', role: 'worker', capabilities: ['node', 'wasm'], resources: {}, p2p: true, ...hello })
  await settled
  return p
}

const workerIds = async (g: GridProcs) => (await api<{ id: string; role: string }[]>(g, '/api/peers')).body.filter((p) => p.role === 'worker').map((p) => p.id).sort().join(',')

/** Waits for `cond` up to `ms`; false at the deadline. */
async function within(ms: number, cond: () => boolean | Promise<boolean>): Promise<boolean> {
  return until(async () => await cond(), ms, '').then(() => true, () => false)
}

/** A second user of the grid, with a submit token of its own. */
async function secondUser(g: GridProcs): Promise<string> {
  return (await api<{ token: string }>(g, '/api/tokens', { method: 'POST', body: JSON.stringify({ role: 'submit', label: 'mallory' }) })).body.token
}

/** Volunteers attacking the grid and each other. Needs `g` with two trusted Node workers. */
export async function volunteerAttacks(g: GridProcs, attempt: Attempt): Promise<void> {
  const victim = g.workerIds[0]
  // A raw peer never answers the tasks it is given: each leaves the grid as soon as it has been judged.
  // Refused: welcomed, but under an id of its own.
  const takesOver = async (hello: Record<string, unknown>) => {
    const p = await rawPeer(g, g.joinToken, hello)
    p.close()
    if (p.welcomed) return p.id === victim
    throw new Error(`not welcomed at all: ${JSON.stringify(p.got).slice(0, 200)}`)
  }
  await attempt('peer id takeover with the join token', () => takesOver({ peerId: victim }))
  await attempt('peer id takeover with a made-up secret', () => takesOver({ peerId: victim, peerSecret: 'f'.repeat(64) }))

  // Signalling a peer no transfer paired it with would tell the sender that peer's addresses.
  const x = await rawPeer(g, g.joinToken), y = await rawPeer(g, g.joinToken)
  await attempt('an unsolicited WebRTC signal', async () => {
    const before = await metric(g, 'colony_signals_refused_total')
    x.send({ t: 'signal', to: y.id, link: 'probe', data: { type: 'offer', sdp: 'v=0' } })
    if (await within(1500, () => y.got.some((m) => m.t === 'signal'))) return true
    if ((await metric(g, 'colony_signals_refused_total')) > before) return false
    throw new Error('the signal was neither delivered nor counted as refused')
  })
  x.close(); y.close()

  // A socket that never says hello is closed at the deadline (the grid runs with COLONY_HELLO_TIMEOUT_MS=1500).
  await attempt('a socket that never says hello stays open', async () => {
    const ws = new WebSocket(g.url.replace('http', 'ws') + '/ws')
    await new Promise((r, j) => { ws.once('open', r); ws.once('error', j) })
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)))
    const code = await orAfter(closed, 5000, undefined)
    ws.terminate()
    if (code === undefined) return true
    if (code === 4408) return false
    throw new Error(`closed with ${code}, not the hello timeout's 4408`)
  })

  await attempt('a token in the query string', async () => {
    const { status } = await fetch(`${g.url}/api/jobs?token=${g.submitToken}`)
    if (status === 200) return true
    if (status === 401) return false
    throw new Error(`status ${status}`)
  })

}

/** A job's main cannot be checked by a quorum: no anonymous volunteer may be handed one. Run it while no trusted worker is connected. */
export async function forgedMain(g: GridProcs, attempt: Attempt): Promise<void> {
  const lone = await rawPeer(g, g.joinToken, { resources: { cpu: 2 } })
  await attempt('an anonymous volunteer is handed a job\'s main', async () => {
    const job = (await api<{ id: string }>(g, '/api/jobs', { method: 'POST', body: JSON.stringify({ bundle: 'export default () => 1', name: 'forge-me' }) })).body
    const handed = await within(2000, () => lone.got.some((m) => m.t === 'run' && /:main$/.test((m.spec as { name: string }).name)))
    // Refused: the job says its main waits for a trusted worker.
    const waiting = (await api<{ waiting?: string }>(g, `/api/jobs/${job.id}`)).body.waiting ?? ''
    await api(g, `/api/jobs/${job.id}`, { method: 'DELETE' })
    if (handed) return true
    if (/waiting for a trusted worker/.test(waiting)) return false
    throw new Error(`not handed, but the job does not say it waits for a trusted worker (${waiting || 'nothing'})`)
  })
  lone.close()
}

/** A job author attacking other jobs and the volunteers who run it. Needs `g` with two trusted Node workers. */
export async function jobAttacks(g: GridProcs, attempt: Attempt): Promise<void> {
  const alice = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
  const mallory = await connect(g.url, { token: await secondUser(g), onLog: false, log: () => {} })
  try {
    // Bundles over HTTP: alice's is hers, and the peers' that run her job.
    const hash = (await api<{ hash: string }>(g, '/api/bundles', { method: 'POST', body: JSON.stringify({ bundle: 'export const secret = "alice\'s API key"' }) })).body.hash
    if ((await fetch(`${g.url}/api/bundles/${hash}`, { headers: { authorization: `Bearer ${g.submitToken}` } })).status !== 200) throw new Error('control: alice cannot fetch her own bundle')
    // Refused: 404, as if the bundle did not exist.
    const fetchedWith = async (authorization: string) => {
      const { status } = await fetch(`${g.url}/api/bundles/${hash}`, { headers: { authorization } })
      if (status === 200) return true
      if (status === 404) return false
      throw new Error(`status ${status}`)
    }
    const other = await secondUser(g)
    await attempt('another user fetches a bundle by its hash', () => fetchedWith(`Bearer ${other}`))
    await attempt('the join token fetches a bundle by its hash', () => fetchedWith(`Bearer ${g.joinToken}`))
    const idle = await rawPeer(g, g.joinToken)
    await attempt('a peer that runs none of its job fetches a bundle', () => fetchedWith(`Peer ${idle.id}:${idle.secret}`))
    idle.close()

    // Objects on a peer shared by two jobs: alice keeps an actor there, and a large and a small result.
    const Keeper = alice.remote(class Keeper { ping() { return 1 } })
    const keepers = [Keeper.remote(), Keeper.remote()]
    await alice.get(keepers.map((k) => k.ping.remote()))
    const big = alice.remote(function big() { return new Uint8Array(200_000).fill(7) }).remote()
    const small = alice.remote(function small() { return 'alice\'s secret' }).remote()
    await alice.wait([big, small], { timeoutMs: 20_000 })
    // Each read says true (it got the bytes) or the error it met.
    const read = mallory.remote(async function read(id: string) {
      const gr = (globalThis as unknown as { colony: { grid: { put(v: unknown): { constructor: new (id: string) => unknown }; get(r: unknown, o?: object): Promise<unknown> } } }).colony.grid
      try { await gr.get(new (gr.put(0).constructor)(id), { timeoutMs: 4000 }); return true } catch (e) { return String((e as Error).message) }
    })
    const readRaw = mallory.remote(function readRaw(id: string) {
      const task = (globalThis as unknown as { colony: { taskId: string } }).colony.taskId
      return new Promise<true | string>((resolve) => {
        process.on('message', (msgs: { k: string; req: number; value?: unknown; error?: { message?: string } }[]) => {
          for (const m of msgs) if (m.k === 'reply' && m.req === 4242) resolve(m.value instanceof Uint8Array ? true : String(m.error?.message ?? 'a reply with neither bytes nor an error'))
        })
        process.send!([{ k: 'req', req: 4242, task, op: { op: 'fetch', info: { id, size: 200_000 } } }])
        setTimeout(() => resolve('no reply within 4 s'), 4000)
      })
    })
    /** Refused: every read met the AuthError that names the object. */
    const judged = (outcomes: (true | string)[]) => {
      if (outcomes.some((o) => o === true)) return true
      if (outcomes.every((o) => /may not read object/.test(o as string))) return false
      throw new Error(`not the refusal expected: ${outcomes.join('; ').slice(0, 300)}`)
    }
    // On both workers, so one shares a peer with each of alice's results.
    for (const [name, id] of [['a large object', big.id], ['a small object', small.id]]) {
      await attempt(`another job reads ${name} by id`, async () => judged(await mallory.get([read.remote(id), read.remote(id)], { timeoutMs: 20_000 })))
    }
    await attempt('another job reads an object by id past the client library', async () => judged(await mallory.get([readRaw.remote(big.id), readRaw.remote(big.id)], { timeoutMs: 20_000 })))
    if ((await alice.get(big) as Uint8Array).length !== 200_000) throw new Error('control: alice cannot read her own object')

    // A volunteer claiming, on joining, to hold alice's object (it would then be asked to serve it, or counted as a copy).
    const claimer = await rawPeer(g, g.joinToken, { holds: [big.id] })
    await attempt('a volunteer claims to hold an object it was never sent', async () => {
      const holders = (await api<{ items: { id: string; holders: string[] }[] }>(g, `/api/jobs/${alice.jobId}/objects?limit=10000`)).body.items.find((o) => o.id === big.id)?.holders ?? []
      if (holders.includes(claimer.id) || claimer.got.some((m) => m.t === 'serve')) return true
      // Refused: a new id claims nothing, and is told to drop what it named.
      if (claimer.got.some((m) => m.t === 'drop' && (m.ids as string[]).includes(big.id))) return false
      throw new Error('the claim was neither taken nor answered with a drop')
    })
    claimer.close()

    // Alice's bundle job runs its exports on both workers, so each peer holds her bundle.
    const aliceJob = (await api<{ id: string }>(g, '/api/jobs', { method: 'POST', body: JSON.stringify({
      name: 'alice-bundle', bundle: 'export function w() { return 1 }\nexport default async (grid) => (await grid.get([1, 2, 3, 4].map(() => grid.remote(w).remote()))).length',
    }) })).body
    await until(async () => (await api<{ state: string }>(g, `/api/jobs/${aliceJob.id}`)).body.state !== 'running', 30_000, 'alice\'s bundle job')
    await sandboxAttacks(g, mallory, attempt)
    await protocolAttacks(g, mallory, attempt)
    await starvation(g, alice, mallory, attempt)
  } finally { await alice.close(); await mallory.close() }
}

/** Job code against the Node peer running it. */
async function sandboxAttacks(g: GridProcs, grid: Grid, attempt: Attempt): Promise<void> {
  const inspectorOpen = () => fetch('http://127.0.0.1:9229/json/list').then(() => true, () => false)
  if (await inspectorOpen()) throw new Error('something on this machine already listens on 9229: the SIGUSR1 attack cannot be judged')
  const signal = grid.remote(function signal() {
    for (const pid of [process.ppid, 1, process.pid - 1]) { try { process.kill(pid, 'SIGUSR1') } catch { /* not visible */ } }
    return 'sent'
  })
  await attempt('a task opens its peer\'s inspector with SIGUSR1', async () => {
    await grid.get([signal.remote(), signal.remote()])
    return within(1500, inspectorOpen)
  })
  const dial = grid.remote(function dial(port: number) {
    return import('node:net').then((net) => new Promise<boolean | string>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true) })
      s.on('error', (e: Error & { code?: string }) => resolve(e.code ?? e.message))
    }))
  })
  await attempt('a task connects to the coordinator\'s port', async () => {
    const r = await grid.get(dial.remote(g.port), { timeoutMs: 20_000 })
    if (r === true) return true
    if (typeof r === 'string' && /^E[A-Z]+$/.test(r)) return false
    throw new Error(`the task said ${String(r)}`)
  })
  const hog = grid.remote(function hog() { try { return Buffer.alloc(4 * 1024 ** 3).length > 0 } catch (e) { return String(e) } })
  await attempt('a task holds 4 GiB outside the V8 heap', async () => {
    const r = await grid.get(hog.remote(), { timeoutMs: 30_000 })
    if (r === true) return true
    if (typeof r === 'string' && /allocation failed|RangeError/i.test(r)) return false
    throw new Error(`the task said ${String(r)}`)
  })
  const rummage = grid.remote(async function rummage() {
    const fs = await import('node:fs')
    const seen: string[] = []
    const look = (dir: string, depth: number) => {
      let names: string[] = []
      try { names = fs.readdirSync(dir) } catch { return }
      for (const n of names) { seen.push(n); if (depth > 0) look(`${dir}/${n}`, depth - 1) }
    }
    // Where the executor's own script lives is the peer's sandbox; bundles are named by their hash.
    const here = process.argv[1].replace(/\/[^/]*$/, '')
    for (const dir of [here, `${here}/..`, `${here}/../..`, '.', '/tmp']) look(dir, 3)
    return seen.filter((n) => /^[0-9a-f]{32}\.mjs$/.test(n))
  })
  await attempt('a task lists the bundles of other jobs on its peer', async () => (await grid.get(rummage.remote(), { timeoutMs: 20_000 })).length > 0)
}

/** Job code that breaks the protocol for its peer: each must fail its own task, never drop the worker. */
async function protocolAttacks(g: GridProcs, grid: Grid, attempt: Attempt): Promise<void> {
  const cases = {
    'a task logs 21 lines of 100,001 characters': grid.remote(function shout() { for (let i = 0; i < 21; i++) console.log('x'.repeat(100_001)); return 1 }),
    'a task throws an error of 150,000 characters': grid.remote(function huge() { throw new Error('e'.repeat(150_000)) }),
    'a task submits a task named with 600 characters': grid.remote(async function nest() {
      const inner = { ['n'.repeat(600)]: () => 1 }['n'.repeat(600)]
      const gr = (globalThis as unknown as { colony: { grid: { remote(f: unknown): { remote(): unknown }; get(r: unknown): Promise<unknown> } } }).colony.grid
      return gr.get(gr.remote(inner).remote())
    }),
  }
  for (const [name, f] of Object.entries(cases)) {
    await attempt(`${name} and drops its worker`, async () => {
      const before = await workerIds(g)
      await Promise.allSettled([grid.get(f.remote(), { timeoutMs: 10_000 }), grid.get(f.remote(), { timeoutMs: 10_000 })])
      // Dropped workers show as other ids, or as a grid that no longer runs a trivial task.
      const works = await grid.get(grid.remote(() => 1).remote(), { timeoutMs: 10_000 }).then(() => true, () => false)
      return !works || (await workerIds(g)) !== before
    })
  }
}

/** One user's endless tasks must not keep another user's work from running. */
async function starvation(g: GridProcs, alice: Grid, mallory: Grid, attempt: Attempt): Promise<void> {
  const spin = mallory.remote(function spin() { for (;;) { /* forever */ } }, { timeoutMs: 20_000, maxRetries: 0 })
  const spinning = Array.from({ length: 8 }, () => spin.remote())
  try {
    await attempt('endless tasks of one user starve another\'s', async () => {
      const hello = alice.remote(() => 'hello').remote()
      return !(await alice.get(hello, { timeoutMs: 10_000 }).then(() => true, () => false))
    })
  } finally { for (const r of spinning) mallory.cancel(r) }
}

/** A hostile volunteer quarantined by a quorum comes back under a fresh id. */
export async function quarantineWash(g: GridProcs, attempt: Attempt): Promise<void> {
  const liar = await byzantinePeer(g, 666)
  const grid = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
  try {
    // Many at once, so replicas land on the liar too (it offers the most free slots).
    const sq = grid.remote((x: number) => x * x, { replicas: 2 })
    const quarantined = async () => !!(await api<{ id: string; quarantined: boolean }[]>(g, '/api/peers')).body.find((p) => p.id === liar.id)?.quarantined
    for (let round = 0; round < 5 && !(await quarantined()); round++) {
      await Promise.allSettled(Array.from({ length: 12 }, (_, i) => grid.get(sq.remote(round * 12 + i), { timeoutMs: 20_000 })))
    }
    if (!(await quarantined())) throw new Error('control: the lying peer was never quarantined')
    liar.close()
    await attempt('a quarantined volunteer rejoins under a fresh id', async () => {
      const again = await byzantinePeer(g, 666)
      try {
        const seen = (await api<{ id: string; quarantined: boolean }[]>(g, '/api/peers')).body.find((p) => p.id === again.id)
        if (!seen) throw new Error('the fresh id is not among the peers')
        return !seen.quarantined
      } finally { again.close() }
    })
  } finally { liar.close(); await grid.close() }
}
