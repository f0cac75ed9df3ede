/**
 * The control tables and every transition on them: the coordinator's brain (Ray's GCS
 * plus its scheduler). It is plain synchronous code over maps; the server feeds it
 * validated messages, and one `tick()` per event-loop turn schedules, commits the
 * store, acknowledges durable messages and flushes every peer's outbox.
 */
import { createHmac } from 'node:crypto'
import {
  FAULTS, PROTOCOL_VERSION, grantPayload, CancelledError, LimitError, MAX_CHECKPOINT_BYTES, ObjectLostError, PeerDiedError, ProtocolError, AuthError, TaskError, decodeValue, newJobId, returnId, serializeError,
  taskOfObject, type FnDef, type HelloMsg, type JobInfo, type Limits, type ObjectInfo, type PeerToCoordinator,
  type ActorSummary, type ObjectSummary, type SerializedError, type TaskInfo, type TaskSpec, type TaskState, type ResultOut,
} from '@colony-grid/shared'
import { PeerSession, type PeerSocket } from './peer-session.js'
import { largestAgreement, type Vote } from './quorum.js'
import { Reputations } from './reputation.js'
import { PeerIdentities, originOf } from './identity.js'
import { PlannedLinks } from './links.js'
import { allFull, pickPeer } from './scheduler.js'
import { FairQueue } from './fair-queue.js'
import { JobLog } from './job-log.js'
import { JOB_TEXT_LIMITS, clip } from '@colony-grid/shared'
import type { IceServersFor } from './ice-servers.js'
import type { ActorRow, ControlStore, JobRow, StoreSnapshot } from './store/types.js'
import type { TokenGrant } from './tokens.js'

const TERMINAL: ReadonlySet<TaskState> = new Set(['finished', 'failed', 'cancelled'])
const NO_RESOURCES: Record<string, number> = {}
const NO_PIPELINE = () => 1
/** What a job whose main cannot be placed says (its main runs only on a peer the operator trusts). */
export const WAITING_FOR_TRUST = 'waiting for a trusted worker: start one with colony worker --trusted --token <trusted join token>'
const MAX_JOB_LOG_LINES = 10_000
/** `setTimeout`'s longest delay: a longer task limit would fire at once. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1

interface TaskRec {
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
  /** A task with `replicas`: it never runs itself; its replicas do, and their results are judged (quorum.ts). */
  quorum?: { replicas: string[]; need: number; max: number }
  /** A replica: the task it runs for. */
  replicaOf?: string
}

type ObjState = 'pending' | 'ready' | 'error'
interface ObjRec {
  id: string
  job: string
  size: number
  state: ObjState
  inline?: Uint8Array
  /** SHA-256 of the bytes, as reported by the peer that made them. */
  hash?: string
  error?: SerializedError
  locations: Set<string>
  waiters?: string[]
  subscribers?: Set<string>
  pulls?: { peer: string; req: number; relay?: boolean; job?: string }[]
  /** Unfinished tasks that need it as an argument: it is kept for them even once freed. */
  pins: number
  /** Peers that were sent it (a plan or a relay): only they may report holding a copy. */
  sentTo?: Set<string>
  /**
   * Peers recorded as holding its bytes, now or before (its maker, its putter, readers that said
   * `held`); kept in the store's location rows, so after a restart they (and no other) may claim it.
   */
  holders?: Set<string>
  /** Peers asked to keep a copy of this put object (`replicate`): they may read it though they run none of its job. */
  replicateTo?: Set<string>
  /** Its owner let it go; it is disposed of when no task needs it. */
  freed?: boolean
}

interface ActorRec extends ActorRow { maxRestarts: number; queue: string[]; inflight: Set<string>; deathError?: SerializedError; charged?: number }

export type JobEvent = { type: 'log'; line: string } | { type: 'state'; job: JobInfo }

interface JobRec extends JobRow {
  /** Objects it has put (for maxObjectsPerJob). */
  puts: number
  fns: Map<string, FnDef>
  tasks: string[]
  counts: Record<TaskState, number>
  /** Created with its first line. */
  log?: JobLog
  driverPeer?: string
  listeners: Set<(ev: JobEvent) => void>
}

interface Relay { requester: string; req: number; holder: string; id: string; tried: Set<string> }

export interface ControlOptions {
  store: ControlStore
  /** What the store held when this coordinator took over its tables. */
  snapshot: StoreSnapshot
  limits: Limits
  /** A fixed number of tasks each executor may have queued; by default it adapts (see PeerSession.pipelineDepth). */
  pipelineDepth?: number
  pipelineTargetMs: number
  maxPipelineDepth: number
  /** After a restart, how long to wait for known peers to come back before rescheduling their work. */
  reconcileMs: number
  heartbeatTimeoutMs: number
  /** The STUN/TURN servers (and TURN credentials of its own) each peer gets in its welcome. */
  iceServersFor: IceServersFor
  /** How often connected peers get fresh ones (before their TURN credentials expire); 0: never. */
  iceRefreshMs?: number
  quotas: Quotas
  /** The time limit of a task (or actor call) that sets no `timeoutMs`, for jobs that set no `taskTimeoutMs`; 0: none. A job's `main` has none. */
  defaultTaskTimeoutMs?: number
  /** Bytes of log lines kept per job (the most recent; the dropped ones are counted). */
  maxJobLogBytes?: number
  log: (line: string) => void
}

/** What a job is created with. */
export interface JobOptions {
  /** The time limit of its tasks and actor calls that set no `timeoutMs` (ms); by default the coordinator's `defaultTaskTimeoutMs`. */
  taskTimeoutMs?: number
}

export const DEFAULT_TASK_TIMEOUT_MS = 15 * 60_000
export const DEFAULT_MAX_JOB_LOG_BYTES = 2 * 1024 * 1024

/** Counts and sizes at the boundary; past one, the sender gets a LimitError naming it, and nothing else is disturbed. */
export interface Quotas {
  /** Peers connected at once with one token. */
  maxPeersPerToken: number
  maxTasksPerJob: number
  /** Objects a job puts. */
  maxObjectsPerJob: number
  /** A task's encoded arguments (large values travel as objects, so this bounds a misbehaving peer). */
  maxArgBytes: number
}

export const DEFAULT_QUOTAS: Quotas = { maxPeersPerToken: 1000, maxTasksPerJob: 1_000_000, maxObjectsPerJob: 1_000_000, maxArgBytes: 4 * 1024 * 1024 }

export interface Counters {
  relayedBytes: number
  duplicateResults: number
  tasksFinished: number
  tasksRetried: number
  badMessages: number
  /** Replica results that disagreed with an accepted quorum. */
  quorumDisagreements: number
  peersQuarantined: number
  /** Messages that came faster than maxMessagesPerSecond (their connection was then slowed). */
  rateLimited: number
  /** WebRTC signals dropped: between peers no pull plan paired (links.ts). */
  signalsRefused: number
  /** Objects a peer claimed to hold (hello.holds) that it was never sent nor made. */
  holdsRefused: number
}

function emptyCounts(): Record<TaskState, number> {
  return { waiting: 0, ready: 0, running: 0, finished: 0, failed: 0, cancelled: 0 }
}

export class Control {
  readonly sessions = new Map<string, PeerSession>()
  readonly tasks = new Map<string, TaskRec>()
  readonly objects = new Map<string, ObjRec>()
  readonly actors = new Map<string, ActorRec>()
  readonly jobs = new Map<string, JobRec>()
  readonly counters: Counters = { relayedBytes: 0, duplicateResults: 0, tasksFinished: 0, tasksRetried: 0, badMessages: 0, quorumDisagreements: 0, peersQuarantined: 0, rateLimited: 0, signalsRefused: 0, holdsRefused: 0 }
  readonly reputations = new Reputations()
  /** Peer ids and the secrets that prove them (identity.ts). */
  readonly identities = new PeerIdentities((id) => this.sessions.has(id))
  /** Which peers may signal each other (links.ts). */
  private readonly links = new PlannedLinks()
  /** Jobs whose log already says their main waits for a trusted worker. */
  private readonly trustNoted = new Set<string>()
  private readonly judgeLater = new Set<TaskRec>()
  /** Ready tasks, round-robin across users (fair-queue.ts). */
  private readonly ready = new FairQueue()
  private relays = new Map<number, Relay>()
  private nextRelay = 1
  private tickQueued = false
  private reconcileUntil = 0
  private expectedPeers = new Set<string>()
  private unclaimedActors = new Set<string>()
  private reconcileTimer?: NodeJS.Timeout
  private ackTimer?: NodeJS.Timeout
  private nextSeq = 0
  /** Actors claimed back by a reconnecting peer, pumped at the end of the turn (after the peer's replayed results). */
  private pumpLater = new Set<ActorRec>()
  /** After a restart: tasks a peer says it runs that the store never committed; claimed when their submit is replayed. */
  private orphanRunning = new Map<string, string>()
  /** After a restart: results replayed for tasks whose submit the store never committed; applied when it is replayed. */
  private orphanDone = new Map<string, { peer: string; results?: ResultOut[]; error?: SerializedError }>()
  /** Until then, results for unknown tasks may be such orphans. */
  private orphansUntil = 0
  /** `put` objects whose holder left: errors only if the holder is not back within the heartbeat timeout. */
  private putGrace = new Map<string, NodeJS.Timeout>()
  private heartbeatTimer: NodeJS.Timeout
  private iceTimer?: NodeJS.Timeout
  private closed = false

  constructor(private readonly opts: ControlOptions) {
    this.loadFromStore()
    this.heartbeatTimer = setInterval(() => this.checkHeartbeats(), Math.max(500, opts.heartbeatTimeoutMs / 4))
    this.heartbeatTimer.unref()
    if (opts.iceRefreshMs) {
      // A peer connected for longer than its TURN credentials live could open no new relayed channel.
      this.iceTimer = setInterval(() => {
        for (const s of this.sessions.values()) if (s.p2p) s.send({ t: 'ice', iceServers: opts.iceServersFor(s.id) })
        this.requestTick()
      }, opts.iceRefreshMs)
      this.iceTimer.unref()
    }
  }

  // ------------------------------------------------------------------ peers

