/**
 * The object directory: every object's size, state, inline bytes and where its bytes are;
 * `put`, `replicate`, `free` and disposal; readers' subscriptions; and the loss of an object's
 * last copy (a put's holder gets a heartbeat's grace; lineage is task-results.ts). Pulls of
 * bytes (grants, the relay) are pulls.ts.
 */
import {
  AuthError, LimitError, ObjectLostError, ProtocolError, returnId, serializeError, taskOfObject,
  type ObjectInfo, type ObjectSummary, type Page, type ResultOut, type SerializedError,
} from '@colony-grid/shared'
import type { PageQuery } from '../paging.js'
import type { PeerSession } from '../peer-session.js'
import type { StoreSnapshot } from '../store/types.js'
import type { DependencyManager } from './dependencies.js'
import type { ControlBus } from './events.js'
import type { JobRec } from './jobs.js'
import type { ControlOptions, Counters } from './options.js'
import type { PeerManager } from './peers.js'
import { ObjectListing, type ObjState } from './object-listing.js'
import type { SpentRecords } from './spent-records.js'

export { OBJECT_STATES, type ObjState } from './object-listing.js'
export interface ObjRec {
  id: string
  job: string
  size: number
  state: ObjState
  inline?: Uint8Array
  /** SHA-256 of the bytes, as reported by the peer that made them. */
  hash?: string
  error?: SerializedError
  /** Connected peers that hold its bytes now. */
  locations: Set<string>
  /** Peers waiting to hear of it (`sub`). */
  subscribers?: Set<string>
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

export class ObjectDirectory {
  /** Bound: maxObjectsPerJob and the tasks' results of running jobs; finished jobs' until retention drops them. */
  private readonly objects = new Map<string, ObjRec>()
  /** Objects whose bytes each peer holds (not inline ones). Bound: connected peers' copies of kept objects; a peer's go when it leaves. */
  private readonly heldBy = new Map<string, Set<string>>()
  /** Objects each peer waits to hear of. Bound: as `heldBy`. */
  private readonly subscribedBy = new Map<string, Set<string>>()
  /** Objects each job has put (for maxObjectsPerJob). Bound: one count per running job; it goes when the job ends. */
  private readonly puts = new Map<string, number>()
  /** `put` objects whose holder left: errors only if the holder is not back within the heartbeat timeout. Bound: each timer deletes its entry. */
  private readonly putGrace = new Map<string, NodeJS.Timeout>()
  /** Each job's records in order, and the bytes not freed: what the HTTP API pages and counts. */
  private readonly listing = new ObjectListing((id) => this.objects.get(id))
  private peers!: PeerManager
  private deps!: DependencyManager
  private spent!: SpentRecords

  constructor(private readonly opts: ControlOptions, private readonly bus: ControlBus, private readonly counters: Counters, private readonly requestTick: () => void) {}

  wire(m: { peers: PeerManager; deps: DependencyManager; spent: SpentRecords }): void { ({ peers: this.peers, deps: this.deps, spent: this.spent } = m) }

  /** Objects as the store kept them, with who held their bytes (only they may claim them back). */
  initialize(snap: StoreSnapshot): void {
    for (const row of snap.objects) {
      this.record({ id: row.id, job: row.job, size: row.size, state: row.error ? 'error' : 'ready', inline: row.inline, hash: row.hash, error: row.error, locations: new Set() })
    }
    for (const l of snap.locations ?? []) { const o = this.objects.get(l.object); if (o) (o.holders ??= new Set()).add(l.peer) }
  }

  get(id: string): ObjRec | undefined { return this.objects.get(id) }
  has(id: string): boolean { return this.objects.has(id) }
  allReady(ids: readonly string[]): boolean {
    for (const id of ids) if (this.objects.get(id)?.state !== 'ready') return false
    return true
  }

  /** A task's return objects, pending until it finishes; `keep`: leave one the store already had. */
  addReturns(taskId: string, job: string, n: number, keep: boolean): void {
    for (let i = 0; i < n; i++) {
      const oid = returnId(taskId, i)
      if (!keep || !this.objects.has(oid)) this.record({ id: oid, job, size: 0, state: 'pending', locations: new Set() })
    }
  }

