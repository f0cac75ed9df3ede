/**
 * The chaos scenarios (`npm run chaos`), each on real processes: peers killed and
 * restarted mid-job, the coordinator killed with SIGKILL, a hostile peer, hostile
 * volunteers and job authors (fuzzed frames: fuzz.ts). Each figure is read from what happened (the
 * coordinator's /metrics and store, the values the driver got, the processes' output),
 * never from what the scenario meant to do; and each scenario takes `faults`
 * (shared/src/faults.ts), so test/src/chaos.test.ts and `npm run chaos` can show each
 * figure going bad when the property it measures is broken on purpose.
 */
import WebSocket from 'ws'
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { connect, ObjectRef, type Grid } from '@colony-grid/client'
import {
  PROTOCOL_VERSION, decodeFrame, encodeFrame, encodeValue, sha256HexSync,
  type FaultName, type Grant, type PullPlanMsg,
} from '@colony-grid/shared'
import type { Peer } from '@colony-grid/worker-web'
import { byzantinePeer } from '../byzantine.js'
import { forgedMain, jobAttacks, quarantineWash, volunteerAttacks, type Attempt } from './attacks.js'
import { api, metric, startGrid, type GridProcs, type Proc } from '../harness.js'

/** Faults to inject (COLONY_INJECT_FAULTS) into the coordinator and into the scenario's Node workers. */
export interface Faults { coordinator?: FaultName[]; workers?: FaultName[] }

/** The environment that turns `names` on (and, empty, turns off any this process inherited). */
const faultEnv = (names: FaultName[] = []): Record<string, string> => ({ COLONY_INJECT_FAULTS: names.join(',') })

/** A grid whose coordinator and `workers` Node workers run with `faults`. */
export async function faultyGrid(faults: Faults, opts: { workers: number; executors?: number; memory?: boolean; env?: Record<string, string> }): Promise<GridProcs & { addFaultyWorker(args?: string[], env?: Record<string, string>): Promise<Proc> }> {
  const g = await startGrid({ workers: 0, executors: opts.executors ?? 1, memory: opts.memory, env: { ...opts.env, ...faultEnv(faults.coordinator) } })
  const addFaultyWorker = (args: string[] = [], env: Record<string, string> = {}) => g.addWorker(opts.executors ?? 1, args, { env: { ...faultEnv(faults.workers), ...env } })
  try {
    for (let i = 0; i < opts.workers; i++) await addFaultyWorker()
  } catch (e) { await g.stop(); throw e }
  return Object.assign(g, { addFaultyWorker })
}

/** ~2 ms of deterministic work per task: the output depends only on `i`. */
export function mix(i: number): number {
  let h = (i + 1) >>> 0
  for (let k = 0; k < 1_500_000; k++) h = Math.imul(h ^ k, 2654435761) >>> 0
  return h
}

export async function withDriver<T>(g: GridProcs, f: (grid: Grid & { jobId: string }) => Promise<T>): Promise<T> {
  const grid = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
  try { return await f(grid) } finally { await grid.close() }
}

/** Every ref's value, or how many were lost (rejected). */
export async function settle<T = number>(grid: Grid, refs: ObjectRef<T>[], timeoutMs: number): Promise<{ values: (T | undefined)[]; errors: (Error | undefined)[]; lost: number }> {
  const out = await Promise.allSettled(refs.map((r) => grid.get(r, { timeoutMs })))
  return {
    values: out.map((o) => (o.status === 'fulfilled' ? o.value : undefined)),
    errors: out.map((o) => (o.status === 'rejected' ? o.reason as Error : undefined)),
    lost: out.filter((o) => o.status === 'rejected').length,
  }
}

/** The job's tasks by state, as the coordinator has them. */
async function taskStates(g: GridProcs, jobId: string): Promise<{ rows: number; finished: number }> {
  const tasks = (await api<{ items: { state: string }[] }>(g, `/api/jobs/${jobId}/tasks?limit=10000`)).body.items
  return { rows: tasks.length, finished: tasks.filter((t) => t.state === 'finished').length }
}

