/**
 * The task table (Ray's GcsTaskManager with the raylet's lease bookkeeping): tasks, their
 * state machine, which peer runs what, submit, dispatch (`run`), cancel and blocking. What
 * peers report back (results, errors, retries, lineage rebuilds) is task-results.ts; what a
 * task waits on and pins is dependencies.ts; where it runs is scheduling.ts.
 */
import {
  AuthError, CancelledError, LimitError, ProtocolError, serializeError,
  type FnDef, type ObjectInfo, type Page, type SerializedError, type TaskInfo, type TaskSpec, type TaskState,
} from '@colony-grid/shared'
import { pageOf, type PageQuery } from '../paging.js'
import type { PeerSession } from '../peer-session.js'
import type { StoreSnapshot } from '../store/types.js'
import type { ActorManager } from './actors.js'
import type { DependencyManager } from './dependencies.js'
import type { JobManager, JobRec } from './jobs.js'
import type { ObjectDirectory } from './objects.js'
import { DEFAULT_TASK_TIMEOUT_MS, TERMINAL, resourcesOf, type ControlOptions } from './options.js'
import type { PeerManager } from './peers.js'
import type { QuorumManager } from './quorum-manager.js'
import type { Recovery } from './recovery.js'
import type { Scheduler } from './scheduling.js'
import type { SpentRecords } from './spent-records.js'
import type { TaskResults } from './task-results.js'

export interface TaskRec {
  id: string
  job: string
  spec: TaskSpec
  state: TaskState
  attempts: number
  peer?: string
  /** The peer that ran the last attempt (kept after it finishes). */
  ranOn?: string
  /** Loaded unfinished after a restart: a peer may report a result the coordinator never saw it given. */
  restored?: boolean
  /** Submission order, so re-queued actor calls keep their order. */
  seq: number
  /** Arguments not made yet (dependencies.ts). */
  pendingDeps: number
  blocked: boolean
  main: boolean
  res: Record<string, number>
  /** Cpu charged to its job's owner while it holds a slot (fair-queue.ts). */
  charged?: number
  error?: SerializedError
  /** When its last attempt started and when it ended (ms since the epoch), for timelines. */
  startedAt?: number
  endedAt?: number
  /** When it was last queued as ready (performance.now()), for the queue-wait and scheduling-latency metrics. */
  readyAt?: number
  /** A replica (set by quorum-manager.ts): the task it runs for. */
  replicaOf?: string
  /** Ended, and its results freed: its record goes once its job has enough such (spent-records.ts). */
  spent?: boolean
}

/**
 * A job's tasks in submission order (their `seq`s ascend: the HTTP API pages by them), how many
 * are in each state (`counts`, spent records that went included), and how many of the records
 * still held are (`held`: what a page's total counts).
 */
interface JobTasks { ids: string[]; counts: Record<TaskState, number>; held: Record<TaskState, number> }

export const TASK_STATES: readonly TaskState[] = ['waiting', 'ready', 'running', 'finished', 'failed', 'cancelled']
const noTasks = (): Record<TaskState, number> => ({ waiting: 0, ready: 0, running: 0, finished: 0, failed: 0, cancelled: 0 })

export class TaskManager {
  /** Bound: maxTasksPerJob per running job; finished jobs' until retention (maxDetailedJobs, detailMs) drops them. */
  private readonly tasks = new Map<string, TaskRec>()
  /** Bound: as `tasks`. */
  private readonly byJob = new Map<string, JobTasks>()
  /** Tasks assigned to each peer and not finished, including actor calls. Bound: connected peers' slots; a peer's go when it leaves. */
  private readonly running = new Map<string, Set<string>>()
  private nextSeq = 0
  /** The jobs' `counts` added up (GET /api/summary reads this, not the tasks). */
  private readonly totals = noTasks()
  private peers!: PeerManager
  private jobs!: JobManager
  private objects!: ObjectDirectory
  private deps!: DependencyManager
  private actors!: ActorManager
  private quorum!: QuorumManager
  private scheduler!: Scheduler
  private recovery!: Recovery
  private results!: TaskResults
  private spent!: SpentRecords