  /** What a peer learns of an object; `job` names its job (peers keep what they learn per job). */
  info(id: string): ObjectInfo { return this.infoOf(this.objects.get(id)!) }
  private infoOf(o: ObjRec): ObjectInfo {
    const info: ObjectInfo = { id: o.id, job: o.job, size: o.size }
    if (o.inline) info.inline = o.inline
    if (o.error) info.error = o.error
    return info
  }

  addLocation(o: ObjRec, s: PeerSession): void {
    o.locations.add(s.id)
    let held = this.heldBy.get(s.id)
    if (!held) this.heldBy.set(s.id, held = new Set())
    held.add(o.id)
    if (o.holders?.has(s.id)) return
    ;(o.holders ??= new Set()).add(s.id)
    this.opts.store.locations.put({ object: o.id, peer: s.id })
  }

  /** The peer no longer holds the object's bytes (it evicted them, or could not serve them). */
  removeLocation(o: ObjRec, peer: string): void {
    o.locations.delete(peer)
    this.heldBy.get(peer)?.delete(o.id)
    if (o.holders?.delete(peer)) this.opts.store.locations.remove({ object: o.id, peer })
  }

  /** The reader was sent the object (a pull plan or a relay): it may say it holds a copy. */
  sentTo(o: ObjRec, peer: string): void { (o.sentTo ??= new Set()).add(peer) }

  /** The object is made (or failed): waiting tasks and readers hear of it (`objectReady`). */
  ready(o: ObjRec, state: 'ready' | 'error'): void {
    o.state = state
    this.bus.emit('objectReady', o, state)
  }

  /** `objectReady` listener: peers that subscribed get the object's info. */
  tellSubscribers(o: ObjRec): void {
    if (!o.subscribers) return
    const info = this.infoOf(o)
    for (const pid of o.subscribers) {
      const s = this.peers.get(pid)
      if (s) { s.send({ t: 'obj', info }); this.subscribedBy.get(pid)?.delete(o.id) }
    }
    o.subscribers = undefined
  }

  /** A task's result `r` for its return object `id`, from the peer `s` that ran it; `persist`: write its row (a single inline result rides on the task's). */
  recordResult(id: string, r: ResultOut, s: PeerSession | undefined, persist: boolean): void {
    const o = this.objects.get(id)!
    this.listing.resized(o, r.size)
    o.size = r.size
    o.error = undefined
    if (r.inline) o.inline = r.inline
    else { this.addLocation(o, s!); o.hash = r.hash }
    if (persist) this.opts.store.objects.put({ id: o.id, job: o.job, size: o.size, inline: o.inline, hash: o.hash })
    this.ready(o, 'ready')
    if (o.freed && !this.deps.pinned(o.id)) this.dispose(o)
  }

  /** A task's return object fails with the task. */
  recordError(id: string, err: SerializedError): void {
    const o = this.objects.get(id)!
    o.error = err
    this.opts.store.objects.put({ id: o.id, job: o.job, size: 0, error: err })
    this.ready(o, 'error')
  }

  /** The object must be made again (its actor restarts). */
  reopen(id: string): void { this.objects.get(id)!.state = 'pending' }
  /** A lineage re-run makes again the results whose bytes are gone. */
  reopenIfGone(id: string): void {
    const r = this.objects.get(id)!
    if (!r.inline && r.locations.size === 0) r.state = 'pending'
  }
  /** Are all of a task's return objects made? */
  returnsReady(taskId: string, n: number): boolean {
    for (let i = 0; i < n; i++) if (this.objects.get(returnId(taskId, i))?.state !== 'ready') return false
    return true
  }

  /** The last copy of an object is gone: a task's result is rebuilt from lineage (`objectLost`); a put waits for its holder. */
  lost(o: ObjRec): void {
    for (const pid of o.locations) if (!this.peers.has(pid)) o.locations.delete(pid)
    o.state = 'pending'
    if (taskOfObject(o.id)) this.bus.emit('objectLost', o)
    else this.awaitHolder(o)
  }