export interface ChurnFigures {
  /** Tasks whose result the driver never got. */
  lost: number
  /** Results the coordinator applied beyond one per finished task (colony_tasks_finished_total against the tasks that finished). */
  duplicates: number
  /** Byte for byte the output of a clean run (undefined: no clean run was made to compare with). */
  identical?: boolean
  kills: number
  /** Results that came for tasks already decided, and were ignored (colony_duplicate_results_total). */
  ignoredDuplicateResults: number
  /** colony_tasks_finished_total, and the tasks the coordinator has as finished. */
  applied: number
  finished: number
}

/**
 * `n` tasks on 3 peers; one peer is killed (SIGKILL) and a new one started every `everyMs`, until
 * the job ends; and (`compare`, default) a clean run of the same job to compare its output with.
 */
export async function peerChurn(n: number, everyMs: number, opts: { faults?: Faults; compare?: boolean } = {}): Promise<ChurnFigures> {
  const faults = opts.faults ?? {}
  const run = async (churn: boolean) => {
    const g = await faultyGrid(churn ? faults : {}, { workers: 3, memory: true })
    try {
      return await withDriver(g, async (grid) => {
        const work = grid.remote(mix, { maxRetries: 10 })
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
            await g.addFaultyWorker()
          }
        })() : Promise.resolve()
        const { values, lost } = await settle(grid, refs, 600_000)
        stopped = true
        await killer
        // Late results (a killed peer's, a duplicate) land in the next moments, if at all: give them time to be counted.
        await new Promise((r) => setTimeout(r, 300))
        const { finished } = await taskStates(g, grid.jobId)
        return { values, lost, kills, finished, applied: await metric(g, 'colony_tasks_finished_total'), ignored: await metric(g, 'colony_duplicate_results_total') }
      })
    } finally { await g.stop() }
  }
  const clean = opts.compare === false ? undefined : await run(false)
  const chaos = await run(true)
  return {
    lost: chaos.lost, kills: chaos.kills, ignoredDuplicateResults: chaos.ignored, applied: chaos.applied, finished: chaos.finished,
    duplicates: Math.max(0, chaos.applied - chaos.finished),
    identical: clean && JSON.stringify(chaos.values) === JSON.stringify(clean.values) && clean.lost === 0,
  }
}

export interface RestartFigures {
  /** Tasks whose result the driver never got. */
  lost: number
  /** Task rows the coordinator has for the job (one per task). */
  recorded: number
  /** Values that are not the task's. */
  wrong: number
  /** Results applied, before and after the restart: tasks its store had finished at the kill, plus colony_tasks_finished_total of the restarted coordinator. */
  applied: number
  /** Of those, the ones finished before the kill. */
  finishedBeforeKill: number
}

/** `n` tasks; the coordinator is killed with SIGKILL a quarter of the way, and restarted on its SQLite file. */
export async function coordinatorRestart(n: number, opts: { faults?: Faults } = {}): Promise<RestartFigures> {
  const g = await faultyGrid(opts.faults ?? {}, { workers: 3 })
  try {
    return await withDriver(g, async (grid) => {
      const work = grid.remote(mix)
      const refs = Array.from({ length: n }, (_, i) => work.remote(i))
      await grid.wait(refs, { numReturns: Math.ceil(n / 4), timeoutMs: 300_000 })
      await g.coordinator.kill('SIGKILL')
      // What the restarted coordinator will find finished: its store, as the kill left it.
      const db = new Database(join(g.dataDir, 'colony.db'), { readonly: true, fileMustExist: true })
      const finishedBeforeKill = (db.prepare("SELECT COUNT(*) AS n FROM tasks WHERE job = ? AND state = 'finished'").get(grid.jobId) as { n: number }).n
      db.close()
      await g.startCoordinator()
      const { values, lost } = await settle(grid, refs, 600_000)
      await new Promise((r) => setTimeout(r, 300))
      const { rows } = await taskStates(g, grid.jobId)
      const appliedAfter = await metric(g, 'colony_tasks_finished_total')
      return { lost, recorded: rows, wrong: values.filter((v, i) => v !== undefined && v !== mix(i)).length, applied: finishedBeforeKill + appliedAfter, finishedBeforeKill }
    })
  } finally { await g.stop() }
}

