/**
 * What peers report of the tasks they ran, and what follows: results recorded exactly once,
 * errors (retried when the task asks), attempts lost with their peer or executor (retried
 * within `maxRetries`), and objects rebuilt from lineage when their last copy is gone. The
 * task table itself is tasks.ts.
 */
import {
  AuthError, FAULTS, PeerDiedError, ProtocolError, returnId, serializeError, taskOfObject,
  type ResultOut, type SerializedError, type TaskState,
} from '@colony-grid/shared'
import type { PeerSession } from '../peer-session.js'
import type { ActorManager } from './actors.js'
import type { JobManager } from './jobs.js'
import type { ObjRec, ObjectDirectory } from './objects.js'
import { TERMINAL, type ControlOptions, type Counters } from './options.js'
import type { PeerManager } from './peers.js'
import type { Recovery } from './recovery.js'
import type { SpentRecords } from './spent-records.js'
import type { TaskManager, TaskRec } from './tasks.js'

export class TaskResults {
  private tasks!: TaskManager
  private jobs!: JobManager
  private objects!: ObjectDirectory
  private actors!: ActorManager
  private recovery!: Recovery
  private spent!: SpentRecords
  private peers!: PeerManager

  constructor(private readonly opts: ControlOptions, private readonly counters: Counters) {}

  wire(m: { tasks: TaskManager; jobs: JobManager; objects: ObjectDirectory; actors: ActorManager; recovery: Recovery; peers: PeerManager; spent: SpentRecords }): void {
    ({ tasks: this.tasks, jobs: this.jobs, objects: this.objects, actors: this.actors, recovery: this.recovery, peers: this.peers, spent: this.spent } = m)
  }

  /** A peer says a task it ran is done: its results, its error, or (`lost`) that its executor died under it. */
  done(s: PeerSession, taskId: string, results?: ResultOut[], error?: SerializedError, lost?: boolean, checkpoint?: Uint8Array): void {
    const t = this.tasks.get(taskId)
    if (!t) {
      if (this.spent.wasDropped(taskId)) { this.counters.duplicateResults++; return } // it had ended, and its record went since
      if (!lost && this.recovery.keepOrphanResult(s, taskId, results, error)) return
      throw new ProtocolError(`result for unknown task ${taskId}`)
    }
    const on = this.tasks.isOn(s.id, taskId)
    if (!on && t.ranOn !== s.id && !this.recovery.mayReport(s, t)) throw new AuthError(`peer ${s.id} was never given task ${taskId}`)
    // No quorum checks a job's main: only a trusted peer's result counts.
    if (t.main && !s.trusted) throw new AuthError(`peer ${s.id} is not trusted with job ${t.job}'s main`)
    // A late result from a host the actor has since left (it was restarted elsewhere) would undo its checkpoint.
    if (t.spec.actor && !on && this.actors.hostedElsewhere(t.spec.actor, s.id)) { this.counters.duplicateResults++; return }
    if (TERMINAL.has(t.state) && !FAULTS.applyDuplicateResults) { this.counters.duplicateResults++; return }
    if (lost) {
      // A stale report (the task has moved on from this peer) is no attempt's end: not timed either.
      if (t.peer !== s.id) return
      this.opts.taskTimings?.ended(t.startedAt, 'lost', s.kind)
      this.tasks.unassign(t)
      if (t.spec.actor) this.actors.callLost(t, s.id); else this.retryOrFail(t, s.id)
      return
    }
    // t.startedAt is the current attempt's: a report from another peer (an earlier attempt's) is not timed with it.
    this.opts.taskTimings?.ended(t.peer === s.id ? t.startedAt : undefined, error ? 'failed' : 'finished', s.kind)
    if (t.peer === s.id) this.tasks.unassign(t)
    else this.tasks.releaseFrom(s, t)
    if (error) {
      const maxRetries = t.spec.opts.maxRetries ?? (t.spec.actor ? 0 : 3)
      if (t.spec.opts.retryExceptions && t.attempts <= maxRetries && !t.spec.actor) {
        this.counters.tasksRetried++
        this.tasks.unassign(t)
        this.tasks.enqueue(t)
        return
      }
      this.fail(t, {
        type: 'TaskError', message: `${error.type}${error.code ? ` [${error.code}]` : ''}: ${error.message}`, remoteStack: error.stack ?? error.remoteStack ?? '',
        taskId: t.id, taskName: t.spec.name, peerId: s.id,
      })
      return
    }
    const n = t.spec.opts.numReturns ?? 1
    if (!results || results.length !== n) {
      this.fail(t, { type: 'TaskError', message: `returned ${results?.length ?? 0} values; numReturns is ${n}`, taskId: t.id, taskName: t.spec.name, peerId: s.id })
      return
    }
    if (t.state === 'running' && t.peer && t.peer !== s.id) {
      // Another attempt still runs elsewhere; this result wins, so stop that one.
      const other = this.peers.get(t.peer)
      this.tasks.unassign(t)
      other?.send({ t: 'cancelTask', task: t.id, reason: 'a result was already recorded' })
    }
    if (checkpoint && t.spec.actor) {
      // Recorded in the same commit as the call's result: a restart resumes exactly after the last recorded call.
      const tooBig = this.actors.recordCheckpoint(t, checkpoint)
      if (tooBig) { this.fail(t, tooBig); return }
    }
    this.finish(t, results, s)
  }

