/**
 * Recovery (Ray's GcsInitData and the reconnect path): each manager initialises from the store
 * snapshot, in the order their tables refer to each other; then, for `reconcileMs`, peers that
 * come back claim what they still hold, run and host (a claim is also how any reconnecting
 * peer keeps its work). Results and running tasks reported for submits the store never
 * committed (orphans) wait for those submits' replay. When the window ends, whatever nobody
 * claimed is treated as lost. The window lives here and only here.
 */
import { FAULTS, PeerDiedError, serializeError, taskOfObject, type HelloMsg, type ResultOut, type SerializedError } from '@colony-grid/shared'
import type { PeerSession } from '../peer-session.js'
import type { StoreSnapshot } from '../store/types.js'
import type { ActorManager } from './actors.js'
import type { JobManager } from './jobs.js'
import type { ObjectDirectory } from './objects.js'
import { TERMINAL, type ControlOptions } from './options.js'
import type { PeerManager } from './peers.js'
import type { QuorumManager } from './quorum-manager.js'
import type { TaskResults } from './task-results.js'
import type { TaskManager, TaskRec } from './tasks.js'

interface Managers { peers: PeerManager; jobs: JobManager; objects: ObjectDirectory; actors: ActorManager; tasks: TaskManager; quorum: QuorumManager; results: TaskResults }

export class Recovery {
  /** Until then (ms since the epoch; 0: no window), peers may come back and claim their work; nothing is scheduled. */
  private reconcileUntil = 0
  /** Bound: the peers the store knew; cleared when the reconciliation window ends (as is the next one). */
  private readonly expectedPeers = new Set<string>()
  /** How many peers the store knew when the window opened (for /readyz: n of m back). */
  private expectedAtStart = 0
  private readonly unclaimedActors = new Set<string>()
  private reconcileTimer?: NodeJS.Timeout
  private orphansTimer?: NodeJS.Timeout
  /** Until then, results for unknown tasks may be orphans. */
  private orphansUntil = 0
  /**
   * After a restart: tasks a peer says it runs that the store never committed; claimed when their submit
   * is replayed. Bound: what connected peers run; a peer's go when it leaves, all at the window's end.
   */
  private readonly orphanRunning = new Map<string, string>()
  /** After a restart: results replayed for tasks whose submit the store never committed; applied when it is replayed. Bound: 100,000 (orphanFinished), cleared at the window's end. */
  private readonly orphanDone = new Map<string, { peer: string; results?: ResultOut[]; error?: SerializedError }>()
  private m!: Managers

  constructor(private readonly opts: ControlOptions, private readonly requestTick: () => void) {}

  wire(m: Managers): void { this.m = m }

  /** Is the window open (peers reclaiming their work; nothing scheduled yet)? */
  get reconciling(): boolean { return this.reconcileUntil !== 0 }
  /** The open window (undefined when none), for /readyz: until when (ms since the epoch), and how many of the peers the store knew are back. */
  get window(): { until: number; back: number; expected: number } | undefined {
    return this.reconcileUntil ? { until: this.reconcileUntil, back: this.expectedAtStart - this.expectedPeers.size, expected: this.expectedAtStart } : undefined
  }
  /** Soon after a restart, a submit may replay one that already ran, and a result may be for such a submit. */
  replaying(): boolean { return Date.now() < this.orphansUntil }

  /** Every manager takes its tables from the snapshot; unfinished tasks queue again, and the window opens if anything may be claimed. */
  initialize(snap: StoreSnapshot): void {
    const { peers, jobs, objects, actors, tasks, quorum } = this.m
    peers.initialize(snap)
    jobs.initialize(snap)
    objects.initialize(snap)
    for (const id of actors.initialize(snap)) this.unclaimedActors.add(id)
    const unfinished = tasks.initialize(snap, (id) => !!jobs.get(id), FAULTS.restartReapplies)
    quorum.initialize()
    // Drivers too: they hold the bytes of their large put objects.
    for (const p of snap.peers) this.expectedPeers.add(p.id)
    this.expectedAtStart = this.expectedPeers.size
    if (unfinished.length > 0 || this.unclaimedActors.size > 0 || this.expectedPeers.size > 0) {
      this.reconcileUntil = Date.now() + this.opts.reconcileMs
      this.orphansUntil = Date.now() + Math.max(60_000, this.opts.reconcileMs * 4)
      this.opts.log(`restored ${snap.jobs.length} job(s), ${snap.tasks.length} task(s); waiting up to ${this.opts.reconcileMs} ms for ${this.expectedPeers.size} peer(s) to reconnect`)
      this.reconcileTimer = setTimeout(() => this.end(), this.opts.reconcileMs)
    }
    tasks.requeueRestored(unfinished)
    if (FAULTS.takeoverFailsUnfinished) {
      for (const t of unfinished) if (!t.spec.createsActor) this.m.results.fail(t, serializeError(new PeerDiedError('injected fault takeover-fails-unfinished: the coordinator that loaded the tables failed its unfinished tasks')))
    }
  }

  /** A peer was admitted: it is no longer awaited. */
  peerBack(id: string): void { this.expectedPeers.delete(id) }

