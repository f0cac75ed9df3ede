/**
 * Work no connected peer could ever run, per job and grouped by what it needs (JobInfo.infeasible).
 * scheduling.ts adds a task when its policy says so, and removes it once the task is placed,
 * leaves the queue, or could run on the peers connected now.
 */
import type { InfeasibleWork as InfeasibleInfo } from '@colony-grid/shared'

interface Group { job: string; key: string; needs: string[]; offered: string; since: number; message: string; tasks: Set<string> }

export class InfeasibleWork {
  /** Bound: queued tasks no peer can run (running jobs', maxTasksPerJob); each scheduling pass drops those no longer queued. */
  private readonly byTask = new Map<string, Group>()
  private readonly byJob = new Map<string, Map<string, Group>>()

  get size(): number { return this.byTask.size }
  has(id: string): boolean { return this.byTask.has(id) }
  ids(): string[] { return [...this.byTask.keys()] }

  /** Puts the task in its job's group for `key` (what it needs), with what the peers offer now; false when the job has no such group yet. */
  join(taskId: string, job: string, key: string, offered: string): boolean {
    const g = this.byJob.get(job)?.get(key)
    if (!g) return false
    g.offered = offered
    const prior = this.byTask.get(taskId)
    if (prior === g) return true
    if (prior) this.remove(taskId)
    g.tasks.add(taskId)
    this.byTask.set(taskId, g)
    return true
  }

  /** A job's first task that needs `key`: its group begins. */
  open(job: string, key: string, needs: string[], offered: string, message: string): void {
    let groups = this.byJob.get(job)
    if (!groups) this.byJob.set(job, groups = new Map())
    groups.set(key, { job, key, needs, offered, since: Date.now(), message, tasks: new Set() })
  }

  remove(id: string): void {
    const g = this.byTask.get(id)
    if (!g) return
    this.byTask.delete(id)
    g.tasks.delete(id)
    if (g.tasks.size > 0) return
    const groups = this.byJob.get(g.job)!
    groups.delete(g.key)
    if (groups.size === 0) this.byJob.delete(g.job)
  }

  /** A job's groups; `nameOf` names a task that still waits (undefined: it does not). Undefined when none wait. */
  ofJob(jobId: string, nameOf: (id: string) => string | undefined): InfeasibleInfo[] | undefined {
    const groups = this.byJob.get(jobId)
    if (!groups) return undefined
    const out: InfeasibleInfo[] = []
    for (const g of groups.values()) {
      // Read on every GET of the job: stop at the first task that still waits rather than ask about
      // each of a 100,000-task group. Those that stopped waiting leave the group at the next scheduling pass.
      let first: { id: string; name: string } | undefined
      let gone = 0
      for (const id of g.tasks) {
        const name = nameOf(id)
        if (name === undefined) { gone++; continue }
        first = { id, name }
        break
      }
      if (first) out.push({ needs: g.needs, offered: g.offered, tasks: g.tasks.size - gone, task: first, since: g.since, message: g.message })
    }
    return out.length > 0 ? out : undefined
  }
}
