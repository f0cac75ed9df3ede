/**
 * The soak (issue 17): many jobs one after another and side by side, peers killed and
 * replaced meanwhile, for a fixed number of tasks, on a coordinator whose retention is short.
 * The coordinator's resident memory and its store's size on disk are sampled four times a second
 * throughout (a sample per round would catch the sawtooth of its garbage, or the file between
 * retention's drop and the next job's rows, at one point or another of their cycles); with
 * retention working, both level off: the last quarter of the samples sits within a few percent
 * of the first quarter's. The samples count from the round in which the first job expired
 * altogether (the API says so), and not before a tenth of the tasks have run: until then the
 * retention windows are still filling, and the process is still warming up (JIT-compiled code,
 * V8's young generation and the allocator's arenas grow to the load over the first hundred
 * thousand tasks or so).
 */
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { connect } from '@colony-grid/client'
import { api, metric, startGrid } from '../harness.js'
import type { Faults } from './scenarios.js'

export interface SoakFigures {
  tasks: number
  jobs: number
  /** Rounds not counted: before the first job expired, and the first tenth of the tasks; -1: no job expired, and every round counts. */
  warmRounds: number
  /** Mean of the last quarter's samples (taken every 250 ms) over the first quarter's. */
  rssGrowth: number
  storeGrowth: number
  /** The most job, task and object records the coordinator held after a round (its /metrics), from the first expiry on. */
  keptMax: { jobs: number; tasks: number; objects: number }
  /** The most rows of those kinds in its store after a round, from the first expiry on. */
  rowsMax: { jobs: number; tasks: number; objects: number }
  /** Results the drivers never got, or got wrong. */
  lost: number
  /** After each round (for the record; the ratios are of the samples every 250 ms). */
  rssMb: number[]
  /** The coordinator's V8 heap in use after each round (garbage not yet collected included). */
  heapMb: number[]
  storeMb: number[]
  seconds: number
}

/** Short retention, so that a run of minutes sees many jobs come and go (the defaults keep them for an hour and a week). */
export const SOAK_RETENTION = { COLONY_JOB_DETAIL_MS: '2000', COLONY_MAX_DETAILED_JOBS: '4', COLONY_JOB_SUMMARY_MS: '4000', COLONY_MAX_JOB_SUMMARIES: '8' }

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024
const sizeMb = (files: string[]) => files.reduce((n, f) => { try { return n + statSync(f).size } catch { return n } }, 0) / 2 ** 20
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
const quarters = (xs: number[], level: (q: number[]) => number) => { const q = Math.max(1, Math.floor(xs.length / 4)); return level(xs.slice(-q)) / level(xs.slice(0, q)) }

/** `rounds` rounds of `sideBySide` jobs at once, `tasksPerJob` tasks each; a worker is killed and replaced in every other round. */
export async function soak(rounds: number, sideBySide: number, tasksPerJob: number, opts: { faults?: Faults } = {}): Promise<SoakFigures> {
  const started = performance.now()
  const g = await startGrid({ workers: 3, env: { ...SOAK_RETENTION, COLONY_INJECT_FAULTS: (opts.faults?.coordinator ?? []).join(',') } })
  const db = join(g.dataDir, 'colony.db')
  const rss: number[] = [], store: number[] = [], heap: number[] = []
  let lost = 0, firstJob = '', warmRounds = -1, warmSamples = 0
  const rssSamples: number[] = [], storeSamples: number[] = []
  const sampler = setInterval(() => {
    try { rssSamples.push(rssMb(g.coordinator.child.pid!)); storeSamples.push(sizeMb([db])) } catch { /* it has just exited */ }
  }, 250)
  const keptMax = { jobs: 0, tasks: 0, objects: 0 }, rowsMax = { jobs: 0, tasks: 0, objects: 0 }
  try {
    for (let r = 0; r < rounds; r++) {
      let replaced: Promise<unknown> | undefined
      const churn = r % 2 === 1 ? setTimeout(() => {
        const victim = g.workers.shift()
        g.workerIds.shift()
        replaced = victim?.kill('SIGKILL').then(() => g.addWorker())
      }, 100) : undefined
      await Promise.all(Array.from({ length: sideBySide }, async () => {
        const grid = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
        firstJob ||= grid.jobId
        try {
          const square = grid.remote((i: number) => i * i)
          const refs = Array.from({ length: tasksPerJob }, (_, i) => square.remote(i))
          const values = await Promise.allSettled(refs.map((ref) => grid.get(ref, { timeoutMs: 300_000 })))
          lost += values.filter((v, i) => v.status !== 'fulfilled' || v.value !== i * i).length
        } finally { await grid.close() }
      }))
      clearTimeout(churn)
      // The replacement joins before the next round (and before the grid stops).
      await replaced
      // Until the first job expires, and through the first tenth of the rounds, samples are taken but not
      // counted, unless no job ever expires (then retention does nothing, and every sample counts).
      if (warmRounds < 0 && (r + 1) * 10 >= rounds && (await api(g, `/api/jobs/${firstJob}`)).status === 410) { warmRounds = r; warmSamples = rssSamples.length }
      const rows = new Database(db, { readonly: true, fileMustExist: true })
      for (const kind of ['jobs', 'tasks', 'objects'] as const) {
        keptMax[kind] = Math.max(keptMax[kind], await metric(g, `colony_${kind}_kept`))
        rowsMax[kind] = Math.max(rowsMax[kind], (rows.prepare(`SELECT COUNT(*) AS n FROM ${kind}`).get() as { n: number }).n)
      }
      rows.close()
      rss.push(rssMb(g.coordinator.child.pid!))
      heap.push(await metric(g, 'nodejs_heap_size_used_bytes') / 2 ** 20)
      // The database file: what the store keeps. Its WAL breathes between nothing and a few MB with
      // checkpoints (the coordinator cuts it back after each retention sweep), so it is not counted.
      store.push(sizeMb([db]))
    }
  } finally { clearInterval(sampler); await g.stop() }
  const from = Math.max(0, warmRounds)
  rss.splice(0, from)
  heap.splice(0, from)
  store.splice(0, from)
  return {
    tasks: rounds * sideBySide * tasksPerJob, jobs: rounds * sideBySide, lost, warmRounds, keptMax, rowsMax,
    rssGrowth: quarters(rssSamples.slice(warmSamples), mean), storeGrowth: quarters(storeSamples.slice(warmSamples), mean), rssMb: rss, storeMb: store, heapMb: heap, seconds: (performance.now() - started) / 1000,
  }
}
