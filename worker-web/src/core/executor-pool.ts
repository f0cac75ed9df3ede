/**
 * The policy of an executor pool, shared by Node (child processes) and browsers
 * (Web Workers): where each task runs, timeouts, cancellation, and replacing an
 * executor that died or had to be ended. Platforms supply only `spawn`.
 *
 * A task past its `timeoutMs`, or a cancelled one, ends its executor (running JS
 * cannot be interrupted); the executor is replaced, and the other tasks it had go
 * back to the coordinator as lost, to run again. Each actor gets an executor of its
 * own (as in Ray), so nothing done to ordinary tasks can take an actor down with it.
 *
 * An executor serves one job: job code shares its executor's memory, so another job's
 * task gets a fresh executor (an idle one of another job is replaced first). Where the
 * platform confines each executor to its job's files (Node, `spawnPerJob`), executors
 * start only for a job; elsewhere (browsers) `size` start at once and take the first job
 * that comes.
 *
 * Executors are shared fairly between jobs: tasks wait first come, first served within a
 * job, but a job whose next task cannot be placed does not hold back another job's.
 *
 * Extra executors, past `size`, serve one of two ends (PoolPolicy.maxComputing):
 * - Node: a job with no executor of its own gets an extra one even when every regular one is
 *   busy with other jobs (endless or blocked tasks), so one user's tasks cannot starve
 *   another's. The coordinator counts on it: it over-commits a peer by one task per cpu slot
 *   for a user under their fair share.
 * - Browsers: a tab runs one task per executor, and its volunteer chose how many run at once,
 *   so at most `size` tasks compute at a time, whatever the coordinator sends (it pipelines a
 *   few more, which wait here). A task waiting in get gives its slot to other work (as the
 *   coordinator also counts it), and only then does an extra start, to run the work the
 *   blocked task would otherwise deadlock on. When what it waits for is ready, it resumes only
 *   once a slot is free again: the pool holds back the reply that would wake it.
 */
import { TimeoutError, serializeError } from '@colony-grid/shared'
import type { ExecTask, ExecutorHost, ExecutorPool, ToExecutor, ToHost } from './executor-protocol.js'
import { nextTurn } from './turn.js'
import { TaskTimeLimits } from './time-limits.js'

/** One running executor, as the platform starts it. */
export interface ExecutorHandle {
  send(msgs: ToExecutor[]): void
  kill(): void
}
export interface SpawnCallbacks {
  onMessages(msgs: ToHost[]): void
  /** It ended by itself (a crash, out of memory). */
  onExit(reason: string): void
}

export interface PoolPolicy {
  /** Executors kept running for ordinary tasks. */
  size: number
  /** Tasks one executor runs at once: unbounded in Node (async tasks interleave), 1 in browsers. */
  tasksPerExecutor: number
  /**
   * Extra executors started when none can take a task: browsers, where tasks waiting in get hold
   * theirs (with maxComputing); Node, where a job's own executor always has room, so only for a
   * job with none of its own.
   */
  maxExtra: number
  /**
   * At most this many tasks compute at once, over the regular executors and the extras (browsers:
   * `size`, what the tab offers); a task waiting in get does not count. Extras then start only in
   * place of tasks waiting in get, never for more computing. Unset (Node): no such cap, and an
   * extra may start for a job with no executor of its own. Actors are not counted (an actor
   * holds no cpu unless given it, and the coordinator places those only where it is free).
   */
  maxComputing?: number
  /**
   * Each executor is started for one job, when that job's first task comes, and `spawn` gets the
   * job's id (Node: the executor may read that job's folder only). Otherwise `size` start at once.
   */
  spawnPerJob?: boolean
}

/** What a task is doing in get/wait, as its executor tells (only the pool's own count of slots depends on it). */
interface GetState {
  /** It said it waits in get or wait (the 'blocked' grid op). */
  blocked: boolean
  /** Its object requests not yet answered (replies held back included). */
  reqs: number
}

interface Executor {
  /** Its slot in the fixed pool; -1 for an actor's own, -2 for an extra. */
  index: number
  handle: ExecutorHandle
  tasks: Map<string, ExecTask>
  actors: Set<string>
  knownFns: Set<string>
  outbox: ToExecutor[]
  flushQueued: boolean
  dead: boolean
  started: Promise<void>
  /** The job whose code it runs (for spawnPerJob pools, from its start); undefined while fresh. */
  job?: string
}

