/**
 * The composition root of the coordinator's control plane (Ray's GcsServer): it makes the
 * managers, wires them (each gets the others it calls; the fan-outs go through events, whose
 * listeners are installed here in a fixed order), routes each validated peer message through
 * a handler table to the manager that owns it, and once per event-loop turn schedules,
 * acknowledges durable messages, flushes every outbox and commits the store.
 *
 * server.ts and peer-socket.ts see only this class.
 */
import {
  DURABLE_TYPES, FAULTS, ProtocolError,
  type ActorSummary, type HelloMsg, type JobInfo, type JobState, type LogLine, type ObjectSummary, type Page, type PeerInfo, type PeerToCoordinator, type TaskInfo, type TaskState,
} from '@colony-grid/shared'
import type { PageQuery } from '../paging.js'
import type { ActorState } from '../store/types.js'
import type { PeerSession, PeerSocket } from '../peer-session.js'
import type { TokenGrant } from '../tokens.js'
import { ActorManager } from './actors.js'
import { DependencyManager } from './dependencies.js'
import { EventBus, type ControlEvents } from './events.js'
import { JobManager, type JobRec } from './jobs.js'
import { LocalityPolicy } from './locality-policy.js'
import { ObjectDirectory, type ObjState } from './objects.js'
import { newCounters, type ControlOptions, type JobEvent, type JobOptions } from './options.js'
import { PeerManager } from './peers.js'
import { PullManager } from './pulls.js'
import { QuorumManager } from './quorum-manager.js'
import { Recovery } from './recovery.js'
import { DEFAULT_RETENTION, Retention, type Expired, type RetentionOptions } from './retention.js'
import { Scheduler, type SchedulingPolicy } from './scheduling.js'
import { SpentRecords } from './spent-records.js'
import { TaskResults } from './task-results.js'
import { TaskManager } from './tasks.js'
import { JobViews, type GridCounts } from './views.js'

type Handlers = { [T in PeerToCoordinator['t']]: (s: PeerSession, m: Extract<PeerToCoordinator, { t: T }>) => void }

export class ControlPlane {
  readonly counters = newCounters()
  private readonly bus = new EventBus<ControlEvents>()
  private readonly peers: PeerManager
  private readonly jobs: JobManager
  private readonly tasks: TaskManager
  private readonly results: TaskResults
  private readonly deps: DependencyManager
  private readonly objects: ObjectDirectory
  private readonly pulls: PullManager
  private readonly actors: ActorManager
  private readonly quorum: QuorumManager
  private readonly scheduler: Scheduler
  private readonly recovery: Recovery
  private readonly views: JobViews
  private readonly retention: Retention
  private readonly spent: SpentRecords
  /** Message type → the manager method that handles it. */
  private readonly handlers: Handlers
  private tickQueued = false
  /** When the first event since the last turn asked for one (performance.now()): where scheduling latency starts. */
  private turnRequestedAt = 0
  private closed = false
  private ackTimer?: NodeJS.Timeout
  private committing = false
  private commitAgain = false
  /** When commits began to fail (0: they do not). */
  private storeDownSince = 0