  constructor(private readonly opts: ControlOptions, private readonly requestTick: () => void) {}

  wire(m: { peers: PeerManager; jobs: JobManager; objects: ObjectDirectory; deps: DependencyManager; actors: ActorManager; quorum: QuorumManager; scheduler: Scheduler; recovery: Recovery; results: TaskResults; spent: SpentRecords }): void {
    ({ peers: this.peers, jobs: this.jobs, objects: this.objects, deps: this.deps, actors: this.actors, quorum: this.quorum, scheduler: this.scheduler, recovery: this.recovery, results: this.results, spent: this.spent } = m)
  }

  get(id: string): TaskRec | undefined { return this.tasks.get(id) }
  all(): IterableIterator<TaskRec> { return this.tasks.values() }
  /** A job's task ids, in submission order. */
  ofJob(jobId: string): readonly string[] { return this.byJob.get(jobId)?.ids ?? [] }
  counts(jobId: string): Record<TaskState, number> {
    const tally = this.byJob.get(jobId)
    return tally ? { ...tally.counts } : noTasks()
  }
  /** Tasks of the jobs whose work is kept, by state: kept as they change, so reading it costs nothing. */
  totalCounts(): Record<TaskState, number> { return { ...this.totals } }
  /** Retention: a finished job's task records go (all are ended); returns their ids. */
  dropJob(jobId: string): string[] {
    const tally = this.byJob.get(jobId)
    const ids = tally?.ids ?? []
    for (const id of ids) this.tasks.delete(id)
    if (tally) for (const s of TASK_STATES) this.totals[s] -= tally.counts[s]
    this.byJob.delete(jobId)
    return [...ids]
  }

  /** A running job's spent tasks (spent-records.ts): their records go; its counts by state keep them. Returns their states. */
  dropRecords(jobId: string, ids: readonly string[]): TaskState[] {
    const tally = this.byJob.get(jobId)
    if (!tally || ids.length === 0) return []
    const gone = new Set(ids), states: TaskState[] = []
    for (const id of ids) {
      const t = this.tasks.get(id)
      if (t) { states.push(t.state); tally.held[t.state]--; this.tasks.delete(id) }
    }
    tally.ids = tally.ids.filter((id) => !gone.has(id))
    return states
  }

  /** Task records held (running jobs', and finished jobs' until retention drops them). */
  get size(): number { return this.tasks.size }

  /** Is the task assigned to this peer now? */
  isOn(peer: string, taskId: string): boolean { return !!this.running.get(peer)?.has(taskId) }
  runningCount(peer: string): number { return this.running.get(peer)?.size ?? 0 }

  /** The job a peer acts for: a driver's own, or (a worker submitting from inside a task) the job of that task, which must have run there. */
  jobFor(s: PeerSession, parent?: string): JobRec {
    if (s.role === 'driver') {
      const job = this.jobs.get(s.jobId!)!
      if (job.state !== 'running') throw new ProtocolError(`job ${job.id} is ${job.state}; connect again to start a new job`)
      return job
    }
    if (!parent) throw new AuthError('workers submit only from inside a task they run (no parent task given)')
    const pt = this.tasks.get(parent)
    // A replayed submit may come after its parent was re-queued or finished: what counts is that it ran here.
    if (!pt || !(pt.ranOn === s.id || (pt.restored && !pt.ranOn && s.resumed))) {
      throw new AuthError(`task ${parent} did not run on peer ${s.id}; it cannot submit work`)
    }
    const job = this.jobs.get(pt.job)!
    if (job.state !== 'running') throw new ProtocolError(`job ${job.id} is ${job.state}`)
    return job
  }