  /** A put's holder may only have blipped: give it a heartbeat's time to come back with the bytes. */
  awaitHolder(o: ObjRec): void {
    if (this.putGrace.has(o.id)) return
    this.putGrace.set(o.id, setTimeout(() => {
      this.putGrace.delete(o.id)
      if (o.state === 'pending' && o.locations.size === 0) {
        this.lostForGood(o, 'the peer that put it left, and a put object has no lineage to rebuild it from. Put it again, or keep its driver connected')
      }
      this.requestTick()
    }, this.opts.heartbeatTimeoutMs).unref())
  }

  lostForGood(o: ObjRec, why: string): void {
    o.error = serializeError(new ObjectLostError(`object ${o.id} was lost: ${why}.`, { objectId: o.id }))
    this.opts.store.objects.put({ id: o.id, job: o.job, size: o.size, error: o.error })
    this.ready(o, 'error')
  }

  /**
   * May `s` read `o`? With `job` (a worker asking for a task of that job: sub.job, pull.job), only
   * that job's objects, and only while it has work of that job; without, an object of any job it
   * has work of (a driver: its own job's). Either way, a copy it was asked to keep (`replicate`).
   */
  mayRead(s: PeerSession, o: ObjRec, job?: string): boolean {
    if (o.replicateTo?.has(s.id) && (job === undefined || job === o.job)) return true
    return job !== undefined ? o.job === job && s.canRead(job) : s.canRead(o.job)
  }

  subscribe(s: PeerSession, id: string, job?: string): void {
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
    if (o.state !== 'pending') { s.send({ t: 'obj', info: this.infoOf(o) }); return }
    ;(o.subscribers ??= new Set()).add(s.id)
    let subs = this.subscribedBy.get(s.id)
    if (!subs) this.subscribedBy.set(s.id, subs = new Set())
    subs.add(id)
  }

  /** `job`: the job `s` acts for (tasks.ts jobFor). */
  put(s: PeerSession, job: string, id: string, size: number, inline: Uint8Array | undefined, hash?: string, replicate?: number): void {
    const existing = this.objects.get(id)
    if (existing) {
      if (existing.job === job) return // a replay
      throw new ProtocolError(`object id ${id} is taken`)
    }
    if (this.spent.wasDropped(id)) return // a replay of one freed, whose record went since
    const puts = (this.puts.get(job) ?? 0) + 1
    this.puts.set(job, puts)
    if (puts > this.opts.quotas.maxObjectsPerJob) throw new LimitError('maxObjectsPerJob', `job ${job} has ${puts - 1} put objects on record (freed ones go once it has COLONY_KEEP_SPENT_RECORDS of them); the maxObjectsPerJob limit is ${this.opts.quotas.maxObjectsPerJob}. Object ${id} was refused`)
    if (!id.startsWith('o.')) throw new ProtocolError(`put ids start with 'o.' (got ${id})`)
    const o: ObjRec = { id, job, size, state: 'pending', locations: new Set() }
    this.record(o)
    if (inline) o.inline = inline
    else { this.addLocation(o, s); o.hash = hash }
    this.opts.store.objects.put({ id, job, size, inline, hash })
    this.ready(o, 'ready')
    if (!inline && replicate && replicate > 1) this.replicate(o, replicate - 1)
  }

  /** Asks `copies` other workers, the least loaded, to fetch and keep the object. */
  private replicate(o: ObjRec, copies: number): void {
    const targets = this.peers.workers().filter((p) => !o.locations.has(p.id)).sort((a, b) => a.load() - b.load()).slice(0, copies)
    if (targets.length < copies) this.opts.log(`object ${o.id} asked for ${copies} more copies; ${targets.length} other worker(s) can keep one`)
    for (const p of targets) {
      (o.replicateTo ??= new Set()).add(p.id)
      p.send({ t: 'replicate', infos: [this.infoOf(o)] })
    }
  }

  /** Objects their owner let go: disposed of now, or once the last task that needs them ends. */
  /** `job`: a worker frees on behalf of a task of that job, so only that job's objects (as reads, see mayRead). */
  free(s: PeerSession, ids: string[], job?: string): void {
    for (const id of ids) {
      const owner = this.objects.get(id)?.job ?? ''
      if (s.canRead(owner) && (job === undefined || job === owner)) this.freeObject(id)
    }
  }