  /** `policy`: where ready tasks go (scheduling.ts); by default locality within fair share. */
  constructor(private readonly opts: ControlOptions, policy: SchedulingPolicy = new LocalityPolicy(opts)) {
    const tick = () => this.requestTick()
    const peers = this.peers = new PeerManager(opts, this.bus, this.counters, tick)
    const jobs = this.jobs = new JobManager(opts, this.bus, peers)
    const objects = this.objects = new ObjectDirectory(opts, this.bus, this.counters, tick)
    const deps = this.deps = new DependencyManager()
    const tasks = this.tasks = new TaskManager(opts, tick)
    const results = this.results = new TaskResults(opts, this.counters)
    const actors = this.actors = new ActorManager(opts)
    const quorum = this.quorum = new QuorumManager(opts, tick)
    const recovery = this.recovery = new Recovery(opts, tick)
    const scheduler = this.scheduler = new Scheduler(policy, peers, jobs, tick)
    this.pulls = new PullManager(peers, objects, recovery, this.counters)
    this.views = new JobViews({ jobs, tasks, objects, actors, scheduler })
    this.retention = new Retention({ ...DEFAULT_RETENTION, ...opts.retention }, opts.store, { jobs, tasks, objects, actors, quorum }, opts.log)
    const spent = this.spent = new SpentRecords(this.retention.settings.keepSpentRecords, opts.store, { jobs, tasks, objects, quorum })
    objects.wire({ peers, deps, spent })
    deps.wire({ objects, tasks, results })
    tasks.wire({ peers, jobs, objects, deps, actors, quorum, scheduler, recovery, results, spent })
    results.wire({ tasks, jobs, objects, actors, recovery, peers, spent })
    actors.wire({ peers, jobs, tasks, results, objects, scheduler })
    quorum.wire({ tasks, results, jobs, objects, peers })
    scheduler.wire({ tasks, objects, quorum, recovery })
    recovery.wire({ peers, jobs, objects, actors, tasks, quorum, results })
    this.installListeners()
    this.handlers = this.handlerTable()
    recovery.initialize(opts.snapshot)
    this.retention.initialize()
  }

  /** Who hears what, in order (as gcs_server.cc's InstallEventListeners). */
  private installListeners(): void {
    const { bus, peers, jobs, tasks, results, deps, objects, pulls, actors, recovery, views, retention } = this
    // A peer left: its tasks go back to the queue, then its actors restart, then the objects it
    // held are lost (and rebuilt), then relays it served go to another holder.
    bus.on('peerRemoved', (s, why) => tasks.peerRemoved(s, why))
    bus.on('peerRemoved', (s) => recovery.peerRemoved(s))
    bus.on('peerRemoved', (s) => actors.peerRemoved(s))
    bus.on('peerRemoved', (s) => objects.peerRemoved(s))
    bus.on('peerRemoved', (s) => pulls.peerRemoved(s))
    bus.on('peerRemoved', (s) => jobs.peerRemoved(s))
    bus.on('peerRemoved', () => this.requestTick())
    // An object was made: tasks waiting on it, subscribers, then readers waiting to pull it.
    bus.on('objectReady', (o, state) => deps.objectReady(o, state))
    bus.on('objectReady', (o) => objects.tellSubscribers(o))
    bus.on('objectReady', (o) => pulls.objectReady(o))
    bus.on('objectLost', (o) => results.objectLost(o))
    bus.on('objectFreed', (o, error) => pulls.objectFreed(o, error))
    bus.on('objectFreed', (o) => this.spent.objectFreed(o))
    // A job ends: its tasks are cancelled, then its actors end; once it has ended, its objects go and its listeners hear.
    bus.on('jobEnding', (job, reason) => tasks.jobEnding(job, reason))
    bus.on('jobEnding', (job, reason) => actors.jobEnding(job, reason))
    bus.on('jobFinished', (job) => this.spent.jobFinished(job.id))
    bus.on('jobFinished', (job) => objects.jobFinished(job))
    bus.on('jobFinished', (job) => peers.jobFinished(job.id))
    bus.on('jobFinished', (job) => jobs.tell(job, { type: 'state', job: views.jobInfo(job.id)! }))
    // Last: from now on its work is kept for a while, then only its summary (retention.ts).
    bus.on('jobFinished', (job) => retention.jobFinished(job))
  }