  /**
   * Admits a peer after its hello. `address`: where it connects from (its origin is that and its
   * token: identity.ts). Ids are public (/api/peers), so a hello keeps its `peerId` only with the
   * `peerSecret` the coordinator gave it for that id; otherwise it is a new peer with a fresh id,
   * and nothing of the id it named. Throws AuthError.
   */
  hello(socket: PeerSocket, m: HelloMsg, grant: TokenGrant, newId: () => string, address?: string): PeerSession {
    // Peers of another version would misread each other's data channels (the chunk format, say): refuse them plainly.
    if (m.v !== PROTOCOL_VERSION) {
      throw new ProtocolError(`this ${m.kind === 'browser' ? 'page' : 'peer'} speaks Colony protocol v${m.v}; the coordinator speaks v${PROTOCOL_VERSION}: ${m.kind === 'browser' ? 'reload the page' : 'install the same version of @colony-grid/client and @colony-grid/worker-web as the coordinator'}`)
    }
    if (m.role !== grant.role) {
      throw new AuthError(m.role === 'driver'
        ? 'a join token cannot submit jobs: connect drivers with the submit token'
        : 'workers join with the join token, not the submit token')
    }
    const origin = originOf(grant.id, address)
    const resumed = !!m.peerId && this.identities.verify(m.peerId, m.peerSecret, m.role)
    let id = resumed ? m.peerId! : newId()
    while (!resumed && (this.sessions.has(id) || this.identities.get(id))) id = newId()
    const stale = this.sessions.get(id)
    let sameToken = 0
    for (const x of this.sessions.values()) if (x.tokenId === grant.id && x !== stale) sameToken++
    if (sameToken >= this.opts.quotas.maxPeersPerToken) {
      throw new LimitError('maxPeersPerToken', `${sameToken} peers are already connected with this token; the maxPeersPerToken limit is ${this.opts.quotas.maxPeersPerToken}`)
    }
    if (stale) { stale.socket.close(4000, 'replaced by a newer connection'); this.peerLost(stale, 'reconnected') }
    const secret = resumed ? m.peerSecret! : this.identities.issue(id, m.role, origin)
    if (resumed) this.identities.moved(id, origin)
    const s = new PeerSession(id, socket)
    s.tokenId = grant.id
    s.trusted = m.role === 'worker' && grant.trusted
    s.resumed = resumed
    s.origin = origin
    s.address = address
    s.kind = m.kind
    // A fresh id starts with its token and address's standing: dropping an id does not wash a quarantine.
    if (m.role === 'worker') this.reputations.join(id, origin, !resumed)
    s.reputation = this.reputations.score(id)
    s.quarantined = this.reputations.quarantined(id)
    s.role = m.role
    s.capabilities = new Set(m.capabilities)
    s.p2p = !!m.p2p
    s.resources = m.role === 'worker' ? { ...m.resources } : {}
    this.sessions.set(id, s)
    this.expectedPeers.delete(id)
    this.putPeer(s)

    if (m.role === 'driver') {
      // A driver resumes its job only as the peer it was (its id proven), with the job's own token.
      const prior = m.jobId ? this.jobs.get(m.jobId) : undefined
      const job = prior && prior.state === 'running' && prior.owner === grant.id && resumed ? prior : this.createJob(m.name ?? 'driver', grant.id, undefined, { taskTimeoutMs: m.taskTimeoutMs })
      job.driverPeer = id
      s.jobId = job.id
    }
    if (resumed) {
      for (const oid of m.holds ?? []) this.claimHeld(s, oid)
      const blocked = new Set(m.blocked ?? [])
      // Running tasks first: an actor's in-flight calls must be claimed before the actor is pumped again.
      for (const tid of m.running ?? []) this.claimRunning(s, tid, blocked.has(tid))
      for (const aid of m.actors ?? []) this.claimActor(s, aid)
    } else {
      // A new id claims nothing: what it says it holds or runs is let go.
      const holds = m.holds ?? []
      for (let i = 0; i < holds.length; i += 1000) s.send({ t: 'drop', ids: holds.slice(i, i + 1000) })
      for (const tid of [...m.running ?? [], ...m.actors ?? []]) s.send({ t: 'cancelTask', task: tid, reason: 'not this peer\'s: it joined with a new id' })
    }
    s.send({
      t: 'welcome', peerId: id, jobId: s.jobId, limits: this.opts.limits, pingMs: Math.max(100, Math.floor(this.opts.heartbeatTimeoutMs / 4)),
      grantKey: s.grantKey, iceServers: this.opts.iceServersFor(id), peerSecret: secret, trusted: s.trusted,
    })
    if (this.reconcileUntil && [...this.expectedPeers].every((p) => this.sessions.has(p))) this.endReconcile()
    this.requestTick()
    return s
  }

  /** A reconnecting peer still holds an object's bytes: it is a location again, and revives a copy thought lost. */
  private claimHeld(s: PeerSession, oid: string): void {
    const o = this.objects.get(oid)
    const t = this.tasks.get(taskOfObject(oid) ?? '')
    const lostPut = !!o && o.state === 'error' && o.error?.type === 'ObjectLostError' && !t && !o.freed
    const waitingPut = !!o && o.state === 'pending' && this.putGrace.has(oid)
    const rebuilding = !!o && o.state === 'pending' && t?.ranOn === s.id
    // Only a peer the coordinator sent it to, or recorded holding it (it made or put it), may claim it.
    const itsOwn = !!o && (o.holders?.has(s.id) || o.sentTo?.has(s.id) || o.replicateTo?.has(s.id) || t?.ranOn === s.id)
    if (o && !itsOwn) this.counters.holdsRefused++
    const claimable = o && itsOwn && !o.inline && !o.freed &&
      (o.state === 'ready' || lostPut || waitingPut || rebuilding)
    // Bytes of something freed, unknown or failed meanwhile, or never its: the peer should let them go.
    if (!claimable) { s.send({ t: 'drop', ids: [oid] }); return }
    clearTimeout(this.putGrace.get(oid))
    this.putGrace.delete(oid)
    this.addLocation(o, s)
    if (o.state === 'ready') return
    o.error = undefined
    this.opts.store.objects.put({ id: o.id, job: o.job, size: o.size, hash: o.hash })
    this.objectReady(o, 'ready')
    // A rebuild queued for it (not started) is not needed any more.
    if (t && (t.state === 'ready' || t.state === 'waiting') && !t.spec.actor && !t.spec.createsActor) {
      const n = t.spec.opts.numReturns ?? 1
      if (Array.from({ length: n }, (_, i) => this.objects.get(returnId(t.id, i))!).every((r) => r.state === 'ready')) {
        this.setState(t, 'finished')
      }
    }
  }

  /** A reconnecting peer still hosts an actor: keep it, unless it was restarted elsewhere meanwhile. */
  private claimActor(s: PeerSession, aid: string): void {
    const a = this.actors.get(aid)
    const claimable = a && a.state !== 'dead' && (this.unclaimedActors.has(aid) || a.peer === s.id) &&
      !(a.peer && a.peer !== s.id && this.sessions.has(a.peer))
    if (!a || !claimable) { s.send({ t: 'cancelTask', task: aid, reason: 'this actor was restarted elsewhere or has ended' }); return }
    this.unclaimedActors.delete(aid)
    a.state = 'alive'
    this.host(a, s)
  }

  /** A reconnecting peer says it still runs a task: keep it there rather than run it twice. */
  private claimRunning(s: PeerSession, tid: string, blocked: boolean): void {
    const t = this.tasks.get(tid)
    if (!t) {
      if (this.reconcileUntil) this.orphanRunning.set(tid, s.id)
      return
    }
    if (TERMINAL.has(t.state)) { s.send({ t: 'cancelTask', task: tid, reason: 'already finished elsewhere' }); return }
    if (t.state === 'running') return
    // A peer may claim only work it was given: a replicated task's own record never runs, and no
    // peer may hold two replicas of one task (it would vote twice).
    // A job's main runs only on a trusted peer.
    if (t.quorum || (t.ranOn !== s.id && !t.restored) || (t.replicaOf && this.siblingPeers(t).has(s.id)) || (t.main && !s.trusted)) {
      s.send({ t: 'cancelTask', task: tid, reason: 'not this peer\'s to run' })
      return
    }
    if (t.spec.actor) {
      const a = this.actors.get(t.spec.actor)
      if (!a || (a.peer && a.peer !== s.id)) return
      const i = a.queue.indexOf(tid)
      if (i >= 0) a.queue.splice(i, 1)
      a.inflight.add(tid)
    }
    this.assign(t, s, false, blocked)
  }

  peerLost(s: PeerSession, why: string): void {
    if (s.closed) return
    s.closed = true
    if (this.sessions.get(s.id) === s) this.sessions.delete(s.id)
    this.opts.store.peers.remove(s.id)
    if (s.role === 'worker') this.opts.log(`peer ${s.id} lost (${why}); re-queueing ${s.tasks.size} task(s)`)
    if (s.p2p) for (const other of this.sessions.values()) if (other.p2p) other.send({ t: 'peerLeft', peer: s.id })
    if (s.p2p) this.links.forget(s.id)
    for (const oid of s.subscriptions) this.objects.get(oid)?.subscribers?.delete(s.id)
    const lostActors = [...s.actors]
    const lost = [...s.tasks].map((id) => this.tasks.get(id)).filter((t): t is TaskRec => !!t).sort((a, b) => a.seq - b.seq)
    for (const t of lost) {
      s.tasks.delete(t.id)
      this.refund(t)
      t.peer = undefined
      t.blocked = false
      if (t.spec.actor) this.actorCallLost(t, s.id)
      else this.retryOrFail(t, s.id)
    }
    for (const [tid, pid] of this.orphanRunning) if (pid === s.id) this.orphanRunning.delete(tid)
    for (const aid of lostActors) this.actorLost(aid, s.id)
    for (const oid of s.holds) {
      const o = this.objects.get(oid)
      if (!o) continue
      o.locations.delete(s.id)
      if (o.state === 'ready' && !o.inline && o.locations.size === 0) this.objectLost(o)
    }
    for (const [rid, r] of this.relays) {
      if (r.requester === s.id) this.relays.delete(rid)
      else if (r.holder === s.id) { this.relays.delete(rid); this.retryPull(r) }
    }
    if (s.jobId) { const job = this.jobs.get(s.jobId); if (job?.driverPeer === s.id) job.driverPeer = undefined }
    this.requestTick()
  }

  private checkHeartbeats(): void {
    const deadline = Date.now() - this.opts.heartbeatTimeoutMs
    for (const s of this.sessions.values()) {
      if (s.lastSeen < deadline) { s.socket.close(4008, 'heartbeat timeout'); this.peerLost(s, 'heartbeat timeout') }
    }
  }

  // ------------------------------------------------------------------ messages

  /** Handles one validated message from an admitted peer. Throws ProtocolError/AuthError for misuse. */
  handle(s: PeerSession, m: PeerToCoordinator): void {
    if (s.closed) return // frames still in flight from a peer already declared lost
    s.lastSeen = Date.now()
    switch (m.t) {
      case 'fn': try { this.defineFn(s, m.def, m.job) } finally { s.durableSeen++ } break
      case 'submit': try { this.submit(s, m.spec) } finally { s.durableSeen++ } break
      case 'put': try { this.put(s, m.id, m.size, m.inline, m.parent, m.hash, m.replicate) } finally { s.durableSeen++ } break
      case 'done':
        if (m.ms !== undefined) s.observeRuntime(m.ms)
        try { this.done(s, m.task, m.results, m.error, m.lost, m.checkpoint) } finally { s.durableSeen++ }
        break
      case 'actorLost': if (s.actors.has(m.actor)) { this.unhost(m.actor, s); this.opts.log(`actor ${m.actor} lost on ${s.id}: ${m.reason}`); this.actorLost(m.actor, s.id) } break
      case 'sub': for (const id of m.ids) this.subscribe(s, id, m.job); break
      case 'cancel': for (const id of m.ids) this.cancelFrom(s, id, m.job); break
      case 'blocked': this.blocked(s, m.task, m.blocked); break
      case 'log': this.taskLog(s, m.task, m.lines); break
      case 'pull': this.pull(s, m.req, m.id, m.relay, m.job); break
      case 'signal': {
        // Signalling carries addresses: only between a reader and a holder a pull plan paired.
        const to = this.sessions.get(m.to)
        if (to?.p2p && s.p2p && this.links.allowed(s.id, to.id)) to.send({ t: 'signal', from: s.id, link: m.link, data: m.data })
        else this.counters.signalsRefused++
        break
      }
      case 'chunk': this.chunk(s, m.req, m.seq, m.data, m.last, m.size); break
      case 'serveFail': this.serveFail(s, m.req); break
      case 'free': try { this.free(s, m.ids, m.job) } finally { s.durableSeen++ } break
      case 'held':
        for (const id of m.ids) {
          const o = this.objects.get(id)
          if (o && o.state === 'ready' && !o.inline && !o.freed && o.sentTo?.has(s.id)) this.addLocation(o, s)
          else if (!o || o.freed) s.send({ t: 'drop', ids: [id] })
        }
        break
      case 'evicted':
        for (const id of m.ids) { const o = this.objects.get(id); if (o) this.removeLocation(o, s.id); s.holds.delete(id) }
        break
      case 'pause': if (FAULTS.handlerThrows) throw new TypeError('injected fault handler-throws'); s.paused = m.paused; break
      case 'ping': s.send({ t: 'pong' }); break
      case 'bye': if (s.jobId) this.finishDriverJob(s.jobId); break
      case 'hello': throw new ProtocolError('hello sent twice on one connection')
    }
    this.requestTick()
  }