/** The figure of a restart run: lost, wrong, or recorded or applied other than once per task. */
export const restartFigure = (r: RestartFigures, n: number): number => r.lost + r.wrong + Math.abs(r.recorded - n) + Math.abs(r.applied - n)

/** A result of over 64 KiB (it stays on its peer, and replicas compare it by hash): deterministic in `i`. */
function bigResult(i: number): Uint8Array {
  const out = new Uint8Array(80_000)
  for (let k = 0; k < out.length; k++) out[k] = (i * 31 + k * 7) & 0xff
  return out
}

export interface ByzantineFigures {
  /** Wrong values the driver got, plus the liar's wrong large answers no vote counted against it. */
  wrongAccepted: number
  /** Of those, the large answers (compared by hash only). */
  wrongLargeAgreed: number
  /** Small tasks with no value, or large ones that did not end with the error replicated large results get. */
  lost: number
  /** Times the liar was quarantined (it is released each time, so it keeps lying). */
  quarantines: number
  quarantined: boolean
  /** Tasks (replicas) the liar answered, and of them large. */
  liarAnswered: number
  liarLarge: number
}

/** What a replicated task with results over 64 KiB ends with (README, Untrusted peers): its replicas vote, and then it fails. */
const REPLICAS_MUST_BE_SMALL = /has replicas, so its results must be small enough to keep in the coordinator/

/**
 * 2 honest peers and one that always answers wrong; `n` tasks with `replicas: 2`, and `large`
 * more whose results are over 64 KiB, where the liar answers with wrong bytes of the same size,
 * its hash true to them. Each time it is quarantined an operator releases it, so it keeps voting.
 */
export async function byzantine(n: number, large: number, opts: { faults?: Faults } = {}): Promise<ByzantineFigures> {
  const g = await faultyGrid(opts.faults ?? {}, { workers: 2, memory: true })
  try {
    const wrongBig = encodeValue(new Uint8Array(80_000).fill(0xee))
    if (wrongBig.length !== encodeValue(bigResult(0)).length) throw new Error('the liar\'s large answer must be the size of an honest one')
    const evil = await byzantinePeer(g, -1, undefined, { large: (name) => (name.startsWith('big~') ? wrongBig : undefined) })
    let quarantines = 0, stop = false
    const isQuarantined = async () => !!(await api<{ id: string; quarantined: boolean }[]>(g, '/api/peers')).body.find((p) => p.id === evil.id)?.quarantined
    const operator = (async () => {
      while (!stop) {
        if (await isQuarantined()) { quarantines++; await api(g, `/api/peers/${evil.id}/release`, { method: 'POST' }) }
        await new Promise((r) => setTimeout(r, 50))
      }
    })()
    const out = await withDriver(g, async (grid) => {
      const work = grid.remote(mix, { replicas: 2 })
      const big = grid.remote(function big(i: number) {
        const out = new Uint8Array(80_000)
        for (let k = 0; k < out.length; k++) out[k] = (i * 31 + k * 7) & 0xff
        return out
      }, { replicas: 2 })
      const small = Array.from({ length: n }, (_, i) => work.remote(i))
      const bigs = Array.from({ length: large }, (_, i) => big.remote(i))
      const [s, b] = await Promise.all([settle(grid, small, 300_000), settle(grid, bigs, 300_000)])
      return { s, b }
    })
    stop = true
    await operator
    const quarantinedAtEnd = await isQuarantined()
    evil.close()
    // Every large task the liar answered must have cost it a disagreement (the coordinator says which).
    const disagreed = new Set([...g.coordinator.output().matchAll(new RegExp(`peer ${evil.id} disagreed with the quorum on \\S+ \\((\\S+)\\)`, 'g'))].map((m) => m[1]))
    const liarLargeTasks = new Set(evil.largeIds.map((id) => id.slice(0, id.lastIndexOf('~'))))
    const wrongLargeAgreed = [...liarLargeTasks].filter((id) => !disagreed.has(id)).length
    const wrongSmall = out.s.values.filter((v, i) => v !== undefined && v !== mix(i)).length
    const wrongBigValues = out.b.values.filter((v, i) => v !== undefined && Buffer.compare(Buffer.from(v as Uint8Array), Buffer.from(bigResult(i))) !== 0).length
    const bigOdd = out.b.errors.filter((e) => e !== undefined && !REPLICAS_MUST_BE_SMALL.test(e.message)).length
    return {
      wrongAccepted: wrongSmall + wrongBigValues + wrongLargeAgreed, wrongLargeAgreed, lost: out.s.lost + bigOdd,
      quarantines: quarantines + (quarantinedAtEnd ? 1 : 0), quarantined: quarantines > 0 || quarantinedAtEnd,
      liarAnswered: evil.tasksAnswered, liarLarge: evil.largeIds.length,
    }
  } finally { await g.stop() }
}

