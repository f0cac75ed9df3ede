/**
 * Which task waits on which object, and which objects unfinished tasks still need (pins): the
 * raylet's DependencyManager. A task is ready when the last of its arguments is made; an
 * object its owner freed is disposed of only once no unfinished task needs it.
 */
import { ObjectLostError, serializeError, type SerializedError } from '@colony-grid/shared'
import type { ObjRec, ObjectDirectory } from './objects.js'
import type { TaskResults } from './task-results.js'
import type { TaskManager, TaskRec } from './tasks.js'

export class DependencyManager {
  /** Tasks waiting for an object to be made, by object. Bound: running jobs' unfinished tasks (maxTasksPerJob). */
  private readonly waiting = new Map<string, TaskRec[]>()
  /** How many unfinished tasks need each object as an argument. Bound: as `waiting`; an entry goes at 0. */
  private readonly pins = new Map<string, number>()
  private objects!: ObjectDirectory
  private tasks!: TaskManager
  private results!: TaskResults

  wire(m: { objects: ObjectDirectory; tasks: TaskManager; results: TaskResults }): void {
    ({ objects: this.objects, tasks: this.tasks, results: this.results } = m)
  }

  /**
   * Counts the task's arguments not made yet (`t.pendingDeps`) and waits on them. Returns the
   * error to fail it with when an argument failed, or is not its job's.
   */
  await(t: TaskRec): SerializedError | undefined {
    t.pendingDeps = 0
    for (const dep of t.spec.deps) {
      const o = this.objects.get(dep)
      if (!o || o.job !== t.job) {
        return serializeError(new ObjectLostError(`task ${t.spec.name} (${t.id}) needs object ${dep}, which this job does not have`, { objectId: dep, taskId: t.id }))
      }
      if (o.state === 'error') return o.error!
      if (o.state === 'pending') {
        t.pendingDeps++
        const ts = this.waiting.get(dep)
        if (ts) ts.push(t); else this.waiting.set(dep, [t])
      }
    }
    return undefined
  }

  /** An object was made or failed (`objectReady`): the tasks waiting on it go on, or fail with it. */
  objectReady(o: ObjRec, state: 'ready' | 'error'): void {
    if (this.waiting.size === 0) return
    const ts = this.waiting.get(o.id)
    if (!ts) return
    this.waiting.delete(o.id)
    for (const t of ts) {
      if (t.state !== 'waiting') continue
      if (state === 'error') this.results.fail(t, o.error!)
      else if (--t.pendingDeps === 0) this.tasks.makeReady(t)
    }
  }

  /** A task holds its arguments (`by` 1) until it ends (-1); the last release of a freed object disposes of it. */
  pin(t: TaskRec, by: 1 | -1): void {
    for (const d of t.spec.deps) {
      if (!this.objects.has(d)) continue
      const n = (this.pins.get(d) ?? 0) + by
      if (n !== 0) { this.pins.set(d, n); continue }
      this.pins.delete(d)
      this.objects.unpinned(d)
    }
  }

  pinned(id: string): boolean { return this.pins.has(id) }
}
