/**
 * Scheduling (Ray's ClusterTaskManager): the ready queue, taken round-robin across users
 * (fair-queue.ts), and one pass per turn that asks a `SchedulingPolicy` where each ready
 * task goes. The policy answers with a peer, or why not: `busy` (it waits in its place),
 * `defer` (its user sits out the rest of the pass), `stop` (nothing more fits this pass).
 * A task that no connected peer could ever run is infeasible, which is not busy: its job
 * says so at once (infeasible.ts), and it runs when such a peer joins.
 */
import { FairQueue } from '../fair-queue.js'
import type { PeerSession } from '../peer-session.js'
import { InfeasibleWork } from './infeasible.js'
import type { JobManager } from './jobs.js'
import type { ObjectDirectory } from './objects.js'
import { NO_RESOURCES, WAITING_FOR_TRUST } from './options.js'
import type { PeerManager } from './peers.js'
import type { QuorumManager } from './quorum-manager.js'
import type { Recovery } from './recovery.js'
import type { TaskManager, TaskRec } from './tasks.js'

/** What a policy knows of the task it places. The scheduler reuses one such object for every task: a policy must not keep it. */
export interface PlacementRequest {
  resources: Record<string, number>
  capabilities: readonly string[]
  /** Only a trusted peer may run it (a job's main, which no quorum can check). */
  trusted: boolean
  /** An actor's creation: it keeps its resources for life, so it goes only where they are free now. */
  actor: boolean
  /** The user (the token that owns its job) it counts against, for fair share. */
  user: string
  /** Bytes of its non-inline arguments each peer holds (absent when it has none). */
  heldBytes?: Map<string, number>
  /** Peers it must not go to (where its other replicas run or ran). */
  avoid?: ReadonlySet<string>
}

/** Why a task was not placed: it waits in its place (`busy`), its user sits out the rest of the pass (`defer`), or the pass ends (`stop`). */
export type NotPlaced = 'busy' | 'defer' | 'stop'

/** How much of the grid each user holds now (fair-queue.ts keeps it). */
export interface FairShare {
  /** Users with work: tasks queued or cpu in use. */
  activeUsers(): number
  /** Cpu a user's tasks and actors hold on peers. */
  inUse(user: string): number
}

export interface SchedulingPolicy {
  /** A pass begins. `workers`: those that may take work now (PeerManager.schedulable); during the pass only the policy's own placements change their ledgers. */
  beginPass(workers: readonly PeerSession[], share: FairShare): void
  /** Where the task runs now, or why it does not. */
  place(req: PlacementRequest): PeerSession | NotPlaced
  /**
   * What the task needs that none of `candidates` (connected workers, paused ones too, that could
   * take work) could ever give it, one phrase each (`capability webgpu`, `gpu 2`, `a trusted
   * worker`); undefined when one of them could run it once it has room.
   */
  infeasible(req: PlacementRequest, candidates: readonly PeerSession[]): string[] | undefined
}

/** The need a job's main has when no trusted worker is connected (it runs only on one). */
export const TRUSTED_WORKER = 'a trusted worker'
const NO_CAPABILITIES: readonly string[] = []

export class Scheduler {
  /** Ready tasks, round-robin across users (fair-queue.ts). */
  private readonly ready = new FairQueue()
  private readonly infeasible = new InfeasibleWork()
  private readonly req: PlacementRequest = { resources: NO_RESOURCES, capabilities: NO_CAPABILITIES, trusted: false, actor: false, user: '' }
  private candidates: PeerSession[] = []
  private offers = ''
  /** The PeerManager epoch `candidates` and `offers` are of, and the one the infeasible tasks were last checked at. */
  private candidatesAt = -1
  private sweptAt = -1
  private tasks!: TaskManager
  private objects!: ObjectDirectory
  private quorum!: QuorumManager
  private recovery!: Recovery

  constructor(private readonly policy: SchedulingPolicy, private readonly peers: PeerManager, private readonly jobs: JobManager, private readonly requestTick: () => void) {}

  wire(m: { tasks: TaskManager; objects: ObjectDirectory; quorum: QuorumManager; recovery: Recovery }): void {
    ({ tasks: this.tasks, objects: this.objects, quorum: this.quorum, recovery: this.recovery } = m)
  }

  /** Tasks queued, counting ones that were cancelled meanwhile (they are dropped when taken). */
  get queued(): number { return this.ready.size }