/** A small seeded PRNG, so a fuzz run can be repeated. */

export interface AuthFigures {
  attempts: number
  /** Attacks that worked, and those whose outcome showed neither success nor the refusal expected (counted among the allowed). */
  allowed: string[]
  inconclusive: string[]
}

/** Waits for `re` in a process's output after `from` characters. */
async function said(p: Proc, re: RegExp, from: number, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!re.test(p.output().slice(from))) {
    if (Date.now() > end) throw new Error(`the process did not say ${re} within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/**
 * Attempts that must all be refused: a join token acting as a driver (WebSocket and HTTP),
 * job B reading job A's objects (small and large), forged or misused grants presented to the
 * peer holding an object, and the attacks of attacks.ts (a hostile volunteer, a hostile job
 * author). Each attack reports true only on evidence that it worked, and false only on evidence
 * of the refusal it expects (the error, the status, the counter); anything else (a timeout, an
 * error it did not expect) is inconclusive, and counted as allowed.
 */
export async function authViolations(opts: { faults?: Faults } = {}): Promise<AuthFigures> {
  const faults = opts.faults ?? {}
  const g = await faultyGrid(faults, { workers: 0, memory: true, env: { COLONY_HELLO_TIMEOUT_MS: '1500' } })
  let attempts = 0
  const allowed: string[] = [], inconclusive: string[] = []
  const attempt: Attempt = async (name, f) => {
    attempts++
    try {
      if (await f()) allowed.push(name)
    } catch (e) {
      console.error(`  (inconclusive, counted as allowed: ${name}: ${(e as Error).message.split('\n')[0]})`)
      inconclusive.push(name)
      allowed.push(name)
    }
  }
  /** A refusal the attack expects, as `false`; any other error goes on to `attempt` (inconclusive). */
  const refusedWith = (re: RegExp) => (e: Error): false => { if (re.test(e.message)) return false; throw e }
  try {
    await forgedMain(g, attempt)
    // The holder of the objects below: a worker whose clock the scenario can move (clock.ts).
    const clock = new URL('./clock.js', import.meta.url).href
    const holder = await g.addFaultyWorker(['--capabilities', 'a'], { NODE_OPTIONS: `--import=${clock}` })
    // A join token used as a driver.
    await attempt('the join token as a driver', async () => {
      const ws = new WebSocket(g.url.replace('http', 'ws') + '/ws')
      await new Promise((r, j) => { ws.once('open', r); ws.once('error', j) })
      const reply = new Promise<Record<string, unknown>[]>((r) => ws.once('message', (d: Buffer) => r(decodeFrame(d) as Record<string, unknown>[])))
      ws.send(encodeFrame([{ t: 'hello', v: PROTOCOL_VERSION, token: g.joinToken, kind: 'node', role: 'driver', capabilities: [], resources: {} }]))
      const msgs = await reply
      ws.close()
      if (msgs.some((m) => m.t === 'welcome')) return true
      if (msgs.some((m) => m.t === 'error' && m.code === 'AUTH' && /cannot submit jobs/.test(String(m.message)))) return false
      throw new Error(`neither a welcome nor the AuthError: ${JSON.stringify(msgs).slice(0, 200)}`)
    })
    await attempt('the join token starts a job over HTTP', async () => {
      const { status } = await api(g, '/api/jobs', { method: 'POST', token: g.joinToken, body: JSON.stringify({ bundle: 'export default () => 1' }) })
      if (status < 300) return true
      if (status === 401) return false
      throw new Error(`status ${status}`)
    })
    const alice = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
    const bob = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
    try {
      // Every pull plan alice gets (with the grants in it).
      const peer = (alice as unknown as { peer: Peer }).peer
      const plans: PullPlanMsg[] = []
      const objects = peer.objects as unknown as { onPullPlan(m: PullPlanMsg): void }
      const original = objects.onPullPlan.bind(objects)
      objects.onPullPlan = (m) => { plans.push(m); original(m) }
      const make = alice.remote(function make(n: number, v: number) { return new Uint8Array(n).fill(v) }, { capabilities: ['a'] })
      const small = alice.remote(() => 'alice\'s').remote()
      const mine = make.remote(200_000, 1), other = make.remote(200_000, 2)
      await alice.get([small, other, mine])
      // Job B reads job A's objects.
      for (const id of [small.id, mine.id]) {
        await attempt(`driver B reads job A's object ${id}`, () => bob.get(new ObjectRef(id), { timeoutMs: 5000 }).then(() => true, refusedWith(/may not read object/)))
      }
      // Grants: alice's genuine one for `mine`, shown to work, then misused.
      const plan = plans.find((p) => p.id === mine.id), planOther = plans.find((p) => p.id === other.id)
      if (!plan || !planOther || plan.holders[0]?.peer !== planOther.holders[0]?.peer) throw new Error('control: alice got no pull plans for two objects on one holder')
      const genuine: Grant = plan.holders[0].grant
      const data = peer.data!
      const control = async (when: string) => {
        const bytes = await data.fetch(plan)
        if (bytes.length !== plan.size || sha256HexSync(bytes) !== plan.hash) throw new Error(`control: the genuine grant did not fetch ${mine.id} ${when}`)
      }
      await control('before the attacks')
      // The object asked for is `other`, with its true size and hash: only the holder's grant check stands in the way.
      const asOther = { ...plan, id: other.id, size: planOther.size, hash: planOther.hash }
      const fetches: Record<string, PullPlanMsg> = {
        'a grant for one object, to read another': asOther,
        'a grant forged for another object': { ...asOther, holders: [{ peer: plan.holders[0].peer, grant: { ...genuine, obj: other.id } }] },
      }
      for (const [name, p] of Object.entries(fetches)) await attempt(name, () => data.fetch(p).then(() => true, refusedWith(/grant refused/)))
      // The genuine grant once its time is up: the holder's clock moves 3 minutes ahead (grants last 60 s), then back.
      let at = holder.output().length
      holder.child.kill('SIGUSR2')
      await said(holder, /\[clock\] this process's clock is 3 minutes ahead/, at)
      try {
        await attempt('an expired grant', () => data.fetch(plan).then(() => true, refusedWith(/grant refused/)))
      } finally {
        at = holder.output().length
        holder.child.kill('SIGUSR2')
        await said(holder, /\[clock\] this process's clock is 0 minutes ahead/, at)
      }
      await control('after them')
    } finally { await alice.close(); await bob.close() }
    await g.addFaultyWorker()
    await volunteerAttacks(g, attempt)
    await quarantineWash(g, attempt)
    await jobAttacks(g, attempt)
    return { attempts, allowed, inconclusive }
  } finally { await g.stop() }
}