  /** Each message type and the manager that handles it; `DURABLE_TYPES` (protocol.ts) are counted for acknowledgement. */
  private handlerTable(): Handlers {
    const { peers, jobs, tasks, results, objects, pulls, actors } = this
    return {
      fn: (s, m) => jobs.defineFn(s, m.def, m.job),
      submit: (s, m) => tasks.submit(s, m.spec),
      put: (s, m) => objects.put(s, tasks.jobFor(s, m.parent).id, m.id, m.size, m.inline, m.hash, m.replicate),
      done: (s, m) => {
        if (m.ms !== undefined) s.observeRuntime(m.ms)
        results.done(s, m.task, m.results, m.error, m.lost, m.checkpoint)
      },
      free: (s, m) => objects.free(s, m.ids, m.job),
      actorLost: (s, m) => actors.lostOn(s, m.actor, m.reason),
      sub: (s, m) => { for (const id of m.ids) objects.subscribe(s, id, m.job) },
      cancel: (s, m) => { for (const id of m.ids) tasks.cancelFrom(s, id, m.job) },
      blocked: (s, m) => tasks.blocked(s, m.task, m.blocked),
      log: (s, m) => tasks.taskLog(s, m.task, m.lines),
      pull: (s, m) => pulls.pull(s, m.req, m.id, m.relay, m.job),
      signal: (s, m) => pulls.signal(s, m),
      chunk: (s, m) => pulls.chunk(s, m.req, m.seq, m.data, m.last, m.size),
      serveFail: (s, m) => pulls.serveFail(s, m.req),
      held: (s, m) => objects.held(s, m.ids),
      evicted: (s, m) => objects.evicted(s, m.ids),
      pause: (s, m) => {
        if (FAULTS.handlerThrows) throw new TypeError('injected fault handler-throws')
        peers.setPaused(s, m.paused)
      },
      ping: (s) => s.send({ t: 'pong' }),
      bye: (s) => { if (s.jobId) jobs.finishDriverJob(s.jobId) },
      hello: () => { throw new ProtocolError('hello sent twice on one connection') },
    }
  }

  // ------------------------------------------------------------------ peers

  get sessions(): ReadonlyMap<string, PeerSession> { return this.peers.all }
  get identities(): PeerManager['identities'] { return this.peers.identities }
  get reputations(): PeerManager['reputations'] { return this.peers.reputations }

  /**
   * Admits a peer after its hello (peers.ts), resumes or starts a driver's job, takes its claims
   * on what it still holds, runs and hosts (recovery.ts), and welcomes it. Throws AuthError.
   */
  hello(socket: PeerSocket, m: HelloMsg, grant: TokenGrant, newId: () => string, address?: string): PeerSession {
    const { s, secret } = this.peers.admit(socket, m, grant, newId, address)
    this.recovery.peerBack(s.id)
    if (m.role === 'driver') this.jobs.driverJob(s, m, grant)
    this.recovery.claim(s, m)
    s.send({
      t: 'welcome', peerId: s.id, jobId: s.jobId, limits: this.opts.limits, pingMs: Math.max(100, Math.floor(this.opts.heartbeatTimeoutMs / 4)),
      grantKey: s.grantKey, iceServers: this.opts.iceServersFor(s.id), peerSecret: secret, trusted: s.trusted,
      ...this.coordinatorsNow(),
    })
    this.recovery.peerWelcomed()
    this.requestTick()
    return s
  }

  /** The grid's coordinators (hot standbys), for a welcome; none on a lone coordinator. */
  private coordinatorsNow(): { coordinators?: string[] } {
    const urls = this.opts.coordinators?.()
    return urls && urls.length > 1 ? { coordinators: urls } : {}
  }

  /** Handles one validated message from an admitted peer. Throws ProtocolError/AuthError for misuse. */
  handle(s: PeerSession, m: PeerToCoordinator): void {
    if (s.closed) return // frames still in flight from a peer already declared lost
    s.lastSeen = Date.now()
    const run = this.handlers[m.t] as (s: PeerSession, m: PeerToCoordinator) => void
    if (DURABLE_TYPES.has(m.t)) { try { run(s, m) } finally { s.durableSeen++ } } else run(s, m)
    this.requestTick()
  }

  peerLost(s: PeerSession, why: string): void { this.peers.remove(s, why) }

  /** What GET /api/peers shows of each connected peer. */
  peerInfos(): PeerInfo[] {
    return [...this.peers.all.values()].map((s) => s.info({ ...this.objects.heldOn(s.id), running: this.tasks.runningCount(s.id), ...this.peers.standing(s.id) }))
  }