  submit(s: PeerSession, spec: TaskSpec): void {
    if (this.spent.wasDropped(spec.id)) return // a replay of a task that ran, and whose record went since
    const job = this.jobFor(s, spec.parent)
    const existing = this.tasks.get(spec.id)
    if (existing) {
      if (existing.job === job.id) return // a replay after reconnect
      throw new ProtocolError(`task id ${spec.id} is taken`)
    }
    if (spec.id.includes('~')) throw new ProtocolError(`task ids may not contain '~' (it marks the coordinator's replicas): ${spec.id}`)
    if (spec.actor) {
      if (!this.actors.inJob(spec.actor, job.id)) throw new ProtocolError(`unknown actor ${spec.actor} in job ${job.id}`)
    } else if (!this.jobs.fnOf(job, spec.fn)) {
      throw new ProtocolError(`task ${spec.name}: function ${spec.fn} was not defined in job ${job.id} (send 'fn' first)`)
    }
    // Past a quota the task is recorded as failed with a LimitError naming it, so its `get` says why
    // (up to a point: past that, the submit is only answered with the error).
    const q = this.opts.quotas
    const n = this.ofJob(job.id).length
    const over = n >= q.maxTasksPerJob
      ? new LimitError('maxTasksPerJob', `job ${job.id} has ${n} tasks on record (ended ones whose results were freed go once it has COLONY_KEEP_SPENT_RECORDS of them); the maxTasksPerJob limit is ${q.maxTasksPerJob}. Task ${spec.name} (${spec.id}) was refused`)
      : spec.args.length > q.maxArgBytes
        ? new LimitError('maxArgBytes', `task ${spec.name} (${spec.id}) has ${spec.args.length} bytes of arguments; the maxArgBytes limit is ${q.maxArgBytes} (large values go as objects: grid.put)`)
        : undefined
    if (over && n >= q.maxTasksPerJob + 10_000) throw over
    if (over) {
      const t = this.add(job, { ...spec, args: new Uint8Array(0), deps: [], actor: undefined, createsActor: undefined, opts: { numReturns: spec.opts.numReturns } }, false)
      this.results.fail(t, serializeError(over))
      return
    }
    this.add(job, spec, false)
  }

  /** Records a new task (a submit, a replica, a bundle job's main) and queues it. */
  add(job: JobRec, spec: TaskSpec, main: boolean): TaskRec {
    if (spec.createsActor) spec = this.actors.withOwner(spec, job.id)
    const t: TaskRec = { id: spec.id, job: job.id, spec, state: 'waiting', attempts: 0, pendingDeps: 0, blocked: false, main, res: resourcesOf(spec), seq: this.nextSeq++ }
    // Soon after a restart, a submit may be a replay of one that already ran: its result is acceptable from any peer.
    if (this.recovery.replaying()) t.restored = true
    this.tasks.set(t.id, t)
    const tally = this.tallyOf(job.id)
    tally.ids.push(t.id)
    tally.counts.waiting++
    tally.held.waiting++
    this.totals.waiting++
    this.objects.addReturns(t.id, job.id, spec.opts.numReturns ?? 1, false)
    if (spec.createsActor) this.actors.create(t.id, job.id, spec)
    if (spec.actor) this.actors.queueCall(spec.actor, t.id)
    this.deps.pin(t, 1)
    this.opts.store.tasks.put({ id: t.id, job: job.id, spec, state: 'waiting', attempts: 0, main })
    // A call of an actor that has ended fails; so does a creation whose owner actor ended meanwhile.
    const ended = spec.actor ? this.actors.endedError(spec.actor) : spec.createsActor ? this.actors.orphanError(spec) : undefined
    if (ended) { this.results.fail(t, ended); return t }
    if (this.recovery.adopt(t)) return t
    const k = spec.opts.replicas ?? 1
    if (k > 1 && !spec.actor && !spec.createsActor && !main) this.quorum.replicate(t, k)
    this.enqueue(t)
    return t
  }