  freeObject(id: string): void {
    const o = this.objects.get(id)
    if (!o || o.freed) return
    this.markFreed(o)
    if (!this.deps.pinned(id)) this.dispose(o)
  }

  /** No unfinished task needs the object any more (dependencies.ts). */
  unpinned(id: string): void {
    const o = this.objects.get(id)
    if (o?.freed) this.dispose(o)
  }

  /** Forgets an object's bytes everywhere; a later read gets a clear ObjectLostError. */
  private dispose(o: ObjRec): void {
    this.markFreed(o)
    for (const pid of o.locations) {
      this.heldBy.get(pid)?.delete(o.id)
      this.peers.get(pid)?.send({ t: 'drop', ids: [o.id] })
    }
    o.locations.clear()
    if (o.holders) { o.holders = undefined; this.opts.store.locations.removeAll(o.id) }
    o.inline = undefined
    // Built as data, not thrown: a job's end disposes every object it made, and a stack each costs more than the rest.
    const freedError: SerializedError = { type: 'ObjectLostError', message: `object ${o.id} was freed by its owner`, objectId: o.id }
    this.bus.emit('objectFreed', o, freedError)
    if (o.state === 'pending') return // never made; its task's result will be dropped when it lands
    o.state = 'error'
    o.error = freedError
    this.opts.store.objects.put({ id: o.id, job: o.job, size: o.size, error: o.error })
  }

  /** A running job's spent objects (spent-records.ts), disposed of already: their records go. */
  dropRecords(ids: readonly string[]): void {
    const gone = new Set<string>(), jobs = new Set<string>()
    for (const id of ids) {
      const o = this.objects.get(id)
      if (!o) continue
      this.listing.removed(o)
      gone.add(id)
      jobs.add(o.job)
      for (const pid of o.locations) this.heldBy.get(pid)?.delete(id)
      for (const pid of o.subscribers ?? []) this.subscribedBy.get(pid)?.delete(id)
      clearTimeout(this.putGrace.get(id))
      this.putGrace.delete(id)
      this.objects.delete(id)
      // A put no longer held counts no more against maxObjectsPerJob.
      if (id.startsWith('o.')) { const n = this.puts.get(o.job); if (n) this.puts.set(o.job, n - 1) }
    }
    this.listing.dropIds(jobs, gone)
  }

  /** A job ended (`jobFinished`): its objects go with it; its result stays for GET /api/jobs/:id. */
  jobFinished(job: JobRec): void {
    const result = job.rootTask ? returnId(job.rootTask) : undefined
    for (const o of this.objects.values()) if (o.job === job.id && o.id !== result && !o.freed) this.dispose(o)
  }

  /**
   * A reconnecting peer still holds an object's bytes: it is a location again, and revives a copy
   * thought lost. `ranHere`: whether the task that made it last ran on this peer (undefined: no
   * task made it, a put). Returns true when this revived the object.
   */
  claimHeld(s: PeerSession, oid: string, ranHere: boolean | undefined): boolean {
    const o = this.objects.get(oid)
    const lostPut = !!o && o.state === 'error' && o.error?.type === 'ObjectLostError' && ranHere === undefined && !o.freed
    const waitingPut = !!o && o.state === 'pending' && this.putGrace.has(oid)
    const rebuilding = !!o && o.state === 'pending' && ranHere === true
    // Only a peer the coordinator sent it to, or recorded holding it (it made or put it), may claim it.
    const itsOwn = !!o && (o.holders?.has(s.id) || o.sentTo?.has(s.id) || o.replicateTo?.has(s.id) || ranHere === true)
    if (o && !itsOwn) this.counters.holdsRefused++
    const claimable = o && itsOwn && !o.inline && !o.freed && (o.state === 'ready' || lostPut || waitingPut || rebuilding)
    // Bytes of something freed, unknown or failed meanwhile, or never its: the peer should let them go.
    if (!claimable) { s.send({ t: 'drop', ids: [oid] }); return false }
    clearTimeout(this.putGrace.get(oid))
    this.putGrace.delete(oid)
    this.addLocation(o, s)
    if (o.state === 'ready') return false
    o.error = undefined
    this.opts.store.objects.put({ id: o.id, job: o.job, size: o.size, hash: o.hash })
    this.ready(o, 'ready')
    return true
  }