  /** A revoked token: its peers leave now, and its drivers' jobs end. */
  dropToken(tokenId: string): number {
    const gone = this.peers.withToken(tokenId)
    for (const s of gone) {
      s.socket.close(4401, 'token revoked')
      this.peers.remove(s, 'its token was revoked')
      if (s.role === 'driver' && s.jobId) this.jobs.finishDriverJob(s.jobId)
    }
    return gone.length
  }

  /** An operator lets a quarantined peer work again. */
  releasePeer(peer: string): boolean {
    const was = this.peers.release(peer)
    if (was) this.requestTick()
    return was
  }

  // ------------------------------------------------------------------ jobs

  jobIds(): string[] { return [...this.jobs.ids()] }
  jobVisible(jobId: string, grant: TokenGrant): boolean { return this.jobs.visible(jobId, grant) }
  jobInfo(jobId: string): JobInfo | undefined { return this.views.jobInfo(jobId) }
  // Pages of the HTTP API's lists (paging.ts): each costs what it returns, not the list's length.
  jobsPage(q: PageQuery<JobState>, grant: TokenGrant): Page<JobInfo> { return this.views.jobsPage(q, grant) }
  jobTasks(jobId: string, q: PageQuery<TaskState>): Page<TaskInfo> | undefined { return this.views.jobTasks(jobId, q) }
  jobObjects(jobId: string, q: PageQuery<ObjState>): Page<ObjectSummary> | undefined { return this.views.jobObjects(jobId, q) }
  jobActors(jobId: string, q: PageQuery<ActorState>): Page<ActorSummary> | undefined { return this.views.jobActors(jobId, q) }
  jobLogs(jobId: string, q: PageQuery): Page<LogLine> | undefined { return this.views.jobLogs(jobId, q) }
  /** A job's log lines kept past number `seq` (an event stream resuming after it). */
  jobLogAfter(jobId: string, seq: number): LogLine[] { return this.jobs.logAfter(jobId, seq) }
  /** This coordinator's term for log line numbers (they restart from 1 in each: JobManager.logTerm). */
  get jobLogTerm(): string { return this.jobs.logTerm }
  /** GET /api/summary's counts: kept counters, no pass over tasks. */
  summary(): GridCounts { return this.views.summary(this.peers.all.values(), (id) => this.peers.reputations.quarantined(id), this.counters.tasksFinished) }
  /** How many records the coordinator holds of each kind: what retention bounds (GET /metrics). */
  kept(): { jobs: number; tasks: number; objects: number; bundles: number; quorums: number } {
    return { jobs: this.jobs.size, tasks: this.tasks.size, objects: this.objects.size, bundles: this.jobs.bundleCount, quorums: this.quorum.size }
  }
  /** The running jobs' tasks by state (GET /metrics labels them by job: bounded by the jobs running, not by those ever run). */
  runningJobsTasks(): { job: string; tasks: Record<TaskState, number> }[] {
    const out: { job: string; tasks: Record<TaskState, number> }[] = []
    for (const id of this.jobs.ids()) if (this.jobs.get(id)?.state === 'running') out.push({ job: id, tasks: this.tasks.counts(id) })
    return out
  }
  /** A job retention dropped altogether (retention.ts), or undefined. */
  jobExpired(jobId: string): Expired | undefined { return this.retention.expired(jobId) }
  /** Only the job's summary is kept: its tasks, objects, actors and log were dropped. */
  jobSummaryOnly(jobId: string): boolean { return this.retention.summaryOnly(jobId) }
  get retentionSettings(): RetentionOptions { return this.retention.settings }
  listenJob(jobId: string, l: (ev: JobEvent) => void): () => void { return this.jobs.listen(jobId, l) }

  /** A job from an uploaded bundle: its default export runs as the job's main task. */
  createBundleJob(bundleHash: string, name: string, args: Uint8Array, owner: string, opts: { resources?: Record<string, number>; capabilities?: string[] } & JobOptions = {}): JobRec {
    const { job, main } = this.jobs.createBundleJob(bundleHash, name, args, owner, opts)
    this.tasks.add(job, main, true)
    this.requestTick()
    return job
  }