  private tallyOf(jobId: string): JobTasks {
    let tally = this.byJob.get(jobId)
    if (!tally) this.byJob.set(jobId, tally = { ids: [], counts: noTasks(), held: noTasks() })
    return tally
  }

  setState(t: TaskRec, state: TaskState): void {
    if (t.state === state) return
    const { counts, held } = this.byJob.get(t.job)!
    counts[t.state]--
    counts[state]++
    held[t.state]--
    held[state]++
    this.totals[t.state]--
    this.totals[state]++
    const wasDone = TERMINAL.has(t.state), nowDone = TERMINAL.has(state)
    t.state = state
    if (state === 'running') { t.startedAt = Date.now(); t.endedAt = undefined } else if (nowDone) t.endedAt = Date.now()
    else if (state === 'ready') t.readyAt = performance.now()
    if (nowDone && t.replicaOf) this.quorum.replicaEnded(t)
    // A task holds its arguments until it ends; a lineage re-run holds them again.
    if (wasDone !== nowDone) this.deps.pin(t, nowDone ? -1 : 1)
    if (nowDone) this.spent.taskChanged(t)
  }

  /** Counts unresolved dependencies, and queues the task when there are none. */
  enqueue(t: TaskRec): void {
    const err = this.deps.await(t)
    if (err) { this.results.fail(t, err); return }
    if (t.pendingDeps === 0) this.makeReady(t)
    else this.setState(t, 'waiting')
  }

  makeReady(t: TaskRec): void {
    if (this.quorum.isReplicated(t)) { this.setState(t, 'running'); return } // its replicas run, not it
    this.setState(t, 'ready')
    if (t.spec.actor) { this.actors.pumpLater(t.spec.actor); this.requestTick(); return }
    this.scheduler.push(t)
  }

  /** Runs the task again from the start (an actor's creation, to restart the actor). */
  rerun(t: TaskRec): void {
    if (t.peer) this.unassign(t)
    this.setState(t, 'waiting')
    t.attempts = 0
    this.opts.store.tasks.setState(t.id, 'waiting', 0)
    this.enqueue(t)
  }

  /** It ran (and finished) on `peer` while the coordinator was down (recovery.ts). */
  ranBefore(t: TaskRec, peer: string): void { t.ranOn = peer; t.attempts = 1 }

  /** The task runs on `s` now; `sendRun`: tell the peer (a reconnecting peer that still runs it is not told again). */
  assign(t: TaskRec, s: PeerSession, sendRun: boolean, blocked = false): void {
    t.attempts++
    t.peer = s.id
    t.ranOn = s.id
    t.blocked = blocked
    this.setState(t, 'running')
    let mine = this.running.get(s.id)
    if (!mine) this.running.set(s.id, mine = new Set())
    mine.add(t.id)
    if (!blocked) { s.take(t.res); this.charge(t) }
    s.addJob(t.job)
    this.scheduler.placed(t)
    if (!sendRun) return
    this.opts.taskTimings?.placed(t.readyAt)
    const job = this.jobs.get(t.job)!
    // A task that sets no time limit gets its job's (the peer enforces it); a job's main waits on its whole job, so it gets none.
    const limit = t.main || t.spec.opts.timeoutMs !== undefined ? 0 : job.taskTimeoutMs ?? this.opts.defaultTaskTimeoutMs ?? DEFAULT_TASK_TIMEOUT_MS
    const spec = limit > 0 ? { ...t.spec, opts: { ...t.spec.opts, timeoutMs: limit } } : t.spec
    let fns: FnDef[] | undefined
    if (t.spec.fn) {
      let known = s.knownFns.get(t.job)
      if (!known) s.knownFns.set(t.job, known = new Set())
      if (!known.has(t.spec.fn)) { known.add(t.spec.fn); fns = [this.jobs.fnOf(job, t.spec.fn)!] }
    }
    const deps: ObjectInfo[] = t.spec.deps.map((d) => this.objects.info(d))
    const restore = t.spec.createsActor ? this.actors.checkpointOf(t.id) : undefined
    s.send({ t: 'run', spec, job: t.job, attempt: t.attempts, fns, deps, ...(restore ? { restore } : {}) })
  }