export abstract class ExecutorPoolBase implements ExecutorPool {
  readonly size: number
  protected host?: ExecutorHost
  /** The regular executors, by slot; a slot is empty until a job needs it (spawnPerJob) or while replaced. */
  private executors: (Executor | undefined)[] = []
  private extras = new Set<Executor>()
  private actorHosts = new Map<string, Executor>()
  private waiting: ExecTask[] = []
  /** maxComputing pools: each ordinary task's part in get, by task (see waitsInGet). */
  private gets = new Map<string, GetState>()
  /** maxComputing pools: replies that would wake a task waiting in get, held until a slot is free, oldest first. */
  private held: { e: Executor; task: string; m: ToExecutor }[] = []
  /** Time limits, by task (time-limits.ts). */
  private readonly limits = new TaskTimeLimits((taskId, ms) => this.timeout(taskId, ms))
  private closed = false

  constructor(private readonly policy: PoolPolicy, protected readonly say: (line: string) => void) {
    this.size = Math.max(1, policy.size)
  }

  /** Starts one executor; call `cb` with what it sends and when it ends. `job`: the job it serves (spawnPerJob pools). */
  protected abstract spawn(cb: SpawnCallbacks, job?: string): ExecutorHandle

  async start(host: ExecutorHost): Promise<void> {
    this.host = host
    this.executors = Array.from({ length: this.size }, (_, i) => (this.policy.spawnPerJob ? undefined : this.make(i)))
    await Promise.all(this.executors.map((e) => e?.started))
  }

  private make(index: number, job?: string): Executor {
    let markStarted!: () => void
    const e: Executor = {
      index, handle: undefined as unknown as ExecutorHandle, tasks: new Map(), actors: new Set(), knownFns: new Set(),
      outbox: [], flushQueued: false, dead: false, started: new Promise<void>((r) => { markStarted = r }),
      job: this.policy.spawnPerJob ? job : undefined,
    }
    e.handle = this.spawn({
      onMessages: (msgs) => {
        if (!Array.isArray(msgs)) return
        let waitsChanged = false
        for (const m of msgs) {
          if (m?.k === 'started') { markStarted(); continue }
          // Job code shares the executor's channel: accept word only of tasks this executor was given.
          if (!m || typeof m !== 'object' || !('task' in m) || !e.tasks.has(m.task)) continue
          try { waitsChanged = this.fromExecutor(e, m) || waitsChanged } catch (err) { this.say(`bad message from an executor (${m.k}): ${(err as Error).message}`) }
        }
        // A task now waiting in get has given its slot up: waiting work may take it.
        if (waitsChanged && !e.dead) this.drain()
      },
      onExit: (reason) => { if (!e.dead && !this.closed) this.replace(e, reason) },
    }, e.job)
    return e
  }

  /** Handles one message of a task of `e`; true if that task may now wait in get (maxComputing pools). */
  private fromExecutor(e: Executor, m: ToHost): boolean {
    const host = this.host!
    const get = m.k === 'started' ? undefined : this.gets.get(m.task)
    switch (m.k) {
      case 'done': {
        const task = e.tasks.get(m.task)
        e.tasks.delete(m.task)
        this.forget(m.task)
        if (task?.spec.createsActor && m.outcome.error) this.retire(e) // the actor never came to be
        host.done(m.task, m.outcome)
        this.freed(e)
        break
      }
      case 'begin': {
        const task = e.tasks.get(m.task)
        const ms = task?.spec.opts.timeoutMs
        if (ms !== undefined && !this.limits.has(m.task)) this.limits.set(m.task, ms)
        break
      }
      case 'log': host.log(m.task, m.lines); break
      case 'grid': {
        const op = m.op
        if (!get || op?.op !== 'blocked') { host.grid(m.task, op); break }
        get.blocked = !!op.blocked
        host.grid(m.task, op)
        return get.blocked
      }
      case 'req':
        if (get) get.reqs++
        host.request(m.task, m.op).then(
          (value) => this.reply(e, m.task, { k: 'reply', req: m.req, value }),
          (err) => this.reply(e, m.task, { k: 'reply', req: m.req, error: serializeError(err) }),
        )
        return !!get?.blocked
      case 'started': break
    }
    return false
  }

  /**
   * Answers a task's object request. In maxComputing pools, the answer that would wake a task
   * waiting in get (its last one outstanding) waits while the pool computes all it may: the task
   * resumes when a slot is free (see drain), not beside the work that took its slot.
   */
  private reply(e: Executor, task: string, m: ToExecutor): void {
    const get = this.gets.get(task)
    if (get && !e.dead && e.tasks.has(task)) {
      if (get.blocked && get.reqs === 1 && this.computing() >= this.policy.maxComputing!) { this.held.push({ e, task, m }); return }
      get.reqs--
    }
    this.send(e, m)
  }

  /** A task waiting in get: it said so, and it waits for an answer (once answered, it computes again). */
  private waitsInGet(task: string): boolean {
    const get = this.gets.get(task)
    return !!get && get.blocked && get.reqs > 0
  }