  /** A task is ready: it queues under its job's owner, and its job hears at once if no connected peer could ever run it. */
  push(t: TaskRec): void {
    this.ready.push(this.jobs.ownerOf(t.job), t.id)
    if (!this.recovery.reconciling) this.check(t, this.requestOf(t, ''))
    this.requestTick()
  }

  /** A user's cpu in use grew (a task placed, an actor hosted) or shrank (it ended, blocked, or its peer left). */
  use(user: string, cpu: number): void { this.ready.use(user, cpu) }

  /** The task runs somewhere now: it is not infeasible any more. */
  placed(t: TaskRec): void {
    if (this.infeasible.size > 0) this.infeasible.remove(t.id)
  }

  /** A job's infeasible work, for JobInfo. */
  infeasibleOf(jobId: string): ReturnType<InfeasibleWork['ofJob']> {
    return this.infeasible.ofJob(jobId, (id) => { const t = this.tasks.get(id); return t?.state === 'ready' ? t.spec.name : undefined })
  }

  /** One pass over the ready queue: each task is placed where the policy says, keeps its place, or waits for the next pass. */
  schedule(): void {
    const q = this.ready
    if (q.size === 0) return
    if (this.infeasible.size > 0 && this.sweptAt !== this.peers.epoch) this.sweep()
    this.policy.beginPass(this.peers.workers(), q)
    q.beginPass()
    for (let id = q.take(); id !== undefined; id = q.take()) {
      const t = this.tasks.get(id)
      if (!t || t.state !== 'ready') { if (this.infeasible.size > 0) this.infeasible.remove(id); continue }
      // An argument lost since the task was queued (its rebuild is under way): wait for it, holding no slot.
      if (!this.objects.allReady(t.spec.deps)) { this.tasks.enqueue(t); continue }
      const req = this.requestOf(t, q.user)
      req.heldBytes = t.spec.deps.length > 0 ? this.objects.heldBytes(t.spec.deps) : undefined
      req.avoid = t.replicaOf ? this.quorum.siblingPeers(t) : undefined
      const where = this.policy.place(req)
      if (typeof where === 'object') { this.tasks.assign(t, where, true); continue }
      if (where === 'stop') { q.deferLane(); break }
      if (where === 'defer') { q.deferLane(); continue }
      q.keep()
      // Found infeasible before, it stays so until the peers change (then `sweep` looks again).
      if (!this.infeasible.has(t.id)) this.check(t, req)
    }
    q.endPass()
  }

  private requestOf(t: TaskRec, user: string): PlacementRequest {
    const r = this.req
    r.resources = t.res
    r.capabilities = t.spec.opts.capabilities ?? NO_CAPABILITIES
    r.trusted = t.main
    r.actor = !!t.spec.createsActor
    r.user = user
    r.heldBytes = undefined
    r.avoid = undefined
    return r
  }

  /** Infeasible is not busy: says at once (once per job and need) when no connected peer could ever run the task; forgets it when one could. */
  private check(t: TaskRec, req: PlacementRequest): void {
    const epoch = this.peers.epoch
    if (this.candidatesAt !== epoch) { this.candidates = this.peers.candidates(); this.offers = ''; this.candidatesAt = epoch }
    const needs = this.policy.infeasible(req, this.candidates)
    if (!needs) { this.placed(t); return }
    this.offers ||= this.peers.describeOffers()
    const key = needs.join(' and ')
    if (this.infeasible.join(t.id, t.job, key, this.offers)) return
    const trustOnly = t.main && key === TRUSTED_WORKER
    const message = trustOnly ? WAITING_FOR_TRUST
      : `task ${t.spec.name} (${t.id}) needs ${key}, which no connected worker offers (${this.offers}); it waits until such a worker joins`
    this.infeasible.open(t.job, key, needs, this.offers, message)
    this.infeasible.join(t.id, t.job, key, this.offers)
    this.jobs.warnOnce(t.job, key, message)
  }

  /** Peers came or went since the last pass: the infeasible tasks are checked again (a joining peer may run them now). */
  private sweep(): void {
    this.sweptAt = this.peers.epoch
    for (const id of this.infeasible.ids()) {
      const t = this.tasks.get(id)
      if (t?.state === 'ready') this.check(t, this.requestOf(t, ''))
      else this.infeasible.remove(id)
    }
  }
}