  cancelJob(jobId: string): JobInfo | undefined {
    if (!this.jobs.cancel(jobId)) return undefined
    this.requestTick()
    return this.views.jobInfo(jobId)
  }

  bundleUploaded(hash: string, owner: string): void { this.jobs.bundleUploaded(hash, owner) }
  bundleReadable(hash: string, who: { grant: TokenGrant } | { peer: PeerSession }): boolean { return this.jobs.bundleReadable(hash, who) }

  queuedTasks(): number { return this.scheduler.queued }
  /** After a restart, the window in which known peers reconnect and nothing is scheduled (recovery.ts); undefined when closed. */
  get reconciliation(): Recovery['window'] { return this.recovery.window }
  /** Tasks running on connected peers now, in O(peers) (the dashboard's history samples it). */
  runningTasks(): number {
    let n = 0
    for (const id of this.peers.all.keys()) n += this.tasks.runningCount(id)
    return n
  }

  // ------------------------------------------------------------------ the turn

  requestTick(): void {
    if (this.tickQueued || this.closed) return
    this.tickQueued = true
    this.turnRequestedAt = performance.now()
    setImmediate(() => this.tick())
  }

  /**
   * Once per event-loop turn: place ready tasks, flush every outbox, then commit.
   * Messages go out before the commit so the store is off the latency path; an
   * `ack` only ever counts messages of an earlier commit, so a peer never drops a
   * durable message the store does not hold. A crash in between can make a task
   * run again, never be recorded twice.
   */
  tick(): void {
    this.tickQueued = false
    if (this.closed) return
    this.opts.taskTimings?.turnBegan(this.turnRequestedAt)
    // Actors are pumped here, never mid-frame: a reconnecting peer's replayed results must land first.
    if (!this.recovery.reconciling) {
      this.quorum.judgePending()
      this.actors.pumpAll()
      this.scheduler.schedule()
    }
    for (const s of this.peers.all.values()) {
      if (s.durableCommitted > s.durableAcked) { s.durableAcked = s.durableCommitted; s.send({ t: 'ack', n: s.durableCommitted }) }
      s.flush()
    }
    this.commit()
  }

  /**
   * Commits the turn's writes. Commits never overlap: writes made while one is under way go in
   * the next. While the store cannot be reached nothing is acknowledged, so peers keep their
   * durable messages and replay them wherever they reconnect; the commit is retried until it lands.
   */
  private commit(): void {
    if (this.committing) { this.commitAgain = true; return }
    const seen: [PeerSession, number][] = []
    for (const s of this.peers.all.values()) if (s.durableSeen > s.durableCommitted) seen.push([s, s.durableSeen])
    this.committing = true
    this.commitAgain = false
    this.opts.store.commit().then(() => {
      this.committing = false
      if (this.storeDownSince) {
        this.opts.log(`the ${this.opts.store.kind} store is reachable again after ${((Date.now() - this.storeDownSince) / 1000).toFixed(1)} s; going on`)
        this.storeDownSince = 0
      }
      let ackPending = false
      for (const [s, n] of seen) { s.durableCommitted = n; if (n > s.durableAcked) ackPending = true }
      if (this.commitAgain) this.requestTick()
      // Acks ride on the next turn's frames; if the grid goes quiet, a short timer sends them.
      else if (ackPending && !this.ackTimer) {
        this.ackTimer = setTimeout(() => { this.ackTimer = undefined; this.requestTick() }, 10)
        this.ackTimer.unref()
      }
    }, (err: Error) => {
      this.committing = false
      if (this.closed) return
      if (!this.storeDownSince) {
        this.storeDownSince = Date.now()
        this.opts.log(`cannot commit to the ${this.opts.store.kind} store (${err.message}); holding acknowledgements and retrying until it is back`)
      }
      this.commitAgain = true
      setTimeout(() => this.requestTick(), 250).unref()
    })
  }

  close(): void {
    this.closed = true
    this.peers.close()
    this.recovery.close()
    this.objects.close()
    this.retention.close()
    clearTimeout(this.ackTimer)
  }
}