  unassign(t: TaskRec): void {
    const s = this.peers.get(t.peer)
    if (s) this.releaseFrom(s, t)
    this.refund(t)
    t.peer = undefined
    t.blocked = false
  }

  /** `s` no longer runs the task: its slot and its job's read grant go. */
  releaseFrom(s: PeerSession, t: TaskRec): void {
    if (!this.running.get(s.id)?.delete(t.id)) return
    if (!t.blocked) s.release(t.res)
    s.dropJob(t.job)
  }

  /** A task holds a slot: its cpu counts against its user's share (once, however often this is called). */
  private charge(t: TaskRec): void {
    const cpu = t.res.cpu ?? 0
    if (t.charged || cpu <= 0) return
    t.charged = cpu
    this.scheduler.use(this.jobs.ownerOf(t.job), cpu)
  }

  private refund(t: TaskRec): void {
    if (!t.charged) return
    this.scheduler.use(this.jobs.ownerOf(t.job), -t.charged)
    t.charged = undefined
  }

  cancel(t: TaskRec, reason: string): void {
    if (TERMINAL.has(t.state)) return
    this.quorum.cancelReplicas(t, reason)
    if (t.state === 'running' && t.peer) this.peers.get(t.peer)?.send({ t: 'cancelTask', task: t.id, reason })
    if (t.spec.createsActor) this.actors.stopCreation(t.id, reason)
    this.results.fail(t, serializeError(new CancelledError(`task ${t.spec.name} (${t.id}) was cancelled: ${reason}`, { taskId: t.id, taskName: t.spec.name })), 'cancelled')
  }

  /** Cancels a task; for an actor's id (its creating task's), ends the actor too, as `grid.kill` asks. */
  cancelFrom(s: PeerSession, tid: string, job?: string): void {
    const t = this.tasks.get(tid)
    if (!t) return
    // A worker cancels for a task of `job`: one job on a shared peer must not cancel another's work.
    if (!s.canRead(t.job) || (job !== undefined && job !== t.job)) throw new AuthError(`peer ${s.id} may not cancel task ${tid}${job ? ` for job ${job}` : ''}`)
    this.cancel(t, 'cancelled by its job')
    this.actors.kill(tid, 'killed by its job')
  }

  /** A job is ending (`jobEnding`): everything it still runs or queues is cancelled. */
  jobEnding(job: JobRec, reason: string): void {
    for (const tid of this.ofJob(job.id)) this.cancel(this.tasks.get(tid)!, reason)
  }

  blocked(s: PeerSession, tid: string, blocked: boolean): void {
    const t = this.tasks.get(tid)
    // An actor being created keeps its slot while it waits (for its arguments, say): the slot is its for life.
    if (!t || t.peer !== s.id || t.blocked === blocked || t.spec.createsActor) return
    t.blocked = blocked
    // A task waiting in `get` holds no slot: another task (of any user) may be placed there meanwhile.
    if (blocked) { s.release(t.res); this.refund(t) } else { s.take(t.res); this.charge(t) }
  }

  taskLog(s: PeerSession, tid: string, lines: string[]): void {
    const t = this.tasks.get(tid)
    if (!t || (t.peer !== s.id && !this.isOn(s.id, tid))) return
    this.jobs.taskLines(t.job, { id: t.id, name: t.spec.name }, s.id, lines)
  }

