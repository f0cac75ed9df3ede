/**
 * The actor table (Ray's GcsActorManager): each actor's queue of calls (run in submission
 * order, one peer at a time), where it is hosted and the resources it holds there for life,
 * restarts after its peer dies (`maxRestarts`), checkpoints, and its end. An actor created from
 * inside another actor's call is owned by it (actor-owners.ts) and ends when its owner ends for
 * good or is restarted; tasks such a call submitted are left to run.
 *
 * Calls are all sent to the host as soon as they are ready (in order): the executor runs them one
 * at a time, or up to the actor's `maxConcurrency` at once (executor-runtime.ts). Here each call in
 * flight is tracked on its own, whatever the concurrency, so a host's death loses each one (callLost).
 */
import {
  CancelledError, LimitError, MAX_CHECKPOINT_BYTES, PeerDiedError, returnId, serializeError,
  type ActorSummary, type Page, type SerializedError, type TaskSpec,
} from '@colony-grid/shared'
import { pageOf, type PageQuery } from '../paging.js'
import type { PeerSession } from '../peer-session.js'
import type { ActorRow, ActorState, StoreSnapshot } from '../store/types.js'
import { ActorOwners } from './actor-owners.js'
import type { JobManager, JobRec } from './jobs.js'
import type { ObjectDirectory } from './objects.js'
import { NO_RESOURCES, TERMINAL, type ControlOptions } from './options.js'
import type { PeerManager } from './peers.js'
import type { Scheduler } from './scheduling.js'
import { SeqList } from './seq-list.js'
import type { TaskResults } from './task-results.js'
import type { TaskManager, TaskRec } from './tasks.js'

export interface ActorRec extends ActorRow {
  maxRestarts: number; queue: string[]; inflight: Set<string>; deathError?: SerializedError; charged?: number
  /** The actor it was created from, whose fate it shares (TaskSpec.owner). */
  owner?: string
}

export const ACTOR_STATES: readonly ActorState[] = ['pending', 'alive', 'restarting', 'dead']

export class ActorManager {
  /** Bound: a running job's actors (by maxTasksPerJob, as each is a task), and finished jobs' until retention drops them. */
  private readonly actors = new Map<string, ActorRec>()
  /** Actors each peer hosts. Bound: connected peers' actors; a peer's entry goes when it leaves. */
  private readonly hosted = new Map<string, Set<string>>()
  /** Actors to dispatch calls of at the end of the turn (after a reconnecting peer's replayed results); cleared each turn. */
  private readonly pumpSoon = new Set<ActorRec>()
  private readonly owners = new ActorOwners()
  /** Each job's actors in the order they were made (GET /api/jobs/:id/actors pages them). Bound: as `actors`. */
  private readonly byJob = new Map<string, SeqList>()
  private nextSeq = 0
  private peers!: PeerManager
  private jobs!: JobManager
  private tasks!: TaskManager
  private results!: TaskResults
  private objects!: ObjectDirectory
  private scheduler!: Scheduler

  constructor(private readonly opts: ControlOptions) {}

  wire(m: { peers: PeerManager; jobs: JobManager; tasks: TaskManager; results: TaskResults; objects: ObjectDirectory; scheduler: Scheduler }): void {
    ({ peers: this.peers, jobs: this.jobs, tasks: this.tasks, results: this.results, objects: this.objects, scheduler: this.scheduler } = m)
  }

  /** Actors as the store kept them; returns those that were alive, for their hosts to claim back (recovery.ts). */
  initialize(snap: StoreSnapshot): string[] {
    const specs = new Map<string, TaskSpec>()
    if (snap.actors.length > 0) for (const t of snap.tasks) if (!specs.has(t.id)) specs.set(t.id, t.spec)
    const alive: string[] = []
    for (const row of snap.actors) {
      const spec = specs.get(row.id)
      this.actors.set(row.id, { ...row, maxRestarts: spec?.opts.maxRestarts ?? 0, queue: [], inflight: new Set(), owner: spec?.owner })
      this.list(row.id, row.job)
      this.owners.add(row.id, spec?.owner)
      if (row.state === 'alive') alive.push(row.id)
    }
    return alive
  }

  /** The actor that task `id` creates. */
  create(id: string, job: string, spec: TaskSpec): void {
    const a: ActorRec = { id, job, name: spec.name, state: 'pending', restarts: 0, maxRestarts: spec.opts.maxRestarts ?? 0, queue: [], inflight: new Set(), owner: spec.owner }
    this.actors.set(a.id, a)
    this.list(a.id, job)
    this.owners.add(a.id, a.owner)
    this.save(a)
  }