  /** Ordinary tasks in executors, less those waiting in get: what counts against maxComputing. */
  private computing(): number {
    let n = 0
    for (const e of [...this.executors, ...this.extras]) {
      if (!e || e.dead) continue
      for (const id of e.tasks.keys()) if (!this.waitsInGet(id)) n++
    }
    return n
  }

  private send(e: Executor, m: ToExecutor): void {
    if (e.dead) return
    e.outbox.push(m)
    if (e.flushQueued) return
    e.flushQueued = true
    // Messages wait until the executor is listening; after that, one message per turn.
    void e.started.then(() => nextTurn(() => {
      e.flushQueued = false
      const msgs = e.outbox
      e.outbox = []
      if (!e.dead) e.handle.send(msgs)
    }))
  }

  run(task: ExecTask): void {
    // A run that arrives while the peer leaves must spawn nothing: close() has already ended every
    // executor it knew, and one made now would outlive it (and hold the process open).
    if (this.closed) { this.host!.done(task.spec.id, { lost: true }); return }
    if (task.spec.actor) {
      const home = this.actorHosts.get(task.spec.actor)
      if (!home) {
        // The coordinator thinks an actor lives here that does not (its executor died): say so.
        this.host!.actorLost(task.spec.actor, 'its executor is gone')
        this.host!.done(task.spec.id, { lost: true })
        return
      }
      this.dispatch(home, task)
      return
    }
    if (task.spec.createsActor) {
      const e = this.make(-1, task.job)
      e.actors.add(task.spec.id)
      this.actorHosts.set(task.spec.id, e)
      this.dispatch(e, task)
      return
    }
    this.waiting.push(task)
    this.drain()
  }

  /**
   * Gives waiting work to executors that can take it now: in order within each job, but a job
   * whose next task must wait does not hold back the tasks of other jobs behind it.
   */
  private drain(): void {
    if (this.closed) return
    if (this.policy.maxComputing !== undefined) this.wake()
    const stuck = new Set<string>()
    for (let i = 0; i < this.waiting.length;) {
      const task = this.waiting[i]
      const e = stuck.has(task.job) ? undefined : this.pick(task.job)
      if (!e) { stuck.add(task.job); i++; continue }
      this.waiting.splice(i, 1)
      this.dispatch(e, task)
    }
  }

  /**
   * maxComputing pools: tasks whose get is answered resume (their held replies go), oldest first,
   * while a slot is free. They go before new work: they are older, and their finishing frees more.
   */
  private wake(): void {
    this.held = this.held.filter(({ e, task }) => !e.dead && e.tasks.has(task))
    while (this.held.length && this.computing() < this.policy.maxComputing!) {
      const { e, task, m } = this.held.shift()!
      this.gets.get(task)!.reqs--
      this.send(e, m)
    }
  }

  /**
   * Where a task of `job` runs: an idle executor of this job (or a fresh one); else a new one in an
   * empty slot; else the least busy executor of this job; else a new one in place of an idle
   * executor of another job; else an extra one, when allowed: in maxComputing pools, in place of a
   * task waiting in get, and only while fewer than maxComputing tasks compute; otherwise so that a
   * job with no executor of its own is not kept waiting behind other jobs' busy ones. Undefined if
   * none can take it now. A new executor takes work at once (it queues until started).
   */
  private pick(job: string): Executor | undefined {
    const cap = this.policy.maxComputing
    if (cap !== undefined && this.computing() >= cap) return undefined
    const regular = this.executors.filter((x): x is Executor => !!x && !x.dead)
    const free = [...regular, ...this.extras].filter((x) => (x.job === undefined || x.job === job) && x.tasks.size < this.policy.tasksPerExecutor)
    const leastBusy = free.length ? free.reduce((a, b) => (b.tasks.size < a.tasks.size ? b : a)) : undefined
    if (leastBusy?.tasks.size === 0) return leastBusy
    // A job's tasks spread over the empty slots before they share an executor (a busy loop holds all of one).
    const empty = this.executors.findIndex((x) => !x || x.dead)
    if (empty >= 0) return (this.executors[empty] = this.make(empty, job))
    if (leastBusy) return leastBusy
    const idle = regular.find((x) => x.tasks.size === 0)
    if (idle) return this.replace(idle, 'the next task is of another job', true, job)
    // Every executor is busy with other work: one more. Capped (browsers): some of that work waits in get,
    // and this one takes its slot. Otherwise (Node): so a job with none of its own is not kept waiting behind them.
    if (this.extras.size < this.policy.maxExtra) {
      const e = this.make(-2, job)
      this.extras.add(e)
      return e
    }
    return undefined
  }