  private jobFor(s: PeerSession, parent?: string): JobRec {
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

  private defineFn(s: PeerSession, def: FnDef, jobId?: string): void {
    const job = s.role === 'driver' ? this.jobs.get(s.jobId!) : jobId && s.jobs.has(jobId) ? this.jobs.get(jobId) : undefined
    if (!job) throw new AuthError(`peer ${s.id} cannot define functions in job ${jobId ?? '?'}`)
    if (job.fns.has(def.id)) return
    // A job may use only bundles its own token uploaded: naming another's hash would hand it that code.
    if (def.kind === 'bundle' && !this.jobUsesBundle(job, def.bundle) && !(job.owner && this.bundleOwnedBy(def.bundle, job.owner))) {
      throw new AuthError(`job ${job.id} cannot use bundle ${def.bundle}: upload it with this job's token (POST /api/bundles)`)
    }
    job.fns.set(def.id, def)
    this.opts.store.fns.put(job.id, def)
  }

  /** The job runs code of this bundle: its own, or a bundle function it defined. */
  private jobUsesBundle(job: JobRec, hash: string): boolean {
    if (job.bundle === hash) return true
    for (const def of job.fns.values()) if (def.kind === 'bundle' && def.bundle === hash) return true
    return false
  }

  /**
   * Who may fetch a bundle's code (GET /api/bundles/:hash): the operator; a submit token that
   * uploaded it or owns a job that uses it; a peer (authenticated by its secret) with work of
   * a job that uses it, or a driver whose job does.
   */
  /** The token ids that uploaded each bundle (kept here so checks need no store read). */
  private readonly bundleOwners = new Map<string, Set<string>>()
  private bundleOwnedBy(hash: string, owner: string): boolean { return !!this.bundleOwners.get(hash)?.has(owner) }
  /** A token uploaded a bundle (the store already holds its code). */
  bundleUploaded(hash: string, owner: string): void {
    let o = this.bundleOwners.get(hash)
    if (!o) this.bundleOwners.set(hash, o = new Set())
    o.add(owner)
  }

  bundleReadable(hash: string, who: { grant: TokenGrant } | { peer: PeerSession }): boolean {
    if ('grant' in who) {
      const { grant } = who
      if (grant.role !== 'driver') return false
      if (grant.operator || this.bundleOwnedBy(hash, grant.id)) return true
      for (const job of this.jobs.values()) if (job.owner === grant.id && this.jobUsesBundle(job, hash)) return true
      return false
    }
    const s = who.peer
    if (s.closed) return false
    const jobs = s.role === 'driver' ? (s.jobId ? [s.jobId] : []) : s.jobs.keys()
    for (const id of jobs) { const job = this.jobs.get(id); if (job && this.jobUsesBundle(job, hash)) return true }
    return false
  }

  submit(s: PeerSession, spec: TaskSpec): void {
    const job = this.jobFor(s, spec.parent)
    const existing = this.tasks.get(spec.id)
    if (existing) {
      if (existing.job === job.id) return // a replay after reconnect
      throw new ProtocolError(`task id ${spec.id} is taken`)
    }
    if (spec.id.includes('~')) throw new ProtocolError(`task ids may not contain '~' (it marks the coordinator's replicas): ${spec.id}`)
    if (spec.actor) {
      const a = this.actors.get(spec.actor)
      if (!a || a.job !== job.id) throw new ProtocolError(`unknown actor ${spec.actor} in job ${job.id}`)
    } else if (!job.fns.has(spec.fn)) {
      throw new ProtocolError(`task ${spec.name}: function ${spec.fn} was not defined in job ${job.id} (send 'fn' first)`)
    }
    // Past a quota the task is recorded as failed with a LimitError naming it, so its `get` says why
    // (up to a point: past that, the submit is only answered with the error).
    const q = this.opts.quotas
    const over = job.tasks.length >= q.maxTasksPerJob
      ? new LimitError('maxTasksPerJob', `job ${job.id} has ${job.tasks.length} tasks; the maxTasksPerJob limit is ${q.maxTasksPerJob}. Task ${spec.name} (${spec.id}) was refused`)
      : spec.args.length > q.maxArgBytes
        ? new LimitError('maxArgBytes', `task ${spec.name} (${spec.id}) has ${spec.args.length} bytes of arguments; the maxArgBytes limit is ${q.maxArgBytes} (large values go as objects: grid.put)`)
        : undefined
    if (over && job.tasks.length >= q.maxTasksPerJob + 10_000) throw over
    if (over) {
      const t = this.addTask(job, { ...spec, args: new Uint8Array(0), deps: [], actor: undefined, createsActor: undefined, opts: { numReturns: spec.opts.numReturns } }, false)
      this.fail(t, serializeError(over))
      return
    }
    this.addTask(job, spec, false)
  }

  private addTask(job: JobRec, spec: TaskSpec, main: boolean): TaskRec {
    const res = spec.actor ? NO_RESOURCES : { cpu: spec.createsActor ? 0 : 1, ...spec.opts.resources }
    const t: TaskRec = { id: spec.id, job: job.id, spec, state: 'waiting', attempts: 0, pendingDeps: 0, blocked: false, main, res, seq: this.nextSeq++ }
    // Soon after a restart, a submit may be a replay of one that already ran: its result is acceptable from any peer.
    if (Date.now() < this.orphansUntil) t.restored = true
    this.tasks.set(t.id, t)
    job.tasks.push(t.id)
    job.counts.waiting++
    const n = spec.opts.numReturns ?? 1
    for (let i = 0; i < n; i++) {
      const oid = returnId(t.id, i)
      this.objects.set(oid, { id: oid, job: job.id, size: 0, state: 'pending', locations: new Set(), pins: 0 })
    }
    if (spec.createsActor) {
      const a: ActorRec = {
        id: t.id, job: job.id, name: spec.name, state: 'pending', restarts: 0,
        maxRestarts: spec.opts.maxRestarts ?? 0, queue: [], inflight: new Set(),
      }
      this.actors.set(a.id, a)
      this.opts.store.actors.put(this.actorRow(a))
    }
    if (spec.actor) this.actors.get(spec.actor)!.queue.push(t.id)
    this.pinDeps(t, 1)
    this.opts.store.tasks.put({ id: t.id, job: job.id, spec, state: 'waiting', attempts: 0, main })
    const actor = spec.actor ? this.actors.get(spec.actor)! : undefined
    if (actor?.state === 'dead') {
      this.fail(t, actor.deathError ?? serializeError(new PeerDiedError(`actor ${actor.name} (${actor.id}) has ended`)))
      return t
    }
    const orphan = this.orphanDone.get(t.id)
    this.orphanDone.delete(t.id)
    const ranOn = this.sessions.get(orphan?.peer ?? '')
    if (orphan && ranOn) {
      // It ran and finished while the coordinator was down: record that result, do not run it again.
      t.ranOn = ranOn.id
      t.attempts = 1
      if (spec.actor) { const a = this.actors.get(spec.actor)!; a.queue.splice(a.queue.indexOf(t.id), 1) }
      this.done(ranOn, t.id, orphan.results, orphan.error)
      return t
    }
    const runningOn = this.sessions.get(this.orphanRunning.get(t.id) ?? '')
    this.orphanRunning.delete(t.id)
    if (runningOn) { this.setState(t, 'ready'); this.claimRunning(runningOn, t.id, false); return t }
    const k = spec.opts.replicas ?? 1
    if (k > 1 && !spec.actor && !spec.createsActor && !main) {
      t.quorum = { replicas: [], need: Math.min(k, spec.opts.quorum ?? Math.floor(k / 2) + 1), max: k + 2 }
      for (let i = 0; i < k; i++) this.addReplica(t)
    }
    this.enqueue(t)
    return t
  }

  // ------------------------------------------------------------------ quorum (replicas)

  /** One more run of a replicated task, on a peer none of its other replicas used. */
  private addReplica(main: TaskRec): void {
    const q = main.quorum!
    const { replicas: _k, quorum: _q, compare: _c, ...opts } = main.spec.opts
    const r = this.addTask(this.jobs.get(main.job)!, { ...main.spec, id: `${main.id}~${q.replicas.length}`, name: `${main.spec.name}~${q.replicas.length}`, opts }, false)
    r.replicaOf = main.id
    q.replicas.push(r.id)
  }

  /** Is there a worker none of the task's replicas used, to break a tie? (Else it would wait for one forever.) */
  private anotherPeerFor(main: TaskRec): boolean {
    const used = new Set<string>()
    for (const id of main.quorum!.replicas) { const r = this.tasks.get(id); const at = r?.peer ?? r?.ranOn; if (at) used.add(at) }
    const caps = main.spec.opts.capabilities ?? []
    for (const s of this.sessions.values()) {
      if (s.role === 'worker' && !s.closed && !s.quarantined && !s.paused && !used.has(s.id) && caps.every((c) => s.capabilities.has(c))) return true
    }
    return false
  }

  /** Where a replica's siblings run or ran. */
  private siblingPeers(r: TaskRec): Set<string> {
    const out = new Set<string>()
    for (const id of this.tasks.get(r.replicaOf!)?.quorum?.replicas ?? []) {
      const sib = this.tasks.get(id)
      const at = sib && id !== r.id ? sib.peer ?? sib.ranOn : undefined
      if (at) out.add(at)
    }
    return out
  }

  private resultsOf(t: TaskRec): ResultOut[] {
    return Array.from({ length: t.spec.opts.numReturns ?? 1 }, (_, i) => {
      const o = this.objects.get(returnId(t.id, i))!
      return { size: o.size, inline: o.inline, hash: o.hash }
    })
  }

  /** After a replica ends: accept a result a quorum agrees on, run another replica, or give up. */
  private judge(main: TaskRec): void {
    const q = main.quorum!
    const replicas = q.replicas.map((id) => this.tasks.get(id)!)
    if (TERMINAL.has(main.state)) {
      for (const r of replicas) if (!TERMINAL.has(r.state)) this.cancelTask(r, 'its task is decided')
      return
    }
    // A replica's vote: its results, or the error its own code threw. A vanished peer does not vote.
    const votes: Vote[] = []
    const voted = new Set<string>()
    for (const r of replicas) {
      // One vote per peer: a peer that somehow ran two replicas counts once.
      if (r.ranOn && voted.has(r.ranOn)) continue
      if (r.ranOn) voted.add(r.ranOn)
      if (r.state === 'finished') votes.push({ replica: r.id, peer: r.ranOn ?? '', results: this.resultsOf(r) })
      else if (r.state === 'failed' && r.error?.type === 'TaskError' && r.ranOn) votes.push({ replica: r.id, peer: r.ranOn, error: r.error })
    }
    const agreeing = largestAgreement(votes, main.spec.opts.compare ?? {})
    if (agreeing.length >= (FAULTS.acceptWrongReplica ? 1 : q.need)) { this.accept(main, agreeing, votes); return }
    const pending = replicas.filter((r) => !TERMINAL.has(r.state)).length
    if (agreeing.length + pending >= q.need) return
    if (q.replicas.length < q.max && this.anotherPeerFor(main)) { this.addReplica(main); return }
    this.fail(main, serializeError(new TaskError(
      `no quorum for task ${main.spec.name} (${main.id}): ${q.replicas.length} replicas, on peers ${[...new Set(votes.map((v) => v.peer))].join(', ')}, ` +
      `gave results of which at most ${agreeing.length} agree; ${q.need} must${q.replicas.length < q.max ? ', and no other peer is there to ask' : ''}. If the results are floats from different backends, compare them with { tolerance }.`,
      { taskId: main.id, taskName: main.spec.name })))
  }

  private accept(main: TaskRec, agreeing: Vote[], votes: Vote[]): void {
    for (const v of votes) {
      if (!v.peer) continue // ran before a coordinator restart: who ran it is not kept
      if (agreeing.includes(v)) { if (this.reputations.agreed(v.peer)) this.saveOrigin(v.peer); continue }
      this.counters.quorumDisagreements++
      const held = this.reputations.disagreed(v.peer)
      this.saveOrigin(v.peer)
      const s = this.sessions.get(v.peer)
      if (s) { this.syncReputation(v.peer); this.putPeer(s) }
      this.opts.log(`peer ${v.peer} disagreed with the quorum on ${main.spec.name} (${main.id}); reputation ${this.reputations.score(v.peer).toFixed(2)}${held ? ': quarantined' : ''}`)
      if (held) this.counters.peersQuarantined++
    }
    for (const v of votes) this.syncReputation(v.peer)
    const winner = agreeing[0]
    if (winner.error) this.fail(main, { ...winner.error, taskId: main.id, taskName: main.spec.name })
    else if (winner.results!.some((r) => !r.inline)) {
      this.fail(main, serializeError(new TaskError(
        `task ${main.spec.name} (${main.id}) has replicas, so its results must be small enough to keep in the coordinator (at most ${this.opts.limits.inlineMaxBytes} bytes each): return a summary or a digest, and keep big data in objects`,
        { taskId: main.id, taskName: main.spec.name })))
    } else this.finish(main, winner.results!)
    for (const id of main.quorum!.replicas) {
      const r = this.tasks.get(id)!
      if (!TERMINAL.has(r.state)) this.cancelTask(r, 'its task is decided')
      for (let i = 0; i < (r.spec.opts.numReturns ?? 1); i++) this.freeObject(returnId(r.id, i))
    }
  }

  /** The peer's row: its standing, and what proves its id (so it keeps the id after a restart). */
  private putPeer(s: PeerSession): void {
    const reputation = this.reputations.score(s.id), quarantined = this.reputations.quarantined(s.id)
    const identity = this.identities.get(s.id)
    this.opts.store.peers.put({
      id: s.id, kind: s.kind, role: s.role, lastSeen: Date.now(), ...(reputation < 1 || quarantined ? { reputation, quarantined } : {}),
      ...(identity ? { secretHash: identity.secretHash, origin: identity.origin } : {}),
    })
  }

  /** The standing of the token and address the peer joined from, kept for a restart. */
  private saveOrigin(peer: string): void {
    const origin = this.reputations.origin(peer)
    if (!origin) return
    const { score, quarantined } = this.reputations.originStanding(origin)
    this.opts.store.origins.put({ origin, reputation: score, quarantined })
  }

  private syncReputation(peer: string): void {
    const s = this.sessions.get(peer)
    if (s) { s.reputation = this.reputations.score(peer); s.quarantined = this.reputations.quarantined(peer) }
  }

  /** A revoked token: its peers leave now. */
  dropToken(tokenId: string): number {
    let n = 0
    for (const s of [...this.sessions.values()]) {
      if (s.tokenId !== tokenId) continue
      n++
      s.socket.close(4401, 'token revoked')
      this.peerLost(s, 'its token was revoked')
      if (s.role === 'driver' && s.jobId) this.finishDriverJob(s.jobId)
    }
    return n
  }

  /** Who may see a job over the HTTP API: the token that started it, and the operator's. */
  jobVisible(jobId: string, grant: TokenGrant): boolean {
    const job = this.jobs.get(jobId)
    return !!job && (grant.operator || job.owner === grant.id)
  }

  /** An operator lets a quarantined peer work again. */
  releasePeer(peer: string): boolean {
    const was = this.reputations.quarantined(peer)
    const origin = this.reputations.origin(peer)
    this.reputations.release(peer)
    if (origin) this.opts.store.origins.remove(origin)
    this.syncReputation(peer)
    const s = this.sessions.get(peer)
    if (s) this.putPeer(s)
    if (was) { this.opts.log(`peer ${peer} released from quarantine`); this.requestTick() }
    return was
  }

  // ------------------------------------------------------------------ trusted placement

  /** Is a worker the operator trusts connected? Only such a peer runs a job's main. */
  private trustedWorkerConnected(): boolean {
    for (const s of this.sessions.values()) if (s.role === 'worker' && s.trusted && !s.closed) return true
    return false
  }

  /** A job's main is ready to run: while no trusted worker is connected it waits, and its job's log says why (once). */
  private mainWaits(t: TaskRec): void {
    if (this.trustedWorkerConnected() || this.trustNoted.has(t.job)) return
    this.trustNoted.add(t.job)
    const job = this.jobs.get(t.job)!
    const line = `[coordinator] job ${job.id}: ${WAITING_FOR_TRUST}`
    this.logOf(job).add(line)
    for (const l of job.listeners) l({ type: 'log', line })
    this.opts.log(line)
  }

  /** Counts unresolved dependencies, and queues the task when there are none. */
  private enqueue(t: TaskRec): void {
    t.pendingDeps = 0
    for (const dep of t.spec.deps) {
      const o = this.objects.get(dep)
      if (!o || o.job !== t.job) {
        this.fail(t, serializeError(new ObjectLostError(`task ${t.spec.name} (${t.id}) needs object ${dep}, which this job does not have`, { objectId: dep, taskId: t.id })))
        return
      }
      if (o.state === 'error') { this.fail(t, o.error!); return }
      if (o.state === 'pending') { t.pendingDeps++; (o.waiters ??= []).push(t.id) }
    }
    if (t.pendingDeps === 0) this.makeReady(t)
    else this.setState(t, 'waiting')
  }

  private makeReady(t: TaskRec): void {
    if (t.quorum) { this.setState(t, 'running'); return } // its replicas run, not it
    this.setState(t, 'ready')
    if (t.main) this.mainWaits(t)
    if (t.spec.actor) { this.pumpLater.add(this.actors.get(t.spec.actor)!); this.requestTick(); return }
    this.ready.push(this.ownerOf(t.job), t.id)
    this.requestTick()
  }

  private setState(t: TaskRec, state: TaskState): void {
    if (t.state === state) return
    const counts = this.jobs.get(t.job)!.counts
    counts[t.state]--
    counts[state]++
    const wasDone = TERMINAL.has(t.state), nowDone = TERMINAL.has(state)
    t.state = state
    if (state === 'running') { t.startedAt = Date.now(); t.endedAt = undefined } else if (nowDone) t.endedAt = Date.now()
    if (nowDone && t.replicaOf) { const main = this.tasks.get(t.replicaOf); if (main) { this.judgeLater.add(main); this.requestTick() } }
    // A task holds its arguments until it ends; a lineage re-run holds them again.
    if (wasDone !== nowDone) this.pinDeps(t, nowDone ? -1 : 1)
  }

  private pinDeps(t: TaskRec, by: 1 | -1): void {
    for (const d of t.spec.deps) {
      const o = this.objects.get(d)
      if (!o) continue
      o.pins += by
      if (o.pins === 0 && o.freed) this.dispose(o)
    }
  }

  /** Objects their owner let go: disposed of now, or once the last task that needs them ends. */
  /** `job`: a worker frees on behalf of a task of that job, so only that job's objects (as reads, see mayRead). */
  private free(s: PeerSession, ids: string[], job?: string): void {
    for (const id of ids) {
      const owner = this.objects.get(id)?.job ?? ''
      if (s.canRead(owner) && (job === undefined || job === owner)) this.freeObject(id)
    }
  }

  private freeObject(id: string): void {
    const o = this.objects.get(id)
    if (!o || o.freed) return
    o.freed = true
    if (o.pins === 0) this.dispose(o)
  }

  /** Forgets an object's bytes everywhere; a later read gets a clear ObjectLostError. */
  private dispose(o: ObjRec): void {
    o.freed = true
    for (const pid of o.locations) {
      const h = this.sessions.get(pid)
      h?.holds.delete(o.id)
      h?.send({ t: 'drop', ids: [o.id] })
    }
    o.locations.clear()
    if (o.holders) { o.holders = undefined; this.opts.store.locations.removeAll(o.id) }
    o.inline = undefined
    // Built as data, not thrown: a job's end disposes every object it made, and a stack each costs more than the rest.
    const freedError: SerializedError = { type: 'ObjectLostError', message: `object ${o.id} was freed by its owner`, objectId: o.id }
    for (const p of o.pulls ?? []) this.sessions.get(p.peer)?.send({ t: 'pullFail', req: p.req, id: o.id, error: freedError })
    o.pulls = undefined
    if (o.state === 'pending') return // never made; its task's result will be dropped when it lands
    o.state = 'error'
    o.error = freedError
    this.opts.store.objects.put({ id: o.id, job: o.job, size: o.size, error: o.error })
  }

  private assign(t: TaskRec, s: PeerSession, sendRun: boolean, blocked = false): void {
    t.attempts++
    t.peer = s.id
    t.ranOn = s.id
    t.blocked = blocked
    this.setState(t, 'running')
    s.tasks.add(t.id)
    if (!blocked) { s.take(t.res); this.charge(t) }
    s.addJob(t.job)
    if (!sendRun) return
    const job = this.jobs.get(t.job)!
    // A task that sets no time limit gets its job's (the peer enforces it); a job's main waits on its whole job, so it gets none.
    const limit = t.main || t.spec.opts.timeoutMs !== undefined ? 0 : job.taskTimeoutMs ?? this.opts.defaultTaskTimeoutMs ?? DEFAULT_TASK_TIMEOUT_MS
    const spec = limit > 0 ? { ...t.spec, opts: { ...t.spec.opts, timeoutMs: limit } } : t.spec
    let fns: FnDef[] | undefined
    if (t.spec.fn) {
      const key = `${t.job}/${t.spec.fn}`
      if (!s.knownFns.has(key)) { s.knownFns.add(key); fns = [job.fns.get(t.spec.fn)!] }
    }
    const deps: ObjectInfo[] = t.spec.deps.map((d) => this.objectInfo(this.objects.get(d)!))
    const restore = t.spec.createsActor ? this.actors.get(t.id)?.checkpoint : undefined
    s.send({ t: 'run', spec, job: t.job, attempt: t.attempts, fns, deps, ...(restore ? { restore } : {}) })
  }

  private unassign(t: TaskRec): void {
    const s = t.peer ? this.sessions.get(t.peer) : undefined
    if (s && s.tasks.delete(t.id)) {
      if (!t.blocked) s.release(t.res)
      s.dropJob(t.job)
    }
    this.refund(t)
    t.peer = undefined
    t.blocked = false
  }

  /** The user a job's work counts against, for fair share: the token that owns the job. */
  private ownerOf(jobId: string): string { return this.jobs.get(jobId)?.owner ?? '' }

  /** A task holds a slot: its cpu counts against its user's share (once, however often this is called). */
  private charge(t: TaskRec): void {
    const cpu = t.res.cpu ?? 0
    if (t.charged || cpu <= 0) return
    t.charged = cpu
    this.ready.use(this.ownerOf(t.job), cpu)
  }

  private refund(t: TaskRec): void {
    if (!t.charged) return
    this.ready.use(this.ownerOf(t.job), -t.charged)
    t.charged = undefined
  }

  private done(s: PeerSession, taskId: string, results?: ResultOut[], error?: SerializedError, lost?: boolean, checkpoint?: Uint8Array): void {
    const t = this.tasks.get(taskId)
    if (!t) {
      if (s.resumed && Date.now() < this.orphansUntil && !lost && this.orphanDone.size < 100_000) { this.orphanDone.set(taskId, { peer: s.id, results, error }); return }
      throw new ProtocolError(`result for unknown task ${taskId}`)
    }
    // After a restart, a result may come from whoever ran the task before it (a peer that proved its
    // id, so one that was there before); only in the reconciliation window.
    const restoredWindow = t.restored && s.resumed && s.role === 'worker' && Date.now() < this.orphansUntil && !t.quorum && !(t.replicaOf && this.siblingPeers(t).has(s.id))
    if (!s.tasks.has(taskId) && t.ranOn !== s.id && !restoredWindow) throw new AuthError(`peer ${s.id} was never given task ${taskId}`)
    // No quorum checks a job's main: only a trusted peer's result counts.
    if (t.main && !s.trusted) throw new AuthError(`peer ${s.id} is not trusted with job ${t.job}'s main`)
    if (t.spec.actor && !s.tasks.has(taskId)) {
      // A late result from a host the actor has since left (it was restarted elsewhere) would undo its checkpoint.
      const a = this.actors.get(t.spec.actor)
      if (a?.peer && a.peer !== s.id) { this.counters.duplicateResults++; return }
    }
    if (TERMINAL.has(t.state) && !FAULTS.applyDuplicateResults) { this.counters.duplicateResults++; return }
    if (lost) {
      if (t.peer !== s.id) return
      this.unassign(t)
      if (t.spec.actor) this.actorCallLost(t, s.id); else this.retryOrFail(t, s.id)
      return
    }
    if (t.peer === s.id) this.unassign(t)
    else if (s.tasks.delete(taskId)) { s.release(t.res); s.dropJob(t.job) }
    if (error) {
      const maxRetries = t.spec.opts.maxRetries ?? (t.spec.actor ? 0 : 3)
      if (t.spec.opts.retryExceptions && t.attempts <= maxRetries && !t.spec.actor) {
        this.counters.tasksRetried++
        this.unassign(t)
        this.enqueue(t)
        return
      }
      const remote: SerializedError = {
        type: 'TaskError', message: `${error.type}${error.code ? ` [${error.code}]` : ''}: ${error.message}`, remoteStack: error.stack ?? error.remoteStack ?? '',
        taskId: t.id, taskName: t.spec.name, peerId: s.id,
      }
      this.fail(t, remote)
      return
    }
    const n = t.spec.opts.numReturns ?? 1
    if (!results || results.length !== n) {
      this.fail(t, { type: 'TaskError', message: `returned ${results?.length ?? 0} values; numReturns is ${n}`, taskId: t.id, taskName: t.spec.name, peerId: s.id })
      return
    }
    if (t.state === 'running' && t.peer && t.peer !== s.id) {
      // Another attempt still runs elsewhere; this result wins, so stop that one.
      const other = this.sessions.get(t.peer)
      this.unassign(t)
      other?.send({ t: 'cancelTask', task: t.id, reason: 'a result was already recorded' })
    }
    if (checkpoint && t.spec.actor) {
      const a = this.actors.get(t.spec.actor)!
      if (checkpoint.length > MAX_CHECKPOINT_BYTES) {
        this.fail(t, serializeError(new LimitError('maxCheckpointBytes', `actor ${a.name} (${a.id}): its checkpoint after ${t.spec.name} is ${checkpoint.length} bytes; the maxCheckpointBytes limit is ${MAX_CHECKPOINT_BYTES} (keep big state in objects, and refs to them in the checkpoint)`)))
        return
      }
      // Recorded in the same commit as the call's result: a restart resumes exactly after the last recorded call.
      a.checkpoint = checkpoint
      this.opts.store.actors.put(this.actorRow(a))
    }
    this.finish(t, results, s)
  }

  /** Records a task's results: from the peer `s` that ran it, or (no `s`) a quorum's inline ones. */
  private finish(t: TaskRec, results: ResultOut[], s?: PeerSession): void {
    const n = t.spec.opts.numReturns ?? 1
    this.setState(t, 'finished')
    if (s) s.tasksDone++
    this.counters.tasksFinished++
    if (n === 1 && results[0].inline) this.opts.store.tasks.finish(t.id, t.attempts, { size: results[0].size, inline: results[0].inline })
    else this.opts.store.tasks.setState(t.id, 'finished', t.attempts)
    for (let i = 0; i < n; i++) {
      const o = this.objects.get(returnId(t.id, i))!
      const r = results[i]
      o.size = r.size
      o.error = undefined
      if (r.inline) o.inline = r.inline
      else { this.addLocation(o, s!); o.hash = r.hash }
      if (n > 1 || !r.inline) this.opts.store.objects.put({ id: o.id, job: o.job, size: o.size, inline: o.inline, hash: o.hash })
      this.objectReady(o, 'ready')
      if (o.freed && o.pins === 0) this.dispose(o)
    }
    if (t.spec.createsActor) {
      const a = this.actors.get(t.id)!
      a.state = 'alive'
      this.host(a, s!)
    }
    if (t.spec.actor) { const a = this.actors.get(t.spec.actor)!; a.inflight.delete(t.id); this.pumpLater.add(a) }
    if (t.main) this.endBundleJob(this.jobs.get(t.job)!, 'finished')
  }

  private fail(t: TaskRec, err: SerializedError, state: TaskState = 'failed'): void {
    if (TERMINAL.has(t.state)) return
    this.unassign(t)
    this.setState(t, state)
    t.error = err
    this.opts.store.tasks.setState(t.id, state, t.attempts, err)
    const n = t.spec.opts.numReturns ?? 1
    for (let i = 0; i < n; i++) {
      const o = this.objects.get(returnId(t.id, i))!
      o.error = err
      this.opts.store.objects.put({ id: o.id, job: o.job, size: 0, error: err })
      this.objectReady(o, 'error')
    }
    if (t.spec.createsActor) this.actorDead(this.actors.get(t.id)!, err)
    if (t.spec.actor) { const a = this.actors.get(t.spec.actor); if (a) { a.inflight.delete(t.id); this.pumpLater.add(a) } }
    if (t.main) this.endBundleJob(this.jobs.get(t.job)!, state === 'cancelled' ? 'cancelled' : 'failed', err)
  }

  /** A bundle job ends with its main: what it left running (child tasks, actors) is cancelled with it. */
  private endBundleJob(job: JobRec, state: 'finished' | 'failed' | 'cancelled', err?: SerializedError): void {
    if (job.state !== 'running') return
    this.cancelJobWork(job, `its job ${state}`)
    this.finishJob(job, state, err)
  }

  private retryOrFail(t: TaskRec, deadPeer: string): void {
    const maxRetries = t.spec.opts.maxRetries ?? (t.spec.actor ? 0 : 3)
    if (t.attempts <= maxRetries && !FAULTS.failLostPeerTasks) {
      this.counters.tasksRetried++
      this.enqueue(t)
      return
    }
    this.fail(t, serializeError(new PeerDiedError(
      `peer ${deadPeer} died while running task ${t.spec.name} (${t.id}), and it has run ${t.attempts} time(s) (maxRetries ${maxRetries}). ` +
      'Raise maxRetries, or look at why peers are leaving.', { taskId: t.id, taskName: t.spec.name, peerId: deadPeer })))
  }

  // ------------------------------------------------------------------ objects

  private addLocation(o: ObjRec, s: PeerSession): void {
    o.locations.add(s.id)
    s.holds.add(o.id)
    if (o.holders?.has(s.id)) return
    ;(o.holders ??= new Set()).add(s.id)
    this.opts.store.locations.put({ object: o.id, peer: s.id })
  }

  /** The peer no longer holds the object's bytes (it evicted them, or could not serve them). */
  private removeLocation(o: ObjRec, peer: string): void {
    o.locations.delete(peer)
    this.sessions.get(peer)?.holds.delete(o.id)
    if (o.holders?.delete(peer)) this.opts.store.locations.remove({ object: o.id, peer })
  }

  /** What a peer learns of an object; `job` names its job (peers keep what they learn per job). */
  private objectInfo(o: ObjRec): ObjectInfo {
    const info: ObjectInfo = { id: o.id, job: o.job, size: o.size }
    if (o.inline) info.inline = o.inline
    if (o.error) info.error = o.error
    return info
  }

  private objectReady(o: ObjRec, state: 'ready' | 'error'): void {
    o.state = state
    if (o.waiters) {
      const waiters = o.waiters
      o.waiters = undefined
      for (const tid of waiters) {
        const t = this.tasks.get(tid)
        if (!t || t.state !== 'waiting') continue
        if (state === 'error') this.fail(t, o.error!)
        else if (--t.pendingDeps === 0) this.makeReady(t)
      }
    }
    if (o.subscribers) {
      const info = this.objectInfo(o)
      for (const pid of o.subscribers) {
        const s = this.sessions.get(pid)
        if (s) { s.send({ t: 'obj', info }); s.subscriptions.delete(o.id) }
      }
      o.subscribers = undefined
    }
    if (o.pulls) {
      const pulls = o.pulls
      o.pulls = undefined
      for (const p of pulls) { const s = this.sessions.get(p.peer); if (s) this.pull(s, p.req, o.id, p.relay, p.job) }
    }
  }

  /** The last copy of an object is gone: rebuild it from lineage, or tell its readers it is lost. */
  private objectLost(o: ObjRec): void {
    const tid = taskOfObject(o.id)
    const t = tid ? this.tasks.get(tid) : undefined
    for (const pid of o.locations) if (!this.sessions.has(pid)) o.locations.delete(pid)
    o.state = 'pending'
    if (t && !TERMINAL.has(t.state)) return // its task is already running again (a sibling result started the rebuild)
    if (!t && !this.putGrace.has(o.id)) {
      // A put's holder may only have blipped: give it a heartbeat's time to come back with the bytes.
      this.putGrace.set(o.id, setTimeout(() => {
        this.putGrace.delete(o.id)
        if (o.state === 'pending' && o.locations.size === 0) this.putLost(o)
        this.requestTick()
      }, this.opts.heartbeatTimeoutMs).unref())
      return
    }
    if (t && t.state === 'finished' && !t.spec.actor && !t.spec.createsActor) {
      const maxRetries = t.spec.opts.maxRetries ?? 3
      if (t.attempts <= maxRetries) {
        this.opts.log(`object ${o.id} lost with its last holder; re-running task ${t.spec.name} (${t.id}) from lineage`)
        for (let i = 0; i < (t.spec.opts.numReturns ?? 1); i++) {
          const r = this.objects.get(returnId(t.id, i))!
          if (!r.inline && r.locations.size === 0) r.state = 'pending'
        }
        this.counters.tasksRetried++
        // Out of 'finished' first: if an input of the rebuild is gone too, fail() then settles every result.
        this.setState(t, 'waiting')
        this.enqueue(t)
        return
      }
    }
    if (t) {
      this.lostForGood(o, `every peer holding it left, and task ${t.spec.name} (${t.id}) has no retries left to rebuild it`)
    }
  }

  private putLost(o: ObjRec): void {
    this.lostForGood(o, 'the peer that put it left, and a put object has no lineage to rebuild it from. Put it again, or keep its driver connected')
  }

  private lostForGood(o: ObjRec, why: string): void {
    o.error = serializeError(new ObjectLostError(`object ${o.id} was lost: ${why}.`, { objectId: o.id }))
    this.opts.store.objects.put({ id: o.id, job: o.job, size: o.size, error: o.error })
    this.objectReady(o, 'error')
  }

  /**
   * May `s` read `o`? With `job` (a worker asking for a task of that job: sub.job, pull.job), only
   * that job's objects, and only while it has work of that job; without, an object of any job it
   * has work of (a driver: its own job's). Either way, a copy it was asked to keep (`replicate`).
   */
  private mayRead(s: PeerSession, o: ObjRec, job?: string): boolean {
    if (o.replicateTo?.has(s.id) && (job === undefined || job === o.job)) return true
    return job !== undefined ? o.job === job && s.canRead(job) : s.canRead(o.job)
  }

  private subscribe(s: PeerSession, id: string, job?: string): void {
    const o = this.objects.get(id)
    if (!o) {
      s.send({ t: 'obj', info: { id, job: job ?? s.jobId, size: 0, error: serializeError(new ObjectLostError(`object ${id} is unknown to the coordinator`, { objectId: id })) } })
      return
    }
    if (!(job === undefined ? s.canRead(o.job) : this.mayRead(s, o, job))) {
      // A refusal names the job that asked (not the object's: that is not this peer's to know).
      s.send({ t: 'obj', info: { id, job: job ?? s.jobId, size: 0, error: serializeError(new AuthError(`peer ${s.id} may not read object ${id}${job ? ` for job ${job}` : ''}`, { objectId: id })) } })
      return
    }
    if (o.state !== 'pending') { s.send({ t: 'obj', info: this.objectInfo(o) }); return }
    ;(o.subscribers ??= new Set()).add(s.id)
    s.subscriptions.add(id)
  }

  private put(s: PeerSession, id: string, size: number, inline: Uint8Array | undefined, parent?: string, hash?: string, replicate?: number): void {
    const job = this.jobFor(s, parent)
    const existing = this.objects.get(id)
    if (existing) {
      if (existing.job === job.id) return // a replay
      throw new ProtocolError(`object id ${id} is taken`)
    }
    if (++job.puts > this.opts.quotas.maxObjectsPerJob) throw new LimitError('maxObjectsPerJob', `job ${job.id} has put ${job.puts - 1} objects; the maxObjectsPerJob limit is ${this.opts.quotas.maxObjectsPerJob}. Object ${id} was refused`)
    if (!id.startsWith('o.')) throw new ProtocolError(`put ids start with 'o.' (got ${id})`)
    const o: ObjRec = { id, job: job.id, size, state: 'pending', locations: new Set(), pins: 0 }
    this.objects.set(id, o)
    if (inline) o.inline = inline
    else { this.addLocation(o, s); o.hash = hash }
    this.opts.store.objects.put({ id, job: job.id, size, inline, hash })
    this.objectReady(o, 'ready')
    if (!inline && replicate && replicate > 1) this.replicate(o, replicate - 1)
  }

  /** Asks `copies` other workers, the least loaded, to fetch and keep the object. */
  private replicate(o: ObjRec, copies: number): void {
    const targets = [...this.sessions.values()]
      .filter((p) => p.role === 'worker' && !p.closed && !p.quarantined && !o.locations.has(p.id))
      .sort((a, b) => a.load() - b.load()).slice(0, copies)
    if (targets.length < copies) this.opts.log(`object ${o.id} asked for ${copies} more copies; ${targets.length} other worker(s) can keep one`)
    for (const p of targets) {
      (o.replicateTo ??= new Set()).add(p.id)
      p.send({ t: 'replicate', infos: [this.objectInfo(o)] })
    }
  }

  // ------------------------------------------------------------------ relay

  private pull(s: PeerSession, req: number, id: string, relay?: boolean, job?: string): void {
    const o = this.objects.get(id)
    if (!o || !this.mayRead(s, o, job)) {
      s.send({ t: 'pullFail', req, id, error: serializeError(new AuthError(`peer ${s.id} may not read object ${id}${job ? ` for job ${job}` : ''}`, { objectId: id })) })
      return
    }
    if (o.state === 'error') { s.send({ t: 'pullFail', req, id, error: o.error! }); return }
    if (o.state === 'pending') { (o.pulls ??= []).push({ peer: s.id, req, relay, job }); return }
    if (o.inline) { s.send({ t: 'chunk', req, seq: 0, data: o.inline, last: true, size: o.size }); return }
    if (!relay && s.p2p && this.planDirect(s, req, o)) return
    this.startRelay({ requester: s.id, req, holder: '', id, tried: new Set() })
  }

  /** Tells the reader which peers hold the object, each with a grant to read it there; false if none can serve it directly. */
  private planDirect(s: PeerSession, req: number, o: ObjRec): boolean {
    const holders = [...o.locations].map((p) => this.sessions.get(p)).filter((h): h is PeerSession => !!h && h.p2p && h.id !== s.id)
    if (holders.length === 0) return false
    holders.sort((a, b) => a.load() - b.load())
    ;(o.sentTo ??= new Set()).add(s.id)
    for (const h of holders) this.links.pair(s.id, h.id)
    const exp = Date.now() + 60_000
    s.send({
      t: 'pullPlan', req, id: o.id, size: o.size, hash: o.hash,
      holders: holders.map((h) => {
        const g = { obj: o.id, job: o.job, to: s.id, holder: h.id, exp }
        return { peer: h.id, grant: { ...g, sig: createHmac('sha256', h.grantKey).update(grantPayload(g)).digest('hex') } }
      }),
    })
    return true
  }

  private startRelay(r: Relay): void {
    const o = this.objects.get(r.id)
    const requester = this.sessions.get(r.requester)
    if (!o || !requester) return
    let holder: PeerSession | undefined
    for (const pid of o.locations) {
      const h = this.sessions.get(pid)
      if (h && pid !== r.requester && !r.tried.has(pid) && (!holder || h.load() < holder.load())) holder = h
    }
    if (!holder) {
      if (o.locations.has(r.requester)) return // it made the object itself meanwhile, and answers its own pull
      // No live copy: wait for one (a reconnecting holder, or a rebuild from lineage); the pull is answered then.
      ;(o.pulls ??= []).push({ peer: r.requester, req: r.req, relay: true })
      if (!this.reconcileUntil && o.state === 'ready') this.objectLost(o)
      return
    }
    r.holder = holder.id
    r.tried.add(holder.id)
    ;(o.sentTo ??= new Set()).add(r.requester)
    const rid = this.nextRelay++
    this.relays.set(rid, r)
    holder.send({ t: 'serve', req: rid, id: r.id })
  }

  private retryPull(r: Relay): void { this.startRelay(r) }

  private chunk(s: PeerSession, rid: number, seq: number, data: Uint8Array, last: boolean, size?: number): void {
    const r = this.relays.get(rid)
    if (!r || r.holder !== s.id) return // an aborted relay
    const requester = this.sessions.get(r.requester)
    if (!requester) { this.relays.delete(rid); return }
    const o = this.objects.get(r.id)
    // Size and hash come from the coordinator's record (the producer's word), not from the holder.
    requester.send({ t: 'chunk', req: r.req, seq, data, last, size: o?.size ?? size, hash: last ? o?.hash : undefined })
    this.counters.relayedBytes += data.byteLength
    if (last) this.relays.delete(rid)
  }

  private serveFail(s: PeerSession, rid: number): void {
    const r = this.relays.get(rid)
    if (!r || r.holder !== s.id) return
    this.relays.delete(rid)
    const o = this.objects.get(r.id)
    if (o) this.removeLocation(o, s.id)
    this.retryPull(r)
  }

  // ------------------------------------------------------------------ actors

  private actorRow(a: ActorRec): ActorRow {
    return { id: a.id, job: a.job, name: a.name, state: a.state, peer: a.peer, restarts: a.restarts, checkpoint: a.checkpoint }
  }

  /** Dispatches an actor's ready calls in submission order; stops at the first that still waits. */
  private pumpActor(a: ActorRec): void {
    if (a.state !== 'alive') return
    const s = a.peer ? this.sessions.get(a.peer) : undefined
    if (!s) return
    while (a.queue.length > 0) {
      const t = this.tasks.get(a.queue[0])
      if (!t || TERMINAL.has(t.state)) { a.queue.shift(); continue }
      if (t.state !== 'ready') break
      a.queue.shift()
      a.inflight.add(t.id)
      this.assign(t, s, true)
    }
  }

  private actorCallLost(t: TaskRec, deadPeer: string): void {
    const a = this.actors.get(t.spec.actor!)!
    a.inflight.delete(t.id)
    const maxRetries = t.spec.opts.maxRetries ?? 0
    if (t.attempts <= maxRetries && (a.state === 'alive' || a.restarts < a.maxRestarts)) {
      // Back into the queue at its place in submission order, so the restarted actor sees calls in order.
      let i = 0
      while (i < a.queue.length && (this.tasks.get(a.queue[i])?.seq ?? -1) < t.seq) i++
      a.queue.splice(i, 0, t.id)
      this.setState(t, 'waiting')
      this.enqueue(t)
    } else {
      this.fail(t, serializeError(new PeerDiedError(
        `actor ${a.name} (${a.id}) died with peer ${deadPeer} while running ${t.spec.name}. ` +
        'Give the call maxRetries and the actor maxRestarts to have it re-run.', { taskId: t.id, taskName: t.spec.name, peerId: deadPeer })))
    }
  }

  /**
   * An actor now lives on `s`. Resources its creator asked for explicitly are held for the actor's
   * life, as in Ray (the default, none, lets any number of actors share a peer).
   */
  private host(a: ActorRec, s: PeerSession): void {
    a.peer = s.id
    // A repeated claim (a hello listing the actor twice) must not take its resources twice.
    if (!s.actors.has(a.id)) { s.actors.add(a.id); s.take(this.actorResources(a)); this.chargeActor(a, true) }
    s.addJob(a.job)
    this.opts.store.actors.put(this.actorRow(a))
    this.pumpLater.add(a)
  }

  private unhost(aid: string, s: PeerSession): void {
    const a = this.actors.get(aid)
    if (a && s.actors.delete(aid)) s.release(this.actorResources(a))
    if (a) this.chargeActor(a, false)
  }

  /** An actor's resources, held for its life, count against its user's share while it is hosted. */
  private chargeActor(a: ActorRec, hosted: boolean): void {
    const cpu = hosted ? this.actorResources(a).cpu ?? 0 : 0
    if ((a.charged ?? 0) === cpu) return
    this.ready.use(this.ownerOf(a.job), cpu - (a.charged ?? 0))
    a.charged = cpu || undefined
  }

  private actorResources(a: ActorRec): Record<string, number> {
    return this.tasks.get(a.id)?.spec.opts.resources ?? NO_RESOURCES
  }

  private actorLost(aid: string, deadPeer: string): void {
    const a = this.actors.get(aid)
    if (!a || a.state === 'dead') return
    a.peer = undefined
    this.chargeActor(a, false)
    const creation = this.tasks.get(a.id)!
    if (a.restarts < a.maxRestarts) {
      a.restarts++
      a.state = 'restarting'
      this.opts.log(`actor ${a.name} (${a.id}) lost with peer ${deadPeer}; restart ${a.restarts} of ${a.maxRestarts}`)
      this.opts.store.actors.put(this.actorRow(a))
      const returned = this.objects.get(returnId(creation.id))!
      returned.state = 'pending'
      if (creation.peer) this.unassign(creation)
      this.setState(creation, 'waiting')
      creation.attempts = 0
      this.opts.store.tasks.setState(creation.id, 'waiting', 0)
      this.enqueue(creation)
      return
    }
    this.actorDead(a, serializeError(new PeerDiedError(
      `actor ${a.name} (${a.id}) died with peer ${deadPeer} and has no restarts left (maxRestarts ${a.maxRestarts})`, { peerId: deadPeer })))
  }

  private actorDead(a: ActorRec, err: SerializedError): void {
    if (a.state === 'dead') return
    a.state = 'dead'
    a.deathError = err
    const host = a.peer ? this.sessions.get(a.peer) : undefined
    if (host) this.unhost(a.id, host)
    this.opts.store.actors.put(this.actorRow(a))
    const calls = [...a.inflight, ...a.queue]
    a.inflight.clear()
    a.queue = []
    for (const tid of calls) { const t = this.tasks.get(tid); if (t) this.fail(t, err) }
  }

  // ------------------------------------------------------------------ cancel, blocking, logs

  /** Cancels a task; for an actor's id (its creating task's), ends the actor too, as `grid.kill` asks. */
  private cancelFrom(s: PeerSession, tid: string, job?: string): void {
    const t = this.tasks.get(tid)
    if (!t) return
    // A worker cancels for a task of `job`: one job on a shared peer must not cancel another's work.
    if (!s.canRead(t.job) || (job !== undefined && job !== t.job)) throw new AuthError(`peer ${s.id} may not cancel task ${tid}${job ? ` for job ${job}` : ''}`)
    this.cancelTask(t, 'cancelled by its job')
    const a = this.actors.get(tid)
    if (a && a.state !== 'dead') this.endActor(a, 'killed by its job')
  }

  private endActor(a: ActorRec, reason: string): void {
    if (a.peer) this.sessions.get(a.peer)?.send({ t: 'cancelTask', task: a.id, reason })
    this.actorDead(a, serializeError(new CancelledError(`actor ${a.name} (${a.id}) ended: ${reason}`)))
  }

  cancelTask(t: TaskRec, reason: string): void {
    if (TERMINAL.has(t.state)) return
    for (const id of t.quorum?.replicas ?? []) { const r = this.tasks.get(id); if (r) this.cancelTask(r, reason) }
    if (t.state === 'running' && t.peer) this.sessions.get(t.peer)?.send({ t: 'cancelTask', task: t.id, reason })
    if (t.spec.createsActor) {
      const a = this.actors.get(t.id)
      if (a?.peer) this.sessions.get(a.peer)?.send({ t: 'cancelTask', task: a.id, reason })
    }
    this.fail(t, serializeError(new CancelledError(`task ${t.spec.name} (${t.id}) was cancelled: ${reason}`, { taskId: t.id, taskName: t.spec.name })), 'cancelled')
  }

  private blocked(s: PeerSession, tid: string, blocked: boolean): void {
    const t = this.tasks.get(tid)
    // An actor being created keeps its slot while it waits (for its arguments, say): the slot is its for life.
    if (!t || t.peer !== s.id || t.blocked === blocked || t.spec.createsActor) return
    t.blocked = blocked
    // A task waiting in `get` holds no slot: another task (of any user) may be placed there meanwhile.
    if (blocked) { s.release(t.res); this.refund(t) } else { s.take(t.res); this.charge(t) }
  }

  private taskLog(s: PeerSession, tid: string, lines: string[]): void {
    const t = this.tasks.get(tid)
    if (!t || (t.peer !== s.id && !s.tasks.has(tid))) return
    const job = this.jobs.get(t.job)!
    // Job code wrote these lines: each is cut to size, and the job keeps only its most recent ones (job-log.ts).
    const clipped = lines.map((line) => clip(line, JOB_TEXT_LIMITS.logLineChars))
    const log = this.logOf(job)
    for (const line of clipped) {
      const full = `[${t.spec.name} ${t.id} @ ${s.id}] ${line}`
      log.add(full)
      for (const l of job.listeners) l({ type: 'log', line: full })
    }
    const driver = job.driverPeer ? this.sessions.get(job.driverPeer) : undefined
    driver?.send({ t: 'tlog', task: tid, name: t.spec.name, peer: s.id, lines: clipped })
  }

  // ------------------------------------------------------------------ jobs

  private createJob(name: string, owner: string, bundle?: string, jobOpts: JobOptions = {}): JobRec {
    const { taskTimeoutMs } = jobOpts
    if (taskTimeoutMs !== undefined && !(typeof taskTimeoutMs === 'number' && taskTimeoutMs >= 0 && taskTimeoutMs <= MAX_TIMEOUT_MS)) {
      throw new ProtocolError(`taskTimeoutMs must be a number of milliseconds from 0 (no limit) to ${MAX_TIMEOUT_MS}`)
    }
    const job: JobRec = {
      id: newJobId(), name, state: 'running', createdAt: Date.now(), bundle, owner, taskTimeoutMs,
      fns: new Map(), tasks: [], counts: emptyCounts(), listeners: new Set(), puts: 0,
    }
    this.jobs.set(job.id, job)
    this.opts.store.jobs.put(this.jobRow(job))
    return job
  }

  /** A job from an uploaded bundle: its default export runs as the job's main task. */
  createBundleJob(bundleHash: string, name: string, args: Uint8Array, owner: string, opts: { resources?: Record<string, number>; capabilities?: string[] } & JobOptions = {}): JobRec {
    const { taskTimeoutMs, ...placement } = opts
    const job = this.createJob(name, owner, bundleHash, { taskTimeoutMs })
    const def: FnDef = { id: `${bundleHash}#default`, kind: 'bundle', name: 'main', bundle: bundleHash, export: 'default' }
    job.fns.set(def.id, def)
    this.opts.store.fns.put(job.id, def)
    const spec: TaskSpec = { id: `t.${job.id}.main`, name: `${name}:main`, fn: def.id, args, deps: [], opts: { ...placement, maxRetries: 3 } }
    job.rootTask = spec.id
    this.opts.store.jobs.put(this.jobRow(job))
    this.addTask(job, spec, true)
    this.requestTick()
    return job
  }

  private jobRow(j: JobRec): JobRow {
    return { id: j.id, name: j.name, state: j.state, createdAt: j.createdAt, finishedAt: j.finishedAt, rootTask: j.rootTask, bundle: j.bundle, error: j.error, owner: j.owner, ...(j.taskTimeoutMs !== undefined ? { taskTimeoutMs: j.taskTimeoutMs } : {}) }
  }

  private finishJob(job: JobRec, state: 'finished' | 'failed' | 'cancelled', err?: SerializedError): void {
    if (job.state !== 'running') return
    job.state = state
    job.finishedAt = Date.now()
    job.error = err
    // The job's objects go with it; its result stays for GET /api/jobs/:id.
    const result = job.rootTask ? returnId(job.rootTask) : undefined
    for (const o of this.objects.values()) if (o.job === job.id && o.id !== result && !o.freed) this.dispose(o)
    this.opts.store.jobs.put(this.jobRow(job))
    const info = this.jobInfo(job.id)!
    for (const l of job.listeners) l({ type: 'state', job: info })
  }

  private finishDriverJob(jobId: string): void {
    const job = this.jobs.get(jobId)
    if (!job || job.state !== 'running') return
    this.cancelJobWork(job, 'its driver disconnected')
    this.finishJob(job, 'finished')
  }

  private cancelJobWork(job: JobRec, reason: string): void {
    for (const tid of job.tasks) { const t = this.tasks.get(tid)!; this.cancelTask(t, reason) }
    for (const a of this.actors.values()) if (a.job === job.id && a.state !== 'dead') this.endActor(a, reason)
  }

  cancelJob(jobId: string): JobInfo | undefined {
    const job = this.jobs.get(jobId)
    if (!job) return undefined
    if (job.state === 'running') {
      this.cancelJobWork(job, 'job cancelled')
      this.finishJob(job, 'cancelled', serializeError(new CancelledError(`job ${job.id} was cancelled`)))
    }
    this.requestTick()
    return this.jobInfo(jobId)
  }

  jobInfo(jobId: string): JobInfo | undefined {
    const job = this.jobs.get(jobId)
    if (!job) return undefined
    const info: JobInfo = { id: job.id, name: job.name, state: job.state, createdAt: job.createdAt, finishedAt: job.finishedAt, tasks: { ...job.counts } }
    if (job.rootTask) {
      const o = this.objects.get(returnId(job.rootTask))
      if (o?.inline && o.state === 'ready') { try { info.result = decodeValue(o.inline) } catch { info.result = '<undecodable>' } }
      else if (o?.state === 'ready') info.result = { objectRef: o.id, size: o.size }
    }
    if (job.error) info.error = job.error
    const main = job.rootTask ? this.tasks.get(job.rootTask) : undefined
    if (main?.main && main.state === 'ready' && !this.trustedWorkerConnected()) info.waiting = WAITING_FOR_TRUST
    return info
  }

  jobTasks(jobId: string): TaskInfo[] | undefined {
    const job = this.jobs.get(jobId)
    if (!job) return undefined
    return job.tasks.map((id) => {
      const t = this.tasks.get(id)!
      const info: TaskInfo = { id, name: t.spec.name, state: t.state, attempts: t.attempts }
      if (t.peer ?? t.ranOn) info.peer = t.peer ?? t.ranOn
      if (t.spec.parent) info.parent = t.spec.parent
      if (t.spec.actor) info.actor = t.spec.actor
      if (t.error) info.error = t.error
      if (t.startedAt) info.startedAt = t.startedAt
      if (t.endedAt) info.endedAt = t.endedAt
      return info
    })
  }

  /** A job's objects that are still alive, with where their bytes are (at most `limit`). */
  jobObjects(jobId: string, limit = 1000): ObjectSummary[] | undefined {
    if (!this.jobs.has(jobId)) return undefined
    const out: ObjectSummary[] = []
    for (const o of this.objects.values()) {
      if (o.job !== jobId || o.freed) continue
      out.push({ id: o.id, state: o.state, size: o.size, inline: !!o.inline, holders: [...o.locations] })
      if (out.length >= limit) break
    }
    return out
  }

  jobActors(jobId: string): ActorSummary[] | undefined {
    if (!this.jobs.has(jobId)) return undefined
    return [...this.actors.values()].filter((a) => a.job === jobId)
      .map((a) => ({ id: a.id, name: a.name, state: a.state, peer: a.peer, restarts: a.restarts, queued: a.queue.length + a.inflight.size }))
  }

  /** A job's log, made with its first line. */
  private logOf(job: JobRec): JobLog {
    return job.log ??= new JobLog(this.opts.maxJobLogBytes ?? DEFAULT_MAX_JOB_LOG_BYTES, MAX_JOB_LOG_LINES)
  }

  /** A job's most recent log lines (within `maxJobLogBytes`), and how many older ones were dropped. */
  jobLogs(jobId: string): { lines: string[]; dropped: number } | undefined {
    const job = this.jobs.get(jobId)
    return job && { lines: job.log?.kept() ?? [], dropped: job.log?.dropped ?? 0 }
  }

  listenJob(jobId: string, l: (ev: JobEvent) => void): () => void {
    const job = this.jobs.get(jobId)
    if (!job) return () => {}
    job.listeners.add(l)
    return () => job.listeners.delete(l)
  }

  // ------------------------------------------------------------------ the turn

  requestTick(): void {
    if (this.tickQueued || this.closed) return
    this.tickQueued = true
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
    // Actors are pumped here, never mid-frame: a reconnecting peer's replayed results must land first.
    if (!this.reconcileUntil) {
      for (const m of this.judgeLater) { this.judgeLater.delete(m); this.judge(m) }
      for (const a of this.pumpLater) this.pumpActor(a)
      this.pumpLater.clear()
      this.schedule()
    }
    for (const s of this.sessions.values()) {
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
    for (const s of this.sessions.values()) if (s.durableSeen > s.durableCommitted) seen.push([s, s.durableSeen])
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
  private committing = false
  private commitAgain = false
  /** When commits began to fail (0: they do not). */
  private storeDownSince = 0

  /**
   * Places ready tasks, taken round-robin across users (fair-queue.ts). When the grid is
   * full, a user under their fair share (capacity / users with work) may still be placed,
   * over-committing a Node peer by at most one task per cpu slot: the peer runs it at once in an
   * executor of its own, so one user's endless tasks cannot starve another's.
   */
  private schedule(): void {
    const workers = this.sessions.values.bind(this.sessions)
    const fixed = this.opts.pipelineDepth
    const depth = fixed ? () => fixed : (peer: PeerSession) => peer.pipelineDepth(this.opts.pipelineTargetMs, this.opts.maxPipelineDepth)
    // A tab computes no more tasks than it offers (extras serve only blocked nesting): over-committing one only queues.
    const overDepth = (peer: PeerSession) => depth(peer) + (peer.kind === 'browser' ? 0 : 1)
    const q = this.ready
    let full = false
    let share: ((user: string) => boolean) | undefined
    const underShare = (user: string) => (share ??= this.underShareTest())(user)
    q.beginPass()
    for (let id = q.take(); id !== undefined; id = q.take()) {
      const t = this.tasks.get(id)
      if (!t || t.state !== 'ready') continue
      // An argument lost since the task was queued (its rebuild is under way): wait for it, holding no slot.
      if (t.spec.deps.some((d) => this.objects.get(d)?.state !== 'ready')) { this.enqueue(t); continue }
      if (!full && allFull(workers(), depth)) {
        full = true
        // A lone user is never under their share of a full grid; nor is anyone once even over-commits are spent.
        if (q.activeUsers() < 2 || allFull(workers(), overDepth)) { q.deferLane(); break }
      }
      const user = q.user
      if (full && (t.spec.createsActor || !underShare(user))) { q.deferLane(); continue }
      const held = this.heldBytes(t)
      // An actor keeps its resources for life, so it is placed only where they are free now (no pipelining).
      const avoid = t.replicaOf ? this.siblingPeers(t) : undefined
      const place = { resources: t.res, capabilities: t.spec.opts.capabilities ?? [], heldBytes: held, avoid, trusted: t.main }
      let peer = full ? undefined : pickPeer(place, workers(), t.spec.createsActor ? NO_PIPELINE : depth)
      if (!peer && !t.spec.createsActor && underShare(user)) peer = pickPeer(place, workers(), overDepth)
      if (!peer) { if (full) q.deferLane(); else q.keep(); continue }
      this.assign(t, peer, true)
    }
    q.endPass()
  }

  /** Is a user under their fair share: the cpu of the workers that take tasks now, over the users with work? */
  private underShareTest(): (user: string) => boolean {
    const users = this.ready.activeUsers()
    if (users < 2) return () => false
    let capacity = 0
    for (const s of this.sessions.values()) if (s.role === 'worker' && !s.closed && !s.paused && !s.quarantined) capacity += s.resources.cpu ?? 0
    const share = capacity / users
    return (user) => this.ready.inUse(user) < share
  }

  private heldBytes(t: TaskRec): Map<string, number> | undefined {
    let held: Map<string, number> | undefined
    for (const dep of t.spec.deps) {
      const o = this.objects.get(dep)
      if (!o || o.inline) continue
      for (const pid of o.locations) (held ??= new Map()).set(pid, (held.get(pid) ?? 0) + o.size)
    }
    return held
  }

  queuedTasks(): number { return this.ready.size }

  // ------------------------------------------------------------------ restart

  private loadFromStore(): void {
    const snap = this.opts.snapshot
    for (const b of snap.bundles) for (const owner of b.owners) this.bundleUploaded(b.hash, owner)
    for (const row of snap.jobs) {
      this.jobs.set(row.id, { ...row, fns: new Map(), tasks: [], counts: emptyCounts(), listeners: new Set(), puts: 0 })
    }
    for (const { job, def } of snap.fns) this.jobs.get(job)?.fns.set(def.id, def)
    for (const row of snap.objects) {
      this.objects.set(row.id, {
        id: row.id, job: row.job, size: row.size, state: row.error ? 'error' : 'ready', inline: row.inline, hash: row.hash, error: row.error, locations: new Set(), pins: 0,
      })
    }
    for (const row of snap.actors) {
      const spec = snap.tasks.find((t) => t.id === row.id)?.spec
      this.actors.set(row.id, { ...row, maxRestarts: spec?.opts.maxRestarts ?? 0, queue: [], inflight: new Set() })
      if (row.state === 'alive') this.unclaimedActors.add(row.id)
    }
    const unfinished: TaskRec[] = []
    for (const row of snap.tasks) {
      const job = this.jobs.get(row.job)
      if (!job) continue
      const res = row.spec.actor ? NO_RESOURCES : { cpu: row.spec.createsActor ? 0 : 1, ...row.spec.opts.resources }
      const t: TaskRec = {
        id: row.id, job: row.job, spec: row.spec, state: row.state, attempts: row.attempts, pendingDeps: 0, blocked: false,
        main: !!row.main, res, error: row.error, seq: this.nextSeq++,
      }
      this.tasks.set(t.id, t)
      job.tasks.push(t.id)
      job.counts[t.state]++
      const n = row.spec.opts.numReturns ?? 1
      for (let i = 0; i < n; i++) {
        const oid = returnId(t.id, i)
        if (!this.objects.has(oid)) this.objects.set(oid, { id: oid, job: t.job, size: 0, state: 'pending', locations: new Set(), pins: 0 })
      }
      if (TERMINAL.has(t.state) && !(FAULTS.restartReapplies && t.state === 'finished')) continue
      if (t.spec.actor) this.actors.get(t.spec.actor)?.queue.push(t.id)
      this.pinDeps(t, 1)
      unfinished.push(t)
    }
    // Replicas are tasks `<task>~<n>`: give them back to their task, which judges them again.
    for (const t of this.tasks.values()) {
      const cut = t.id.lastIndexOf('~')
      const main = cut > 0 ? this.tasks.get(t.id.slice(0, cut)) : undefined
      if (!main || main.job !== t.job || (main.spec.opts.replicas ?? 1) <= 1) continue
      const k = main.spec.opts.replicas!
      main.quorum ??= { replicas: [], need: Math.min(k, main.spec.opts.quorum ?? Math.floor(k / 2) + 1), max: k + 2 }
      main.quorum.replicas[Number(t.id.slice(cut + 1))] = t.id
      t.replicaOf = main.id
      if (!TERMINAL.has(main.state)) this.judgeLater.add(main)
    }
    for (const t of unfinished) { t.restored = true; this.setState(t, 'waiting'); this.enqueue(t) }
    // Drivers too: they hold the bytes of their large put objects.
    for (const p of snap.peers) {
      this.expectedPeers.add(p.id)
      if (p.reputation !== undefined) this.reputations.restore(p.id, p.reputation, !!p.quarantined)
      // Its id, kept for a peer that proves it with its secret.
      if (p.secretHash) this.identities.restore(p.id, { secretHash: p.secretHash, role: p.role, origin: p.origin ?? '' })
    }
    for (const o of snap.origins ?? []) this.reputations.restoreOrigin(o.origin, o.reputation, o.quarantined)
    // Who held what: only they may claim those objects back in their hello.
    for (const l of snap.locations ?? []) { const o = this.objects.get(l.object); if (o) (o.holders ??= new Set()).add(l.peer) }
    if (unfinished.length > 0 || this.unclaimedActors.size > 0 || this.expectedPeers.size > 0) {
      this.reconcileUntil = Date.now() + this.opts.reconcileMs
      this.orphansUntil = Date.now() + Math.max(60_000, this.opts.reconcileMs * 4)
      this.opts.log(`restored ${snap.jobs.length} job(s), ${snap.tasks.length} task(s); waiting up to ${this.opts.reconcileMs} ms for ${this.expectedPeers.size} peer(s) to reconnect`)
      this.reconcileTimer = setTimeout(() => this.endReconcile(), this.opts.reconcileMs)
    }
  }

  /** Peers had their chance to reclaim work after a restart; whatever is unclaimed is treated as lost. */
  private endReconcile(): void {
    if (!this.reconcileUntil) return
    this.reconcileUntil = 0
    clearTimeout(this.reconcileTimer)
    for (const aid of this.unclaimedActors) {
      const a = this.actors.get(aid)
      if (a && !(a.peer && this.sessions.get(a.peer)?.actors.has(aid))) this.actorLost(aid, a.peer ?? 'unknown (coordinator restarted)')
    }
    this.unclaimedActors.clear()
    for (const o of this.objects.values()) {
      if (o.state === 'ready' && !o.inline && o.locations.size === 0) this.objectLost(o)
    }
    for (const pid of this.expectedPeers) this.opts.store.peers.remove(pid)
    this.expectedPeers.clear()
    this.requestTick()
  }

  close(): void {
    this.closed = true
    clearInterval(this.heartbeatTimer)
    clearInterval(this.iceTimer)
    clearTimeout(this.reconcileTimer)
    clearTimeout(this.ackTimer)
    for (const t of this.putGrace.values()) clearTimeout(t)
  }
}