  /**
   * An actor's creation spec, with its owner: the actor whose call (or creation) `spec.parent` is,
   * in the same job. None when a driver or a plain task creates it. Written into the spec, which the
   * store keeps for the actor's life, so the owner is known after a restart, when `parent`'s own
   * record may be gone (a spent call).
   */
  withOwner(spec: TaskSpec, job: string): TaskSpec {
    const parent = spec.parent === undefined ? undefined : this.tasks.get(spec.parent)
    const owner = parent?.job === job ? parent.spec.actor ?? (parent.spec.createsActor ? parent.id : undefined) : undefined
    return owner !== undefined && this.actors.has(owner) ? { ...spec, owner } : spec
  }

  /** Why a creation fails at once: its owner ended before it came (a call of a killed actor still submitting). */
  orphanError(spec: TaskSpec): SerializedError | undefined {
    const owner = this.actors.get(spec.owner ?? '')
    if (owner?.state !== 'dead') return undefined
    return serializeError(new CancelledError(`actor ${spec.name} (${spec.id}) ended: ${ownerEnded(owner)}`))
  }

  inJob(actor: string, job: string): boolean { return this.actors.get(actor)?.job === job }
  queueCall(actor: string, task: string): void { this.actors.get(actor)?.queue.push(task) }
  /** A call that already ran while the coordinator was down leaves the queue. */
  unqueueCall(actor: string, task: string): void { const a = this.actors.get(actor)!; a.queue.splice(a.queue.indexOf(task), 1) }
  /** Why calls of an actor that has ended fail. */
  endedError(actor: string): SerializedError | undefined {
    const a = this.actors.get(actor)
    if (a?.state !== 'dead') return undefined
    return a.deathError ?? serializeError(new PeerDiedError(`actor ${a.name} (${a.id}) has ended`))
  }
  checkpointOf(actor: string): Uint8Array | undefined { return this.actors.get(actor)?.checkpoint }
  /** Does the actor live on another peer now? Then `peer`'s late result would undo its checkpoint. */
  hostedElsewhere(actor: string, peer: string): boolean { const a = this.actors.get(actor); return !!a?.peer && a.peer !== peer }

  pumpLater(actor: string): void { this.pumpSoon.add(this.actors.get(actor)!) }

  /** End of the turn: dispatch the ready calls of every actor that may have some. */
  pumpAll(): void {
    for (const a of this.pumpSoon) this.pump(a)
    this.pumpSoon.clear()
  }

  /** Dispatches an actor's ready calls in submission order; stops at the first that still waits. */
  private pump(a: ActorRec): void {
    if (a.state !== 'alive') return
    const s = this.peers.get(a.peer)
    if (!s) return
    while (a.queue.length > 0) {
      const t = this.tasks.get(a.queue[0])
      if (!t || TERMINAL.has(t.state)) { a.queue.shift(); continue }
      if (t.state !== 'ready') break
      a.queue.shift()
      a.inflight.add(t.id)
      this.tasks.assign(t, s, true)
    }
  }

  /** A call ended (finished or failed): the next may go. */
  callEnded(t: TaskRec): void {
    const a = this.actors.get(t.spec.actor!)
    if (a) { a.inflight.delete(t.id); this.pumpSoon.add(a) }
  }

  /** A call's peer (or executor) died under it: back into the queue in submission order, or it fails. */
  callLost(t: TaskRec, deadPeer: string): void {
    const a = this.actors.get(t.spec.actor!)!
    a.inflight.delete(t.id)
    const maxRetries = t.spec.opts.maxRetries ?? 0
    if (t.attempts <= maxRetries && (a.state === 'alive' || a.restarts < a.maxRestarts)) {
      // Back into the queue at its place in submission order, so the restarted actor sees calls in order.
      let i = 0
      while (i < a.queue.length && (this.tasks.get(a.queue[i])?.seq ?? -1) < t.seq) i++
      a.queue.splice(i, 0, t.id)
      this.tasks.setState(t, 'waiting')
      this.tasks.enqueue(t)
    } else {
      this.results.fail(t, serializeError(new PeerDiedError(
        `actor ${a.name} (${a.id}) died with peer ${deadPeer} while running ${t.spec.name}. ` +
        'Give the call maxRetries and the actor maxRestarts to have it re-run.', { taskId: t.id, taskName: t.spec.name, peerId: deadPeer })))
    }
  }

  /** Its creation finished on `s`: the actor lives there. */
  created(t: TaskRec, s: PeerSession): void {
    const a = this.actors.get(t.id)!
    a.state = 'alive'
    this.host(a, s)
  }

  /** Its creation failed: so do its calls. */
  creationFailed(actor: string, err: SerializedError): void { this.dead(this.actors.get(actor)!, err) }

