/**
 * The chaos scenarios (`npm run chaos`), each on real processes: peers killed and
 * restarted mid-job, the coordinator killed with SIGKILL, a hostile peer, fuzzed frames.
 * test/src/chaos.test.ts runs small versions of each.
 */
import WebSocket from 'ws'
import { connect, ObjectRef, type Grid } from '@colony-grid/client'
import { PROTOCOL_VERSION, decodeFrame, encodeFrame, type Grant, type PullPlanMsg } from '@colony-grid/shared'
import type { Peer } from '@colony-grid/worker-web'
import { byzantinePeer } from '../byzantine.js'
import { forgedMain, jobAttacks, quarantineWash, volunteerAttacks } from './attacks.js'
import { api, metric, startGrid, type GridProcs } from '../harness.js'

/** ~2 ms of deterministic work per task: the output depends only on `i`. */
function mix(i: number): number {
  let h = (i + 1) >>> 0
  for (let k = 0; k < 1_500_000; k++) h = Math.imul(h ^ k, 2654435761) >>> 0
  return h
}

async function withDriver<T>(g: GridProcs, f: (grid: Grid & { jobId: string }) => Promise<T>): Promise<T> {
  const grid = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
  try { return await f(grid) } finally { await grid.close() }
}

/** Every ref's value, or how many were lost (rejected). */
async function settle(grid: Grid, refs: ObjectRef<number>[], timeoutMs: number): Promise<{ values: (number | undefined)[]; lost: number }> {
  const out = await Promise.allSettled(refs.map((r) => grid.get(r, { timeoutMs })))
  return { values: out.map((o) => (o.status === 'fulfilled' ? o.value : undefined)), lost: out.filter((o) => o.status === 'rejected').length }
}

export interface ChurnFigures { lost: number; duplicates: number; identical: boolean; kills: number; ignoredDuplicateResults: number }

/** `n` tasks on 3 peers; one peer is killed (SIGKILL) and a new one started every `everyMs`, until the job ends. */
export async function peerChurn(n: number, everyMs: number): Promise<ChurnFigures> {
  const run = async (churn: boolean) => {
    const g = await startGrid({ workers: 3, executors: 1, memory: true })
    try {
      return await withDriver(g, async (grid) => {
        const work = grid.remote(mix, { maxRetries: 10 })
        const before = await metric(g, 'colony_duplicate_results_total')
        const refs = Array.from({ length: n }, (_, i) => work.remote(i))
        let kills = 0, stopped = false
        const killer = churn ? (async () => {
          for (let victim = 0; !stopped; victim++) {
            await new Promise((r) => setTimeout(r, everyMs))
            if (stopped) break
            const i = victim % g.workers.length
            await g.workers[i].kill('SIGKILL')
            g.workers.splice(i, 1)
            g.workerIds.splice(i, 1)
            kills++
            await g.addWorker()
          }
        })() : Promise.resolve()
        const { values, lost } = await settle(grid, refs, 600_000)
        stopped = true
        await killer
        return { values, lost, kills, ignored: (await metric(g, 'colony_duplicate_results_total')) - before }
      })
    } finally { await g.stop() }
  }
  const clean = await run(false)
  const chaos = await run(true)
  const seen = new Map<number, number>()
  chaos.values.forEach((v, i) => { if (v !== undefined) seen.set(i, (seen.get(i) ?? 0) + 1) })
  return {
    lost: chaos.lost, kills: chaos.kills, ignoredDuplicateResults: chaos.ignored,
    duplicates: [...seen.values()].filter((c) => c > 1).length,
    identical: JSON.stringify(chaos.values) === JSON.stringify(clean.values) && clean.lost === 0,
  }
}

/** `n` tasks; the coordinator is killed with SIGKILL a quarter of the way, and restarted on its SQLite file. */
export async function coordinatorRestart(n: number): Promise<{ lost: number; recorded: number; wrong: number }> {
  const g = await startGrid({ workers: 3, executors: 1 })
  try {
    return await withDriver(g, async (grid) => {
      const work = grid.remote(mix)
      const refs = Array.from({ length: n }, (_, i) => work.remote(i))
      await grid.wait(refs, { numReturns: Math.ceil(n / 4), timeoutMs: 300_000 })
      await g.coordinator.kill('SIGKILL')
      await g.startCoordinator()
      const { values, lost } = await settle(grid, refs, 600_000)
      const tasks = (await api<{ state: string }[]>(g, `/api/jobs/${grid.jobId}/tasks`)).body
      return { lost, recorded: tasks.length, wrong: values.filter((v, i) => v !== undefined && v !== mix(i)).length }
    })
  } finally { await g.stop() }
}

/** 2 honest peers and one that always answers wrong; `n` tasks with `replicas: 2`. */
export async function byzantine(n: number): Promise<{ wrongAccepted: number; quarantined: boolean; lost: number }> {
  const g = await startGrid({ workers: 2, executors: 1, memory: true })
  try {
    const evil = await byzantinePeer(g, -1)
    const out = await withDriver(g, async (grid) => {
      const work = grid.remote(mix, { replicas: 2 })
      return settle(grid, Array.from({ length: n }, (_, i) => work.remote(i)), 300_000)
    })
    const row = (await api<{ id: string; quarantined: boolean }[]>(g, '/api/peers')).body.find((p) => p.id === evil.id)
    evil.close()
    return { wrongAccepted: out.values.filter((v, i) => v !== undefined && v !== mix(i)).length, quarantined: !!row?.quarantined, lost: out.lost }
  } finally { await g.stop() }
}