  private dispatch(e: Executor, task: ExecTask): void {
    e.job = task.job
    e.tasks.set(task.spec.id, task)
    if (this.policy.maxComputing !== undefined && e.index !== -1) this.gets.set(task.spec.id, { blocked: false, reqs: 0 })
    if (task.fn) {
      if (e.knownFns.has(`${task.job}/${task.fn.id}`)) task = { ...task, fn: undefined }
      else e.knownFns.add(`${task.job}/${task.fn.id}`)
    }
    // An actor's calls queue behind each other in its executor: theirs start when they begin ('begin').
    const ms = task.spec.opts.timeoutMs
    if (ms !== undefined && !task.spec.actor) this.limits.set(task.spec.id, ms)
    this.send(e, { k: 'run', task })
  }

  /** An executor has room again: waiting work goes on (see pick); an idle extra that no waiting task of its job can use goes. */
  private freed(e: Executor): void {
    if (e.dead || e.index === -1) return
    if (e.index === -2 && e.tasks.size === 0 && !this.waiting.some((t) => t.job === e.job)) {
      this.extras.delete(e); e.dead = true; e.handle.kill()
    }
    this.drain()
  }

  private timeout(taskId: string, ms: number): void {
    const e = this.all().find((x) => x.tasks.has(taskId))
    if (!e) return
    const task = e.tasks.get(taskId)!
    e.tasks.delete(taskId)
    this.gets.delete(taskId)
    this.host!.done(taskId, { error: serializeError(new TimeoutError(
      `task ${task.spec.name} (${taskId}) ran past its time limit of ${ms} ms and was stopped. ` +
      'Give it more with the task\'s { timeoutMs } option, or the job\'s taskTimeoutMs (connect option, or the job\'s "taskTimeoutMs")', { taskId, taskName: task.spec.name })) })
    this.replace(e, `task ${taskId} timed out`)
  }

  cancel(taskId: string): void {
    this.forget(taskId)
    const queued = this.waiting.findIndex((t) => t.spec.id === taskId)
    if (queued >= 0) { this.waiting.splice(queued, 1); return }
    const e = this.all().find((x) => x.tasks.has(taskId))
    if (!e) return
    const task = e.tasks.get(taskId)!
    e.tasks.delete(taskId)
    // An actor keeps its state: a call not yet started is skipped; one running finishes and is ignored.
    // Cancelling the actor's creation ends its executor.
    if (e.index === -1 && !task.spec.createsActor) this.send(e, { k: 'cancel', task: taskId })
    else if (e.index === -1) this.retire(e)
    else this.replace(e, `task ${taskId} was cancelled`)
  }

  dropActor(actor: string): void {
    const e = this.actorHosts.get(actor)
    if (e) this.retire(e)
  }

  actorIds(): string[] { return [...this.actorHosts.keys()] }

  private all(): Executor[] {
    return [...this.executors.filter((x): x is Executor => !!x), ...this.extras, ...this.actorHosts.values()]
  }

  /** A task left its executor: its time limit and its part in get go. */
  private forget(taskId: string): void {
    this.limits.clear(taskId)
    this.gets.delete(taskId)
  }

  /** Ends an actor's executor on purpose: nothing is reported lost. */
  private retire(e: Executor): void {
    for (const a of e.actors) this.actorHosts.delete(a)
    e.actors.clear()
    for (const id of e.tasks.keys()) { this.forget(id); this.host!.done(id, { lost: true }) }
    e.tasks.clear()
    e.dead = true
    e.handle.kill()
  }

  /**
   * Kills an executor; its other work is reported lost. A regular one is replaced: by one for `forJob`
   * (returned), else by a fresh one that takes waiting work once started, or, in spawnPerJob pools,
   * by nothing until a task needs the slot. `quiet`: routine, not worth a log line.
   */
  private replace(e: Executor, reason: string, quiet = false, forJob?: string): Executor | undefined {
    if (e.dead) return undefined
    e.dead = true
    e.handle.kill()
    for (const id of e.tasks.keys()) { this.forget(id); this.host!.done(id, { lost: true }) }
    for (const a of e.actors) { this.actorHosts.delete(a); this.host!.actorLost(a, reason) }
    if (this.extras.delete(e) && !this.closed) this.drain() // its slot, if it had one, is free: waiting work (and held replies) go on
    if (this.closed || e.index < 0) return undefined
    if (!quiet) this.say(`replacing executor ${e.index}: ${reason}`)
    if (forJob !== undefined) return (this.executors[e.index] = this.make(e.index, forJob))
    if (this.policy.spawnPerJob) {
      this.executors[e.index] = undefined
      this.drain()
      return undefined
    }
    const fresh = this.make(e.index)
    this.executors[e.index] = fresh
    void fresh.started.then(() => this.freed(fresh))
    return fresh
  }

  async close(): Promise<void> {
    this.closed = true
    this.limits.close()
    this.held = []
    this.gets.clear()
    for (const e of this.all()) { e.dead = true; e.handle.kill() }
    await this.closed_()
  }

  /** Platform clean-up after every executor was told to end. */
  protected async closed_(): Promise<void> {}
}
