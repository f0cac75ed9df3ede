/**
 * Retention (issue 17): how long what a finished job leaves behind is kept, so that a
 * coordinator that runs for months holds a bounded amount, in memory and in its store.
 * A finished job first keeps everything (its task records, objects, actors, functions and
 * log: what its timeline and `colony status` read) for `detailMs`, and at most
 * `maxDetailedJobs` jobs do; then only its summary (state, times, counts by state, its
 * main's result), for `summaryMs`, and at most `maxSummaries` of them; then nothing but an
 * entry in a bounded list of expired ids, so that the API can say "expired" rather than
 * "no such job". A running job keeps its work too, but for its spent records (spent-records.ts). A bundle (a job's code) is kept while a
 * job that keeps its work uses it, then for `detailMs` more, in case a job is started from it again.
 * A named state (state-api.ts) not written for `keepStateMs` goes too.
 */
import { FAULTS, returnId } from '@colony-grid/shared'
import type { ControlStore, JobRow } from '../store/types.js'
import type { ActorManager } from './actors.js'
import type { JobManager, JobRec } from './jobs.js'
import type { ObjectDirectory } from './objects.js'
import type { QuorumManager } from './quorum-manager.js'
import type { TaskManager } from './tasks.js'

export interface RetentionOptions {
  /** How long a finished job's work (tasks, objects, actors, functions, log) is kept, ms; and a bundle no such job uses. */
  detailMs: number
  /** At most this many finished jobs keep their work; the first finished go first. */
  maxDetailedJobs: number
  /** How long a finished job's summary is kept, ms. */
  summaryMs: number
  /** At most this many finished jobs keep their summary. */
  maxSummaries: number
  /** A running job keeps its newest this many spent tasks, and as many spent objects (spent-records.ts). */
  keepSpentRecords: number
  /** How long a named state (state-api.ts) is kept after its last write, ms; 0: until it is deleted. */
  keepStateMs: number
}

export const DEFAULT_RETENTION: RetentionOptions = {
  detailMs: 60 * 60_000, maxDetailedJobs: 100, summaryMs: 7 * 24 * 3_600_000, maxSummaries: 10_000, keepSpentRecords: 10_000,
  keepStateMs: 30 * 24 * 3_600_000,
}

/** Expired ids remembered (about 60 bytes each): past this, the oldest are forgotten and get a plain 404. */
const MAX_EXPIRED_IDS = 100_000

export interface Expired { owner?: string; finishedAt: number; summaryMs: number }

export class Retention {
  /** Finished jobs that keep their work, in the order they finished (a Map keeps insertion order). */
  private readonly detailed = new Map<string, number>()
  /** Finished jobs that keep only their summary, in the order they finished. */
  private readonly summarized = new Map<string, number>()
  /** Bounded by MAX_EXPIRED_IDS. */
  private readonly expiredIds = new Map<string, { owner?: string; finishedAt: number }>()
  private readonly timer: NodeJS.Timeout

  constructor(
    readonly settings: RetentionOptions,
    private readonly store: ControlStore,
    private readonly m: { jobs: JobManager; tasks: TaskManager; objects: ObjectDirectory; actors: ActorManager; quorum: QuorumManager },
    private readonly log: (line: string) => void,
  ) {
    // Often enough that nothing outlives its time by more than a quarter of it (within 50 ms to a minute).
    const every = Math.min(60_000, Math.max(50, Math.min(settings.detailMs, settings.summaryMs, settings.keepStateMs || Infinity) / 4))
    this.timer = setInterval(() => { this.sweep(); this.dropIdleBundles(); this.dropOldStates() }, every)
    this.timer.unref()
  }

  /** After a restart: the finished jobs the store kept, in the order they finished. */
  initialize(): void {
    const finished = this.m.jobs.finished().sort((a, b) => (a.finishedAt ?? 0) - (b.finishedAt ?? 0))
    for (const job of finished) (job.summary ? this.summarized : this.detailed).set(job.id, job.finishedAt ?? 0)
    this.sweep()
    this.dropOldStates()
  }

  /** `jobFinished`: its work is kept from now on for `detailMs`. */
  jobFinished(job: JobRec): void {
    this.detailed.set(job.id, job.finishedAt ?? Date.now())
    this.sweep()
  }

  /** Drops what is past its time or over its count. */
  sweep(now = Date.now()): void {
    if (FAULTS.retentionKeepsEverything) return
    const s = this.settings
    for (const [id, at] of this.detailed) {
      if (this.detailed.size <= s.maxDetailedJobs && now - at < s.detailMs) break
      this.dropDetails(id, at)
    }
    for (const [id, at] of this.summarized) {
      if (this.summarized.size <= s.maxSummaries && now - at < s.summaryMs) break
      this.expire(id, at)
    }
  }

  /** Bundles no job that keeps its work has used for `detailMs`: their code goes from the store. */
  dropIdleBundles(now = Date.now()): void {
    if (FAULTS.retentionKeepsEverything) return
    for (const hash of this.m.jobs.dropIdleBundles(now, this.settings.detailMs)) {
      this.store.bundles.remove(hash).catch((e: Error) => this.log(`could not drop bundle ${hash} from the ${this.store.kind} store (${e.message}); it is dropped again after the next restart`))
    }
  }

  /** Named states not written for `keepStateMs`. In the store only: the coordinator holds none of them. */
  dropOldStates(now = Date.now()): void {
    if (FAULTS.retentionKeepsEverything || !this.settings.keepStateMs || this.droppingStates) return
    this.droppingStates = true
    this.store.states.expire(now - this.settings.keepStateMs)
      .catch((e: Error) => this.log(`could not drop old named states from the ${this.store.kind} store (${e.message}); the next sweep tries again`))
      .finally(() => { this.droppingStates = false })
  }
  /** A sweep of the store's states is under way: a slow store never has two at once. */
  private droppingStates = false

  /** A job that expired (its owner may be told so), or undefined. */
  expired(id: string): Expired | undefined {
    const e = this.expiredIds.get(id)
    return e && { ...e, summaryMs: this.settings.summaryMs }
  }

  /** Has this job's work been dropped (only its summary is left)? */
  summaryOnly(id: string): boolean { return this.summarized.has(id) }

  private dropDetails(id: string, finishedAt: number): void {
    this.detailed.delete(id)
    const job = this.m.jobs.get(id)
    if (!job) return
    const summary: NonNullable<JobRow['summary']> = { tasks: this.m.tasks.counts(id) }
    const result = job.rootTask ? this.m.objects.get(returnId(job.rootTask)) : undefined
    if (result?.state === 'ready') { summary.resultSize = result.size; if (result.inline) summary.result = result.inline }
    const tasks = this.m.tasks.dropJob(id)
    this.m.quorum.dropTasks(tasks)
    const objects = this.m.objects.dropJob(id)
    const actors = this.m.actors.dropJob(id)
    const fns = this.m.jobs.dropDetails(job, summary)
    this.store.jobs.dropDetails(id, { tasks, objects, actors, fns })
    this.summarized.set(id, finishedAt)
  }

  private expire(id: string, finishedAt: number): void {
    this.summarized.delete(id)
    const job = this.m.jobs.get(id)
    if (job) this.m.jobs.expire(job)
    this.expiredIds.set(id, { owner: job?.owner, finishedAt })
    if (this.expiredIds.size > MAX_EXPIRED_IDS) this.expiredIds.delete(this.expiredIds.keys().next().value!)
  }

  close(): void { clearInterval(this.timer) }
}