  /** Returns the LimitError to fail the call with when the checkpoint is too large; records it otherwise. */
  recordCheckpoint(t: TaskRec, checkpoint: Uint8Array): SerializedError | undefined {
    const a = this.actors.get(t.spec.actor!)!
    if (checkpoint.length > MAX_CHECKPOINT_BYTES) {
      return serializeError(new LimitError('maxCheckpointBytes', `actor ${a.name} (${a.id}): its checkpoint after ${t.spec.name} is ${checkpoint.length} bytes; the maxCheckpointBytes limit is ${MAX_CHECKPOINT_BYTES} (keep big state in objects, and refs to them in the checkpoint)`))
    }
    a.checkpoint = checkpoint
    this.save(a)
    return undefined
  }

  /**
   * An actor now lives on `s`. Resources its creator asked for explicitly are held for the actor's
   * life, as in Ray (the default, none, lets any number of actors share a peer).
   */
  private host(a: ActorRec, s: PeerSession): void {
    a.peer = s.id
    let mine = this.hosted.get(s.id)
    if (!mine) this.hosted.set(s.id, mine = new Set())
    // A repeated claim (a hello listing the actor twice) must not take its resources twice.
    if (!mine.has(a.id)) { mine.add(a.id); s.take(this.resourcesOf(a)); this.charge(a, true) }
    s.addJob(a.job)
    this.save(a)
    this.pumpSoon.add(a)
  }

  private unhost(a: ActorRec, s: PeerSession): void {
    if (this.hosted.get(s.id)?.delete(a.id)) s.release(this.resourcesOf(a))
    this.charge(a, false)
  }

  /** An actor's resources, held for its life, count against its user's share while it is hosted. */
  private charge(a: ActorRec, hosted: boolean): void {
    const cpu = hosted ? this.resourcesOf(a).cpu ?? 0 : 0
    if ((a.charged ?? 0) === cpu) return
    this.scheduler.use(this.jobs.ownerOf(a.job), cpu - (a.charged ?? 0))
    a.charged = cpu || undefined
  }

  private resourcesOf(a: ActorRec): Record<string, number> {
    return this.tasks.get(a.id)?.spec.opts.resources ?? NO_RESOURCES
  }

  /** The executor hosting an actor died (`actorLost` from its peer). */
  lostOn(s: PeerSession, actor: string, reason: string): void {
    const a = this.actors.get(actor)
    if (!this.hosted.get(s.id)?.has(actor)) return
    if (a) this.unhost(a, s)
    this.opts.log(`actor ${actor} lost on ${s.id}: ${reason}`)
    this.lost(actor, s.id)
  }

  /** An actor's host is gone: restart it elsewhere while `maxRestarts` allows, else it ends. */
  private lost(aid: string, deadPeer: string): void {
    const a = this.actors.get(aid)
    if (!a || a.state === 'dead') return
    a.peer = undefined
    this.charge(a, false)
    const creation = this.tasks.get(a.id)!
    if (a.restarts < a.maxRestarts) {
      a.restarts++
      a.state = 'restarting'
      this.opts.log(`actor ${a.name} (${a.id}) lost with peer ${deadPeer}; restart ${a.restarts} of ${a.maxRestarts}`)
      this.save(a)
      this.objects.reopen(returnId(creation.id))
      this.tasks.rerun(creation)
      // The new instance starts afresh, and creates its own: the old one's would be orphans (Ray ends them too).
      this.endOwned(a, `its owner actor ${a.name} (${a.id}) was restarted`)
      return
    }
    this.dead(a, serializeError(new PeerDiedError(
      `actor ${a.name} (${a.id}) died with peer ${deadPeer} and has no restarts left (maxRestarts ${a.maxRestarts})`, { peerId: deadPeer })))
  }

  private dead(a: ActorRec, err: SerializedError): void {
    if (a.state === 'dead') return
    a.state = 'dead'
    a.deathError = err
    const host = this.peers.get(a.peer)
    if (host) this.unhost(a, host)
    this.save(a)
    const calls = [...a.inflight, ...a.queue]
    a.inflight.clear()
    a.queue = []
    for (const tid of calls) { const t = this.tasks.get(tid); if (t) this.results.fail(t, err) }
    this.endOwned(a, ownerEnded(a))
  }

  /** The actors `a` created end (and theirs, through `dead`): those not created yet have their creation cancelled. */
  private endOwned(a: ActorRec, reason: string): void {
    for (const id of this.owners.take(a.id)) {
      const child = this.actors.get(id)
      if (!child || child.state === 'dead') continue
      const creation = this.tasks.get(id)
      if (creation && !TERMINAL.has(creation.state)) this.tasks.cancel(creation, reason)
      this.kill(id, reason) // (cancelling its creation may have ended it already)
    }
  }

