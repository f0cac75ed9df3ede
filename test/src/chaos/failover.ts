/**
 * Hot standby (issue 15): two coordinators on one Redis, the leader killed with SIGKILL a quarter
 * of the way through a job; the standby takes the lease, loads the tables and serves, and the
 * peers and the driver, given both URLs, move to it. Every figure is read from what happened: the
 * values the driver got, the task rows the new leader has, the store as the kill left it, and
 * the new leader's colony_tasks_finished_total.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { connect, type ObjectRef } from '@colony-grid/client'
import { RedisStore } from '@colony-grid/coordinator'
import { api, metric, startProc, until, type Proc } from '../harness.js'
import { startRedisServer, type RedisServer } from '../redis-server.js'
import { mix, settle, type Faults } from './scenarios.js'

export interface FailoverFigures {
  /** From the leader's SIGKILL to the standby answering as the leader (s). */
  takeoverS: number
  /** Tasks and actor calls whose result the driver never got. */
  lost: number
  /** Values that are not the task's. */
  wrong: number
  /** Task rows the new leader has for the job's plain tasks (one per task). */
  recorded: number
  /** Results applied: what the store had finished at the kill, plus the new leader's colony_tasks_finished_total. */
  applied: number
  finishedBeforeKill: number
  /** Actor calls the actor ran more than once, or never. */
  actorCallsTwice: number
  actorCallsMissing: number
}

/** The leader and the standby each print their URL; both share the tokens (they share one grid). */
async function startCoordinator(redisUrl: string, dataDir: string, env: Record<string, string>, standby: boolean): Promise<{ proc: Proc; url: string }> {
  const proc = startProc(['start', '--port', '0', '--data', dataDir, '--store', redisUrl, ...(standby ? ['--standby'] : [])], { env })
  const m = await proc.waitFor(/Colony coordinator on (https?:\/\/\S+)/)
  const u = new URL(m[1])
  return { proc, url: `http://127.0.0.1:${u.port}` }
}

/** A class whose calls record their argument: each must appear exactly once. */
class Tally {
  seen: number[] = []
  add(i: number): number { this.seen.push(i); return i }
  all(): number[] { return this.seen }
}

/**
 * `n` tasks and `calls` actor calls on 3 peers; the leader is killed a quarter of the way.
 * `faults.coordinator` go to the standby (the one that takes over).
 */
export async function coordinatorFailover(n: number, calls: number, opts: { faults?: Faults } = {}): Promise<FailoverFigures> {
  const redis: RedisServer = await startRedisServer({ appendOnly: true })
  const dirs = [mkdtempSync(join(tmpdir(), 'colony-lead-')), mkdtempSync(join(tmpdir(), 'colony-standby-'))]
  const token = () => randomBytes(16).toString('hex')
  const tokens = { COLONY_SUBMIT_TOKEN: token(), COLONY_JOIN_TOKEN: token(), COLONY_TRUSTED_JOIN_TOKEN: token() }
  const env = { ...tokens, COLONY_INJECT_FAULTS: '' }
  const procs: Proc[] = []
  try {
    const lead = await startCoordinator(redis.url, dirs[0], env, false)
    procs.push(lead.proc)
    const standby = await startCoordinator(redis.url, dirs[1], { ...env, COLONY_INJECT_FAULTS: (opts.faults?.coordinator ?? []).join(',') }, true)
    procs.push(standby.proc)
    await standby.proc.waitFor(/standing by/)
    const urls = `${lead.url},${standby.url}`
    for (let i = 0; i < 3; i++) {
      const w = startProc(['worker', '--url', urls, '--token', tokens.COLONY_TRUSTED_JOIN_TOKEN, '--executors', '1', '--trusted'],
        { env: { COLONY_INJECT_FAULTS: (opts.faults?.workers ?? []).join(',') } })
      procs.push(w)
      await w.waitFor(/joined \S+ as p_\w+/)
    }
    const grid = await connect(urls, { token: tokens.COLONY_SUBMIT_TOKEN, onLog: false, log: () => {} })
    try {
      const work = grid.remote(mix)
      const tally = grid.remote(Tally).remote()
      const refs: ObjectRef<number>[] = []
      const callRefs: ObjectRef<number>[] = []
      for (let i = 0; i < n; i++) {
        refs.push(work.remote(i))
        if (i % Math.max(1, Math.floor(n / calls)) === 0 && callRefs.length < calls) callRefs.push(tally.add.remote(callRefs.length))
      }
      await grid.wait(refs, { numReturns: Math.ceil(n / 4), timeoutMs: 300_000 })
      await lead.proc.kill('SIGKILL')
      const killedAt = performance.now()
      // What the new leader will find finished: the store, as the kill left it.
      const store = new RedisStore(redis.url)
      const snap = await store.load()
      await store.close()
      const finishedAtKill = snap.tasks.filter((t) => t.job === grid.jobId && t.state === 'finished')
      const isPlain = (name: string) => name === 'mix'
      const finishedBeforeKill = finishedAtKill.filter((t) => isPlain(t.spec.name)).length
      const othersBeforeKill = finishedAtKill.length - finishedBeforeKill
      const g2 = { url: standby.url, submitToken: tokens.COLONY_SUBMIT_TOKEN }
      await until(async () => {
        const h = await fetch(new URL('/healthz', standby.url)).then((r) => r.json() as Promise<{ standby?: boolean }>, () => undefined)
        return h && !h.standby
      }, 30_000, 'the standby to take over')
      const takeoverS = (performance.now() - killedAt) / 1000
      const { values, lost } = await settle(grid, refs, 600_000)
      const calledBack = await settle(grid, callRefs, 600_000)
      const seen = await grid.get(tally.all.remote(), { timeoutMs: 60_000 }) as number[]
      const counts = new Map<number, number>()
      for (const i of seen) counts.set(i, (counts.get(i) ?? 0) + 1)
      const tasks = (await api<{ items: { state: string; name: string }[] }>(g2, `/api/jobs/${grid.jobId}/tasks?limit=10000`)).body.items
      const appliedAfter = await metric(g2, 'colony_tasks_finished_total')
      const othersNow = tasks.filter((t) => !isPlain(t.name) && t.state === 'finished').length
      return {
        takeoverS, lost: lost + calledBack.lost,
        wrong: values.filter((v, i) => v !== undefined && v !== mix(i)).length + calledBack.values.filter((v, i) => v !== undefined && v !== i).length,
        recorded: tasks.filter((t) => isPlain(t.name)).length,
        // The new leader's counter counts the actor's calls too: take away those it finished.
        applied: finishedBeforeKill + appliedAfter - (othersNow - othersBeforeKill),
        finishedBeforeKill,
        actorCallsTwice: [...counts.values()].filter((c) => c > 1).length,
        actorCallsMissing: callRefs.length - counts.size,
      }
    } finally { await grid.close() }
  } finally {
    await Promise.all(procs.map((p) => p.kill('SIGTERM')))
    await redis.dispose()
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  }
}

/** Results lost or wrong, and results recorded or applied other than once. */
export const failoverLost = (f: FailoverFigures): number => f.lost + f.wrong + f.actorCallsMissing
export const failoverDuplicates = (f: FailoverFigures, n: number): number => Math.abs(f.recorded - n) + Math.max(0, f.applied - n) + f.actorCallsTwice