  /** The peer fetched copies (`held`): another place to read them from, if it was sent them. */
  held(s: PeerSession, ids: string[]): void {
    for (const id of ids) {
      const o = this.objects.get(id)
      if (o && o.state === 'ready' && !o.inline && !o.freed && o.sentTo?.has(s.id)) this.addLocation(o, s)
      else if (!o || o.freed) s.send({ t: 'drop', ids: [id] })
    }
  }

  /** The peer dropped copies to stay under its object-store cap. */
  evicted(s: PeerSession, ids: string[]): void {
    for (const id of ids) { const o = this.objects.get(id); if (o) this.removeLocation(o, s.id); this.heldBy.get(s.id)?.delete(id) }
  }

  /** A peer left: it subscribes to nothing and holds nothing; objects whose last copy it had are lost. */
  peerRemoved(s: PeerSession): void {
    for (const oid of this.subscribedBy.get(s.id) ?? []) this.objects.get(oid)?.subscribers?.delete(s.id)
    this.subscribedBy.delete(s.id)
    const held = this.heldBy.get(s.id)
    this.heldBy.delete(s.id)
    for (const oid of held ?? []) {
      const o = this.objects.get(oid)
      if (!o) continue
      o.locations.delete(s.id)
      if (o.state === 'ready' && !o.inline && o.locations.size === 0) this.lost(o)
    }
  }

  /** After the reconciliation window: objects no peer claimed back are lost. */
  sweepLost(): void {
    for (const o of this.objects.values()) {
      if (o.state === 'ready' && !o.inline && o.locations.size === 0) this.lost(o)
    }
  }

  /** Bytes of these (argument) objects each peer holds, for locality. */
  heldBytes(ids: readonly string[]): Map<string, number> | undefined {
    let held: Map<string, number> | undefined
    for (const id of ids) {
      const o = this.objects.get(id)
      if (!o || o.inline) continue
      for (const pid of o.locations) (held ??= new Map()).set(pid, (held.get(pid) ?? 0) + o.size)
    }
    return held
  }

  /** How many objects a peer holds, and their bytes (/api/peers). */
  heldOn(peer: string): { objects: number; bytesHeld: number } {
    const held = this.heldBy.get(peer)
    let bytesHeld = 0
    for (const id of held ?? []) bytesHeld += this.objects.get(id)?.size ?? 0
    return { objects: held?.size ?? 0, bytesHeld }
  }

  /** Object records held, tombstones of freed ones included. */
  get size(): number { return this.objects.size }

  /** Retention: a finished job's object records go (all were disposed of when it ended); returns their ids. */
  dropJob(jobId: string): string[] {
    const ids: string[] = []
    for (const o of this.objects.values()) {
      if (o.job !== jobId) continue
      this.listing.removed(o)
      ids.push(o.id)
      for (const pid of o.locations) this.heldBy.get(pid)?.delete(o.id)
      this.subscribedBy.delete(o.id)
      clearTimeout(this.putGrace.get(o.id))
      this.putGrace.delete(o.id)
    }
    for (const id of ids) this.objects.delete(id)
    this.listing.dropJob(jobId)
    this.puts.delete(jobId)
    return ids
  }

  /** A new record (or one that replaces its id's, keeping its place in its job's list). */
  private record(o: ObjRec): void {
    this.listing.added(o, this.objects.get(o.id))
    this.objects.set(o.id, o)
  }

  private markFreed(o: ObjRec): void {
    if (this.listing.freed(o)) o.freed = true
  }

  /** Bytes of the objects not freed, as recorded (GET /api/summary). */
  get bytesKept(): number { return this.listing.bytesKept }

  /** A page of a job's live objects (object-listing.ts). */
  page(jobId: string, q: PageQuery<ObjState>): Page<ObjectSummary> { return this.listing.page(jobId, q) }

  close(): void { for (const t of this.putGrace.values()) clearTimeout(t) }
}