  private end(a: ActorRec, reason: string): void {
    this.peers.get(a.peer)?.send({ t: 'cancelTask', task: a.id, reason })
    this.dead(a, serializeError(new CancelledError(`actor ${a.name} (${a.id}) ended: ${reason}`)))
  }

  /** `grid.kill`: the actor ends. */
  kill(actor: string, reason: string): void {
    const a = this.actors.get(actor)
    if (a && a.state !== 'dead') this.end(a, reason)
  }

  /** Its creation is cancelled: its host, if any, is told to stop it. */
  stopCreation(actor: string, reason: string): void {
    const a = this.actors.get(actor)
    this.peers.get(a?.peer)?.send({ t: 'cancelTask', task: actor, reason })
  }

  /** `jobEnding`: the job's actors end with it. */
  jobEnding(job: JobRec, reason: string): void {
    for (const a of this.actors.values()) if (a.job === job.id && a.state !== 'dead') this.end(a, reason)
  }

  /** `peerRemoved`: its actors restart elsewhere, or end. */
  peerRemoved(s: PeerSession): void {
    const mine = this.hosted.get(s.id)
    if (!mine) return
    this.hosted.delete(s.id)
    for (const aid of mine) this.lost(aid, s.id)
  }

  /** A reconnecting peer still hosts an actor: keep it, unless it was restarted elsewhere meanwhile. `unclaimed`: it was alive before a restart. */
  claim(s: PeerSession, aid: string, unclaimed: boolean): boolean {
    const a = this.actors.get(aid)
    const claimable = a && a.state !== 'dead' && (unclaimed || a.peer === s.id) && !(a.peer && a.peer !== s.id && this.peers.has(a.peer))
    if (!a || !claimable) { s.send({ t: 'cancelTask', task: aid, reason: 'this actor was restarted elsewhere or has ended' }); return false }
    a.state = 'alive'
    this.host(a, s)
    return true
  }

  /** A reconnecting peer still runs a call: it is in flight there again, unless the actor lives elsewhere. */
  claimCall(t: TaskRec, s: PeerSession): boolean {
    const a = this.actors.get(t.spec.actor!)
    if (!a || (a.peer && a.peer !== s.id)) return false
    const i = a.queue.indexOf(t.id)
    if (i >= 0) a.queue.splice(i, 1)
    a.inflight.add(t.id)
    return true
  }

  /** After the reconciliation window: actors alive before the restart that no peer claimed back are lost. */
  sweepUnclaimed(ids: Iterable<string>): void {
    for (const aid of ids) {
      const a = this.actors.get(aid)
      if (a && !(a.peer && this.hosted.get(a.peer)?.has(aid))) this.lost(aid, a.peer ?? 'unknown (coordinator restarted)')
    }
  }

  /** Retention: a finished job's actor records go (all ended with it); returns their ids. */
  dropJob(jobId: string): string[] {
    const ids = [...this.actors.values()].filter((a) => a.job === jobId).map((a) => a.id)
    for (const id of ids) this.actors.delete(id)
    this.byJob.delete(jobId)
    this.owners.forget(ids)
    for (const a of this.pumpSoon) if (a.job === jobId) this.pumpSoon.delete(a)
    return ids
  }

  private list(id: string, job: string): void {
    let mine = this.byJob.get(job)
    if (!mine) this.byJob.set(job, mine = new SeqList())
    mine.push(id, this.nextSeq++)
  }

  /** A page of GET /api/jobs/:id/actors, in the order they were made; a state filter counts over the job's actors. */
  page(jobId: string, q: PageQuery<ActorState>): Page<ActorSummary> {
    const list = this.byJob.get(jobId)
    if (!list) return { items: [], total: 0, truncated: false }
    const states = q.states
    const match = states && ((i: number) => states.has(this.actors.get(list.idAt(i))!.state))
    let total = list.length
    if (match) { total = 0; for (let i = 0; i < list.length; i++) if (match(i)) total++ }
    return pageOf(list, q, total, (i) => {
      const a = this.actors.get(list.idAt(i))!
      return {
        id: a.id, name: a.name, state: a.state, peer: a.peer, restarts: a.restarts, queued: a.queue.length + a.inflight.size,
        ...(a.owner ? { owner: a.owner } : {}), ...(a.state === 'dead' && a.deathError ? { error: a.deathError } : {}),
      }
    }, match)
  }

  private save(a: ActorRec): void {
    this.opts.store.actors.put({ id: a.id, job: a.job, name: a.name, state: a.state, peer: a.peer, restarts: a.restarts, checkpoint: a.checkpoint })
  }
}

/** Why an actor's children end with it. */
function ownerEnded(owner: ActorRec): string { return `its owner actor ${owner.name} (${owner.id}) ended` }