  /**
   * What a peer's hello says it still holds, runs and hosts. A peer that proved its id claims
   * them (running tasks before actors: an actor's in-flight calls are claimed before it is
   * pumped again); a new id claims nothing, and is told to let them go.
   */
  claim(s: PeerSession, m: HelloMsg): void {
    if (!s.resumed) {
      const holds = m.holds ?? []
      for (let i = 0; i < holds.length; i += 1000) s.send({ t: 'drop', ids: holds.slice(i, i + 1000) })
      for (const tid of [...m.running ?? [], ...m.actors ?? []]) s.send({ t: 'cancelTask', task: tid, reason: 'not this peer\'s: it joined with a new id' })
      return
    }
    for (const oid of m.holds ?? []) this.claimHeld(s, oid)
    const blocked = new Set(m.blocked ?? [])
    for (const tid of m.running ?? []) this.claimRunning(s, tid, blocked.has(tid))
    for (const aid of m.actors ?? []) if (this.m.actors.claim(s, aid, this.unclaimedActors.has(aid))) this.unclaimedActors.delete(aid)
  }

  /** After a hello: once every awaited peer is back, the window closes early. */
  peerWelcomed(): void {
    if (this.reconcileUntil && [...this.expectedPeers].every((p) => this.m.peers.has(p))) this.end()
  }

  /** A reconnecting peer still holds an object's bytes; a rebuild queued for it (not started) is then not needed. */
  private claimHeld(s: PeerSession, oid: string): void {
    const t = this.m.tasks.get(taskOfObject(oid) ?? '')
    if (!this.m.objects.claimHeld(s, oid, t ? t.ranOn === s.id : undefined) || !t) return
    if ((t.state === 'ready' || t.state === 'waiting') && !t.spec.actor && !t.spec.createsActor && this.m.objects.returnsReady(t.id, t.spec.opts.numReturns ?? 1)) {
      this.m.tasks.setState(t, 'finished')
    }
  }

  /** A reconnecting peer says it still runs a task: keep it there rather than run it twice. */
  private claimRunning(s: PeerSession, tid: string, blocked: boolean): void {
    const { tasks, quorum } = this.m
    const t = tasks.get(tid)
    if (!t) {
      if (this.reconcileUntil) this.orphanRunning.set(tid, s.id)
      return
    }
    if (TERMINAL.has(t.state)) { s.send({ t: 'cancelTask', task: tid, reason: 'already finished elsewhere' }); return }
    if (t.state === 'running') return
    // A peer may claim only work it was given: a replicated task's own record never runs, and no
    // peer may hold two replicas of one task (it would vote twice).
    // A job's main runs only on a trusted peer.
    if (quorum.isReplicated(t) || (t.ranOn !== s.id && !t.restored) || (t.replicaOf && quorum.siblingPeers(t).has(s.id)) || (t.main && !s.trusted)) {
      s.send({ t: 'cancelTask', task: tid, reason: 'not this peer\'s to run' })
      return
    }
    if (t.spec.actor && !this.m.actors.claimCall(t, s)) return
    tasks.assign(t, s, false, blocked)
  }

  /** A task was just submitted: if it is an orphan's (it ran, or runs, while the coordinator was down), settle it as such. */
  adopt(t: TaskRec): boolean {
    if (this.orphanDone.size === 0 && this.orphanRunning.size === 0) return false
    const orphan = this.orphanDone.get(t.id)
    this.orphanDone.delete(t.id)
    const ranOn = this.m.peers.get(orphan?.peer)
    if (orphan && ranOn) {
      // It ran and finished while the coordinator was down: record that result, do not run it again.
      this.m.tasks.ranBefore(t, ranOn.id)
      if (t.spec.actor) this.m.actors.unqueueCall(t.spec.actor, t.id)
      this.m.results.done(ranOn, t.id, orphan.results, orphan.error)
      return true
    }
    const runningOn = this.m.peers.get(this.orphanRunning.get(t.id))
    this.orphanRunning.delete(t.id)
    if (runningOn) { this.m.tasks.setState(t, 'ready'); this.claimRunning(runningOn, t.id, false); return true }
    return false
  }

  /** A result for a task the coordinator does not know: kept, in the window, for the replay of its submit. */
  keepOrphanResult(s: PeerSession, taskId: string, results?: ResultOut[], error?: SerializedError): boolean {
    if (!s.resumed || !this.replaying() || this.orphanDone.size >= 100_000) return false
    this.orphanDone.set(taskId, { peer: s.id, results, error })
    return true
  }

  /**
   * After a restart, a result may come from whoever ran the task before it (a peer that proved its
   * id, so one that was there before); only in the window, and never for a replicated task's own
   * record or from a sibling replica's peer.
   */
  mayReport(s: PeerSession, t: TaskRec): boolean {
    return !!t.restored && s.resumed && s.role === 'worker' && this.replaying() && !this.m.quorum.isReplicated(t) &&
      !(t.replicaOf && this.m.quorum.siblingPeers(t).has(s.id))
  }

  /** `peerRemoved`: what it said it ran is no longer claimed. */
  peerRemoved(s: PeerSession): void {
    for (const [tid, pid] of this.orphanRunning) if (pid === s.id) this.orphanRunning.delete(tid)
  }

  /** Peers had their chance to reclaim work after a restart; whatever is unclaimed is treated as lost. */
  private end(): void {
    if (!this.reconcileUntil) return
    this.reconcileUntil = 0
    clearTimeout(this.reconcileTimer)
    this.m.actors.sweepUnclaimed(this.unclaimedActors)
    this.unclaimedActors.clear()
    this.m.objects.sweepLost()
    for (const pid of this.expectedPeers) this.opts.store.peers.remove(pid)
    this.expectedPeers.clear()
    this.requestTick()
    // A submit not replayed by the end of the orphans' window never will be: what waited for it goes.
    this.orphansTimer = setTimeout(() => { this.orphanDone.clear(); this.orphanRunning.clear() }, Math.max(0, this.orphansUntil - Date.now()))
    this.orphansTimer.unref()
  }

  close(): void { clearTimeout(this.reconcileTimer); clearTimeout(this.orphansTimer) }
}