  /** A peer left: what it ran goes back to the queue (or fails, past its retries), in submission order. */
  peerRemoved(s: PeerSession, why: string): void {
    const mine = this.running.get(s.id)
    if (s.role === 'worker') this.opts.log(`peer ${s.id} lost (${why}); re-queueing ${mine?.size ?? 0} task(s)`)
    if (!mine) return
    this.running.delete(s.id)
    const lost = [...mine].map((id) => this.tasks.get(id)).filter((t): t is TaskRec => !!t).sort((a, b) => a.seq - b.seq)
    for (const t of lost) {
      this.refund(t)
      t.peer = undefined
      t.blocked = false
      if (t.spec.actor) this.actors.callLost(t, s.id)
      else this.results.retryOrFail(t, s.id)
    }
  }

  /**
   * A page of GET /api/jobs/:id/tasks, in submission order (or newest first). It reads only the
   * page's tasks (and, with a state filter, those it skips over); its total is kept, not counted.
   */
  page(jobId: string, q: PageQuery<TaskState>): Page<TaskInfo> {
    const tally = this.byJob.get(jobId)
    if (!tally) return { items: [], total: 0, truncated: false }
    const { ids, held } = tally
    const list = { length: ids.length, seqAt: (i: number) => this.tasks.get(ids[i])!.seq }
    const states = q.states
    const total = states ? [...states].reduce((n, s) => n + held[s], 0) : ids.length
    return pageOf(list, q, total, (i) => this.info(this.tasks.get(ids[i])!), states && ((i) => states.has(this.tasks.get(ids[i])!.state)))
  }

  /** What the HTTP API shows of a task. */
  private info(t: TaskRec): TaskInfo {
    const info: TaskInfo = { id: t.id, name: t.spec.name, state: t.state, attempts: t.attempts }
    if (t.peer ?? t.ranOn) info.peer = t.peer ?? t.ranOn
    if (t.spec.parent) info.parent = t.spec.parent
    if (t.spec.actor) info.actor = t.spec.actor
    if (t.error) info.error = t.error
    if (t.startedAt) info.startedAt = t.startedAt
    if (t.endedAt) info.endedAt = t.endedAt
    return info
  }

  /** The task table as the store kept it; returns the unfinished tasks, for recovery.ts to queue again. */
  initialize(snap: StoreSnapshot, hasJob: (id: string) => boolean, reapplyFinished: boolean): TaskRec[] {
    const unfinished: TaskRec[] = []
    // Spent tasks whose rows went while their job ran are still counted (spent-records.ts). A job
    // retention kept only the summary of has no tasks here: its counts are in the summary.
    for (const job of snap.jobs) {
      if (!job.dropped || job.summary || !hasJob(job.id)) continue
      const counts = this.tallyOf(job.id).counts
      for (const [state, n] of Object.entries(job.dropped) as [TaskState, number][]) { counts[state] += n; this.totals[state] += n }
    }
    for (const row of snap.tasks) {
      if (!hasJob(row.job)) continue
      const t: TaskRec = {
        id: row.id, job: row.job, spec: row.spec, state: row.state, attempts: row.attempts, pendingDeps: 0, blocked: false,
        main: !!row.main, res: resourcesOf(row.spec), error: row.error, seq: this.nextSeq++,
      }
      this.tasks.set(t.id, t)
      const tally = this.tallyOf(t.job)
      tally.ids.push(t.id)
      tally.counts[t.state]++
      tally.held[t.state]++
      this.totals[t.state]++
      this.objects.addReturns(t.id, t.job, row.spec.opts.numReturns ?? 1, true)
      if (TERMINAL.has(t.state) && !(reapplyFinished && t.state === 'finished')) continue
      if (t.spec.actor) this.actors.queueCall(t.spec.actor, t.id)
      this.deps.pin(t, 1)
      unfinished.push(t)
    }
    return unfinished
  }

  /** Tasks loaded unfinished go back to the queue: a peer that still runs one may claim it meanwhile (recovery.ts). */
  requeueRestored(unfinished: TaskRec[]): void {
    for (const t of unfinished) { t.restored = true; this.setState(t, 'waiting'); this.enqueue(t) }
  }
}
