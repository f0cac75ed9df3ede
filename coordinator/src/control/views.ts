/**
 * The read-only projections that the HTTP API serves (GET /api/jobs, /api/jobs/:id and pages of
 * its tasks, objects, actors and log, /api/summary), each assembled from the managers that own
 * what it shows. Pages cost what they return (paging.ts); the summary reads kept counts.
 */
import {
  decodeValue, returnId,
  type ActorSummary, type GridSummary, type JobInfo, type JobState, type LogLine, type ObjectSummary, type Page, type TaskInfo, type TaskState,
} from '@colony-grid/shared'
import type { PageQuery } from '../paging.js'
import type { PeerSession } from '../peer-session.js'
import type { ActorState } from '../store/types.js'
import type { TokenGrant } from '../tokens.js'
import type { ActorManager } from './actors.js'
import type { JobManager } from './jobs.js'
import type { ObjState, ObjectDirectory } from './objects.js'
import type { Scheduler } from './scheduling.js'
import type { TaskManager } from './tasks.js'

/** What GET /api/summary counts, less what the server adds (`at`, `ready`). */
export type GridCounts = Omit<GridSummary, 'at' | 'ready'>

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

  /** A page of the jobs `grant` may see, newest first by default; each as GET /api/jobs/:id shows it. */
  jobsPage(q: PageQuery<JobState>, grant: TokenGrant): Page<JobInfo> {
    const ids = this.m.jobs.page(q, grant)
    return { ...ids, items: ids.items.map((id) => this.jobInfo(id)!) }
  }

  /** Pages of a job's tasks (submission order), its objects still alive and its actors (the order they were made). */
  jobTasks(jobId: string, q: PageQuery<TaskState>): Page<TaskInfo> | undefined {
    return this.m.jobs.get(jobId) ? this.m.tasks.page(jobId, q) : undefined
  }

  jobObjects(jobId: string, q: PageQuery<ObjState>): Page<ObjectSummary> | undefined {
    return this.m.jobs.get(jobId) ? this.m.objects.page(jobId, q) : undefined
  }

  jobActors(jobId: string, q: PageQuery<ActorState>): Page<ActorSummary> | undefined {
    return this.m.jobs.get(jobId) ? this.m.actors.page(jobId, q) : undefined
  }

  jobLogs(jobId: string, q: PageQuery): Page<LogLine> | undefined { return this.m.jobs.logPage(jobId, q) }

  /**
   * The grid in counts: tasks, jobs and objects from counts the managers keep as things change;
   * peers counted over the connected sessions (a pass over at most a few thousand, no task).
   */
  summary(sessions: Iterable<PeerSession>, quarantined: (id: string) => boolean, tasksFinishedTotal: number): GridCounts {
    const peers: GridCounts['peers'] = { total: 0, byKind: {}, byRole: {}, quarantined: 0, paused: 0 }
    for (const s of sessions) {
      if (s.closed) continue
      peers.total++
      peers.byKind[s.kind] = (peers.byKind[s.kind] ?? 0) + 1
      peers.byRole[s.role] = (peers.byRole[s.role] ?? 0) + 1
      if (s.paused) peers.paused++
      if (quarantined(s.id)) peers.quarantined++
    }
    return {
      peers,
      tasks: this.m.tasks.totalCounts(),
      jobs: this.m.jobs.stateCounts(),
      tasksFinishedTotal,
      objects: { kept: this.m.objects.size, bytes: this.m.objects.bytesKept },
    }
  }
}