  /** Records a task's results: from the peer `s` that ran it, or (no `s`) a quorum's inline ones. */
  finish(t: TaskRec, results: ResultOut[], s?: PeerSession): void {
    const n = t.spec.opts.numReturns ?? 1
    this.tasks.setState(t, 'finished')
    if (s) s.tasksDone++
    this.counters.tasksFinished++
    if (n === 1 && results[0].inline) this.opts.store.tasks.finish(t.id, t.attempts, { size: results[0].size, inline: results[0].inline })
    else this.opts.store.tasks.setState(t.id, 'finished', t.attempts)
    for (let i = 0; i < n; i++) this.objects.recordResult(returnId(t.id, i), results[i], s, n > 1 || !results[i].inline)
    if (t.spec.createsActor) this.actors.created(t, s!)
    if (t.spec.actor) this.actors.callEnded(t)
    if (t.main) this.jobs.end(this.jobs.get(t.job)!, 'finished', 'its job finished')
  }

  fail(t: TaskRec, err: SerializedError, state: TaskState = 'failed'): void {
    if (TERMINAL.has(t.state)) return
    this.tasks.unassign(t)
    this.tasks.setState(t, state)
    t.error = err
    this.opts.store.tasks.setState(t.id, state, t.attempts, err)
    const n = t.spec.opts.numReturns ?? 1
    for (let i = 0; i < n; i++) this.objects.recordError(returnId(t.id, i), err)
    if (t.spec.createsActor) this.actors.creationFailed(t.id, err)
    if (t.spec.actor) this.actors.callEnded(t)
    // A bundle job ends with its main: what it left running (child tasks, actors) is cancelled with it.
    if (t.main) { const end = state === 'cancelled' ? 'cancelled' : 'failed'; this.jobs.end(this.jobs.get(t.job)!, end, `its job ${end}`, err) }
  }

  /** Its peer died under it: run it again while its retries last. */
  retryOrFail(t: TaskRec, deadPeer: string): void {
    const maxRetries = t.spec.opts.maxRetries ?? (t.spec.actor ? 0 : 3)
    if (t.attempts <= maxRetries && !FAULTS.failLostPeerTasks) {
      this.counters.tasksRetried++
      this.tasks.enqueue(t)
      return
    }
    this.fail(t, serializeError(new PeerDiedError(
      `peer ${deadPeer} died while running task ${t.spec.name} (${t.id}), and it has run ${t.attempts} time(s) (maxRetries ${maxRetries}). ` +
      'Raise maxRetries, or look at why peers are leaving.', { taskId: t.id, taskName: t.spec.name, peerId: deadPeer })))
  }

  /** The last copy of an object a task made is gone (`objectLost`): run that task again (lineage), or say it is lost for good. */
  objectLost(o: ObjRec): void {
    const t = this.tasks.get(taskOfObject(o.id)!)
    if (!t) { this.objects.awaitHolder(o); return } // no task to rebuild it: as a put, its holder may come back
    if (!TERMINAL.has(t.state)) return // its task is already running again (a sibling result started the rebuild)
    if (t.state === 'finished' && !t.spec.actor && !t.spec.createsActor) {
      const maxRetries = t.spec.opts.maxRetries ?? 3
      if (t.attempts <= maxRetries) {
        this.opts.log(`object ${o.id} lost with its last holder; re-running task ${t.spec.name} (${t.id}) from lineage`)
        for (let i = 0; i < (t.spec.opts.numReturns ?? 1); i++) this.objects.reopenIfGone(returnId(t.id, i))
        this.counters.tasksRetried++
        // Out of 'finished' first: if an input of the rebuild is gone too, fail() then settles every result.
        this.tasks.setState(t, 'waiting')
        this.tasks.enqueue(t)
        return
      }
    }
    this.objects.lostForGood(o, `every peer holding it left, and task ${t.spec.name} (${t.id}) has no retries left to rebuild it`)
  }
}