/** A small seeded PRNG, so a fuzz run can be repeated. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296 }
}

/** Values a field might wrongly hold. */
const ODD = [null, -1, 0, 2 ** 53, Number.NaN, '', 'x'.repeat(300), [], {}, true, new Uint8Array(3), { $proto: 1 }, 't.a.b', 'o.a.b.r0', 'p_000000000000']

function mutatedMessage(rand: () => number): unknown {
  const templates: Record<string, unknown>[] = [
    { t: 'submit', spec: { id: 't.fz.1', name: 'f', fn: 'f1', args: new Uint8Array([0x90]), deps: [], opts: {} } },
    { t: 'fn', def: { id: 'f1', kind: 'inline', name: 'f', src: '() => 1' } },
    { t: 'put', id: 'o.fz.1', size: 3, inline: new Uint8Array([1, 2, 3]) },
    { t: 'done', task: 't.fz.1', attempt: 1, results: [{ size: 1, inline: new Uint8Array([0xc3]) }] },
    { t: 'sub', ids: ['o.fz.1'] }, { t: 'pull', req: 1, id: 'o.fz.1' }, { t: 'cancel', ids: ['t.fz.1'] },
    { t: 'free', ids: ['o.fz.1'] }, { t: 'signal', to: 'p_000000000000', link: 'l', data: {} }, { t: 'blocked', task: 't.fz.1', blocked: true },
    { t: 'log', task: 't.fz.1', lines: ['x'] }, { t: 'held', ids: ['o.fz.1'] }, { t: 'chunk', req: 1, seq: 0, data: new Uint8Array(4), last: true },
    { t: 'actorLost', actor: 't.fz.1', reason: 'x' }, { t: 'pause', paused: true }, { t: 'ping' },
  ]
  const m = structuredClone(templates[Math.floor(rand() * templates.length)]) as Record<string, unknown>
  const keys = Object.keys(m)
  const flips = 1 + Math.floor(rand() * 3)
  for (let i = 0; i < flips; i++) {
    const k = rand() < 0.1 ? `extra${i}` : keys[Math.floor(rand() * keys.length)]
    if (rand() < 0.2) delete m[k]; else m[k] = ODD[Math.floor(rand() * ODD.length)]
  }
  if (rand() < 0.05) m.t = ODD[Math.floor(rand() * ODD.length)]
  return m
}

export interface FuzzFigures { frames: number; httpRequests: number; reconnects: number; crashes: number; healthy: boolean }

/**
 * Sends `frames` WebSocket frames (mutated protocol messages, and some raw bytes, which cost
 * a reconnect) and `http` mutated API requests at a coordinator, then checks it still serves.
 */
export async function fuzz(frames: number, http: number, seed = 7): Promise<FuzzFigures> {
  const g = await startGrid({ workers: 1, executors: 1, memory: true })
  const rand = rng(seed)
  let sent = 0, reconnects = 0
  try {
    const open = async (): Promise<WebSocket> => {
      const ws = new WebSocket(g.url.replace('http', 'ws') + '/ws')
      await new Promise((r, j) => { ws.once('open', r); ws.once('error', j) })
      ws.on('message', () => {}) // replies (errors) are read and dropped
      const token = rand() < 0.5 ? g.submitToken : g.joinToken
      ws.send(encodeFrame([{ t: 'hello', v: PROTOCOL_VERSION, token, kind: 'node', role: token === g.joinToken ? 'worker' : 'driver', capabilities: [], resources: { cpu: 0 } }]))
      return ws
    }
    let ws = await open()
    while (sent < frames) {
      if (ws.readyState !== WebSocket.OPEN) { ws.terminate(); ws = await open(); reconnects++ }
      // Keep the socket's send buffer small, so the coordinator (not this process) sets the pace.
      if (ws.bufferedAmount > 1 << 20) { await new Promise((r) => setTimeout(r, 1)); continue }
      const batch = Math.min(500, frames - sent)
      for (let i = 0; i < batch; i++) {
        if (rand() < 0.002) {
          ws.send(Uint8Array.from({ length: 1 + Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)))
        } else {
          let bytes: Uint8Array
          try { bytes = encodeFrame([mutatedMessage(rand)]) } catch { bytes = new Uint8Array([0x91, 0xc1]) }
          ws.send(bytes)
        }
      }
      sent += batch
      await new Promise((r) => setImmediate(r))
    }
    ws.close()
    const paths = ['/api/jobs', '/api/bundles', '/api/peers', '/api/jobs/j_x', '/api/jobs/j_x/tasks', '/api/peers/p_x/release', '/api/jobs/../../etc', '/ws', '/join', '/metrics']
    let httpSent = 0
    for (; httpSent < http; httpSent++) {
      const path = paths[Math.floor(rand() * paths.length)]
      const method = rand() < 0.5 ? 'POST' : rand() < 0.5 ? 'GET' : 'DELETE'
      const body = method === 'POST' ? (rand() < 0.5 ? JSON.stringify({ bundle: rand() < 0.5 ? 42 : 'x'.repeat(Math.floor(rand() * 1000)), args: ODD[Math.floor(rand() * ODD.length)] }) : String.fromCharCode(...Array.from({ length: 50 }, () => Math.floor(rand() * 256)))) : undefined
      const token = rand() < 0.7 ? g.submitToken : rand() < 0.5 ? g.joinToken : 'bad'
      await fetch(g.url + path, { method, body, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }).then((r) => r.arrayBuffer()).catch(() => undefined)
    }
    // Still serving: a real job runs.
    const healthy = await withDriver(g, async (grid) => (await grid.get(grid.remote((x: number) => x + 1).remote(41))) === 42)
    const crashed = g.coordinator.child.exitCode !== null || /uncaught|unhandled/i.test(g.coordinator.output())
    return { frames: sent, httpRequests: httpSent, reconnects, crashes: crashed ? 1 : 0, healthy }
  } finally { await g.stop() }
}

