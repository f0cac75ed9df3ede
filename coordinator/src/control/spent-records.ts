/**
 * A running job's spent records. Retention (retention.ts) bounds what finished jobs leave; this
 * bounds what a job leaves while it runs. A deployment (client/src/serving) or a training run is
 * one job that may run for weeks and finish a task per batch; each task's record and its freed
 * result's tombstone would stay until the job ends, in memory and in the store, and past
 * `maxTasksPerJob` the job could submit nothing more.
 *
 * A task is spent once it has ended and its owner has freed all its results (and no unfinished
 * task needs them: an object is disposed of only then); a put object is spent once it is disposed
 * of. A job keeps its newest `keep` spent tasks and `keep` spent objects (its timeline and
 * `colony status` list them), and the older ones go, a chunk at a time, from memory and from the
 * store. Its counts by state still count them. What is never spent: a job's main, an actor's
 * creation (a restart runs it again), and a replicated task until every replica has ended.
 * A message that names a dropped id (a replayed submit or put, a late result) is known as a replay.
 */
import { returnId, taskOfObject } from '@colony-grid/shared'
import type { ControlStore } from '../store/types.js'
import type { JobManager } from './jobs.js'
import type { ObjRec, ObjectDirectory } from './objects.js'
import { TERMINAL } from './options.js'
import type { QuorumManager } from './quorum-manager.js'
import type { TaskManager, TaskRec } from './tasks.js'

/** Ids of dropped records remembered (about 80 bytes each), so that a replay of one is not taken for new work. */
const MAX_DROPPED_IDS = 50_000

interface Spent { tasks: string[]; objects: string[] }

export class SpentRecords {
  /** Per running job, its spent tasks and objects, oldest first. Bound: keep + a chunk of each per running job. */
  private readonly spent = new Map<string, Spent>()
  /** Bound: MAX_DROPPED_IDS, the oldest forgotten first. */
  private readonly dropped = new Set<string>()
  private readonly chunk: number

  readonly keep: number

  constructor(
    keep: number,
    private readonly store: ControlStore,
    private readonly m: { jobs: JobManager; tasks: TaskManager; objects: ObjectDirectory; quorum: QuorumManager },
  ) {
    // At least 1: the record just spent is never the one dropped, so the code that spent it (finish,
    // fail, dispose) may still write its row after this returns without bringing a dropped row back.
    this.keep = Math.max(1, keep)
    // Dropping a chunk rewrites the job's id list once: a tenth of `keep` at a time makes that cheap per record.
    this.chunk = Math.max(16, Math.floor(this.keep / 10))
  }

  /** Was this task or object a spent record that was dropped (lately)? */
  wasDropped(id: string): boolean { return this.dropped.size > 0 && this.dropped.has(id) }

  /** `objectFreed`: a put is spent; a task's result may make its task spent. */
  objectFreed(o: ObjRec): void {
    if (this.m.jobs.get(o.job)?.state !== 'running') return // a job's end disposes everything: retention has it
    const task = taskOfObject(o.id)
    if (task === undefined) { this.add(o.job, 'objects', o.id); return }
    const t = this.m.tasks.get(task)
    if (t) this.taskChanged(t)
  }

  /** A task ended (tasks.ts), or a result of it was disposed of. */
  taskChanged(t: TaskRec): void {
    const main = t.replicaOf ? this.m.tasks.get(t.replicaOf) : t
    if (!main || main.spent || !TERMINAL.has(main.state) || main.main || main.spec.createsActor) return
    if (this.m.jobs.get(main.job)?.state !== 'running') return
    if (!this.resultsFreed(main)) return
    for (const r of this.m.quorum.replicasOf(main)) {
      const replica = this.m.tasks.get(r)
      if (replica && !TERMINAL.has(replica.state)) return
    }
    main.spent = true
    this.add(main.job, 'tasks', main.id)
  }

  /** `jobFinished`: retention keeps (then drops) the rest of its records. */
  jobFinished(jobId: string): void { this.spent.delete(jobId) }

  private resultsFreed(t: TaskRec): boolean {
    const n = t.spec.opts.numReturns ?? 1
    if (n < 1) return false
    for (let i = 0; i < n; i++) if (!this.m.objects.get(returnId(t.id, i))?.freed) return false
    return true
  }

  private add(jobId: string, kind: keyof Spent, id: string): void {
    let s = this.spent.get(jobId)
    if (!s) this.spent.set(jobId, s = { tasks: [], objects: [] })
    s[kind].push(id)
    if (s[kind].length >= this.keep + this.chunk) this.drop(jobId, s)
  }

  /** The oldest spent records past `keep` go, from every manager that holds them and from the store. */
  private drop(jobId: string, s: Spent): void {
    const tasks = s.tasks.length > this.keep ? s.tasks.splice(0, s.tasks.length - this.keep) : []
    const puts = s.objects.length > this.keep ? s.objects.splice(0, s.objects.length - this.keep) : []
    const taskIds: string[] = [], objectIds = [...puts]
    for (const id of tasks) {
      const t = this.m.tasks.get(id)
      if (!t) continue
      for (const r of [id, ...this.m.quorum.replicasOf(t)]) {
        const n = this.m.tasks.get(r)?.spec.opts.numReturns ?? 1
        taskIds.push(r)
        for (let i = 0; i < n; i++) objectIds.push(returnId(r, i))
      }
    }
    this.m.quorum.dropTasks(tasks)
    const job = this.m.jobs.get(jobId)
    if (job) this.m.jobs.addDropped(job, this.m.tasks.dropRecords(jobId, taskIds))
    this.m.objects.dropRecords(objectIds)
    this.store.jobs.dropRecords(jobId, { tasks: taskIds, objects: objectIds })
    for (const id of taskIds) this.remember(id)
    for (const id of puts) this.remember(id)
  }

  private remember(id: string): void {
    this.dropped.add(id)
    if (this.dropped.size > MAX_DROPPED_IDS) this.dropped.delete(this.dropped.values().next().value!)
  }
}
