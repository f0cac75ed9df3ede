/**
 * The read-only projections of a job that the HTTP API serves (GET /api/jobs/:id and its
 * tasks, objects and actors), each assembled from the managers that own what it shows.
 */
import { decodeValue, returnId, type ActorSummary, type JobInfo, type ObjectSummary, type TaskInfo } from '@colony-grid/shared'
import type { ActorManager } from './actors.js'
import type { JobManager } from './jobs.js'
import type { ObjectDirectory } from './objects.js'
import type { Scheduler } from './scheduling.js'
import type { TaskManager } from './tasks.js'

export class JobViews {
  constructor(private readonly m: { jobs: JobManager; tasks: TaskManager; objects: ObjectDirectory; actors: ActorManager; scheduler: Scheduler }) {}

  jobInfo(jobId: string): JobInfo | undefined {
    const job = this.m.jobs.get(jobId)
    if (!job) return undefined
    const info: JobInfo = { id: job.id, name: job.name, state: job.state, createdAt: job.createdAt, finishedAt: job.finishedAt, tasks: this.m.tasks.counts(job.id) }
    if (job.summary) {
      // Retention dropped its work: what is left is what was written down when it did.
      info.tasks = { ...job.summary.tasks }
      info.detailsExpired = true
      if (job.summary.result) { try { info.result = decodeValue(job.summary.result) } catch { info.result = '<undecodable>' } }
      else if (job.summary.resultSize !== undefined && job.rootTask) info.result = { objectRef: returnId(job.rootTask), size: job.summary.resultSize }
    } else if (job.rootTask) {
      const o = this.m.objects.get(returnId(job.rootTask))
      if (o?.inline && o.state === 'ready') { try { info.result = decodeValue(o.inline) } catch { info.result = '<undecodable>' } }
      else if (o?.state === 'ready') info.result = { objectRef: o.id, size: o.size }
    }
    if (job.error) info.error = job.error
    // Work no connected peer could ever run, its main waiting for a trusted worker among it.
    const infeasible = this.m.scheduler.infeasibleOf(job.id)
    if (infeasible) { info.infeasible = infeasible; info.waiting = infeasible[0].message }
    return info
  }

  jobTasks(jobId: string): TaskInfo[] | undefined {
    return this.m.jobs.get(jobId) ? this.m.tasks.infos(jobId) : undefined
  }

  /** A job's objects that are still alive, with where their bytes are (at most `limit`). */
  jobObjects(jobId: string, limit = 1000): ObjectSummary[] | undefined {
    return this.m.jobs.get(jobId) ? this.m.objects.ofJob(jobId, limit) : undefined
  }

  jobActors(jobId: string): ActorSummary[] | undefined {
    return this.m.jobs.get(jobId) ? this.m.actors.ofJob(jobId) : undefined
  }
}