/**
 * Attempts that must all be refused: a join token acting as a driver (WebSocket and HTTP),
 * job B reading job A's objects (small and large), forged or misused grants presented to the
 * peer holding an object, and the attacks of attacks.ts (a hostile volunteer, a hostile job
 * author). Returns how many were allowed, of how many, and which.
 */
export async function authViolations(): Promise<{ attempts: number; allowed: string[] }> {
  const g = await startGrid({ workers: 0, memory: true, env: { COLONY_HELLO_TIMEOUT_MS: '1500' } })
  let attempts = 0
  const allowed: string[] = []
  const attempt = async (name: string, f: () => Promise<boolean>) => {
    attempts++
    // An attack that throws did not succeed; its error is shown, since it may hide a broken scenario.
    const worked = await f().catch((e: Error) => { console.error(`  (${name}: ${e.message.split('\n')[0]})`); return false })
    if (worked) allowed.push(name)
  }
  try {
    await forgedMain(g, attempt)
    await g.addWorker(1, ['--capabilities', 'a'])
    // A join token used as a driver.
    await attempt('the join token as a driver', async () => {
      const ws = new WebSocket(g.url.replace('http', 'ws') + '/ws')
      await new Promise((r, j) => { ws.once('open', r); ws.once('error', j) })
      const reply = new Promise<Record<string, unknown>[]>((r) => ws.once('message', (d: Buffer) => r(decodeFrame(d) as Record<string, unknown>[])))
      ws.send(encodeFrame([{ t: 'hello', v: PROTOCOL_VERSION, token: g.joinToken, kind: 'node', role: 'driver', capabilities: [], resources: {} }]))
      const welcomed = (await reply).some((m) => m.t === 'welcome')
      ws.close()
      return welcomed
    })
    await attempt('the join token starts a job over HTTP', async () => (await api(g, '/api/jobs', { method: 'POST', token: g.joinToken, body: JSON.stringify({ bundle: 'export default () => 1' }) })).status < 300)
    const alice = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
    const bob = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
    try {
      const make = alice.remote(function make(n: number, v: number) { return new Uint8Array(n).fill(v) }, { capabilities: ['a'] })
      const small = alice.remote(() => 'alice\'s').remote()
      const mine = make.remote(200_000, 1), other = make.remote(200_000, 2)
      await alice.get([small, other])
      // Job B reads job A's objects.
      for (const id of [small.id, mine.id]) await attempt(`driver B reads job A's object ${id}`, async () => { await bob.get(new ObjectRef(id), { timeoutMs: 2000 }); return true })
      // Grants: capture the genuine one alice gets for `mine`, then misuse it.
      const peer = (alice as unknown as { peer: Peer }).peer
      const plans: PullPlanMsg[] = []
      const objects = peer.objects as unknown as { onPullPlan(m: PullPlanMsg): void }
      const original = objects.onPullPlan.bind(objects)
      objects.onPullPlan = (m) => { plans.push(m); original(m) }
      await alice.get(mine)
      const plan = plans.find((p) => p.id === mine.id)!
      const genuine: Grant = plan.holders[0].grant
      const data = peer.data!
      const fetches = {
        'a grant for one object, to read another': { ...plan, id: other.id },
        'a grant forged for another object': { ...plan, id: other.id, holders: [{ peer: plan.holders[0].peer, grant: { ...genuine, obj: other.id } }] },
        'an expired grant': { ...plan, holders: [{ peer: plan.holders[0].peer, grant: { ...genuine, exp: Date.now() - 1 } }] },
      }
      for (const [name, f] of Object.entries(fetches)) await attempt(name, async () => { await data.fetch(f); return true })
    } finally { await alice.close(); await bob.close() }
    await g.addWorker(1)
    await volunteerAttacks(g, attempt)
    await quarantineWash(g, attempt)
    await jobAttacks(g, attempt)
    return { attempts, allowed }
  } finally { await g.stop() }
}
