import { returnId, type FnDef, type SerializedError, type TaskState } from '@colony-grid/shared'
import type { ActorRow, ControlStore, JobRow, LocationRow, ObjectRow, OriginRow, PeerRow, StoreSnapshot, TaskRow } from './types.js'

/** Keeps the tables in maps. For tests, and for grids that need no durability. */
export class MemoryStore implements ControlStore {
  readonly kind = 'memory' as const
  private jobs = new Map<string, JobRow>()
  private tasks = new Map<string, TaskRow>()
  private objects = new Map<string, ObjectRow>()
  private actors = new Map<string, ActorRow>()
  private peers = new Map<string, PeerRow>()
  private origins = new Map<string, OriginRow>()
  /** Per object, the peers recorded as holding it. */
  private locations = new Map<string, Set<string>>()
  private fns = new Map<string, { job: string; def: FnDef }>()
  private bundles = new Map<string, Uint8Array>()
  private bundleOwners = new Map<string, Set<string>>()

  load(): StoreSnapshot {
    return {
      jobs: [...this.jobs.values()].map((j) => ({ ...j })),
      tasks: [...this.tasks.values()].map((t) => ({ ...t })),
      objects: [...this.objects.values()],
      actors: [...this.actors.values()].map((a) => ({ ...a })),
      peers: [...this.peers.values()],
      origins: [...this.origins.values()].map((o) => ({ ...o })),
      locations: [...this.locations].flatMap(([object, peers]) => [...peers].map((peer) => ({ object, peer }))),
      fns: [...this.fns.values()],
      bundles: [...this.bundles.keys()],
    }
  }
  putJob(job: JobRow): void { this.jobs.set(job.id, { ...job }) }
  putTask(task: TaskRow): void { this.tasks.set(task.id, { ...task }) }
  setTaskState(id: string, state: TaskState, attempts: number, error?: SerializedError): void {
    const t = this.tasks.get(id)
    if (t) { t.state = state; t.attempts = attempts; t.error = error }
  }
  finishTask(id: string, attempts: number, result: { size: number; inline: Uint8Array }): void {
    const t = this.tasks.get(id)
    if (!t) return
    t.state = 'finished'
    t.attempts = attempts
    this.objects.set(returnId(id), { id: returnId(id), job: t.job, size: result.size, inline: result.inline })
  }
  putObject(obj: ObjectRow): void { this.objects.set(obj.id, obj) }
  putActor(actor: ActorRow): void { this.actors.set(actor.id, { ...actor }) }
  putPeer(peer: PeerRow): void { this.peers.set(peer.id, peer) }
  removePeer(id: string): void { this.peers.delete(id) }
  putOrigin(o: OriginRow): void { this.origins.set(o.origin, { ...o }) }
  removeOrigin(origin: string): void { this.origins.delete(origin) }
  putLocation(l: LocationRow): void {
    let peers = this.locations.get(l.object)
    if (!peers) this.locations.set(l.object, peers = new Set())
    peers.add(l.peer)
  }
  removeLocation(l: LocationRow): void {
    const peers = this.locations.get(l.object)
    if (peers?.delete(l.peer) && peers.size === 0) this.locations.delete(l.object)
  }
  removeLocations(object: string): void { this.locations.delete(object) }
  putFn(job: string, def: FnDef): void { this.fns.set(`${job}/${def.id}`, { job, def }) }
  putBundle(hash: string, code: Uint8Array, owner?: string): void {
    if (!this.bundles.has(hash)) this.bundles.set(hash, code)
    if (owner) { let o = this.bundleOwners.get(hash); if (!o) this.bundleOwners.set(hash, o = new Set()); o.add(owner) }
  }
  getBundle(hash: string): Uint8Array | undefined { return this.bundles.get(hash) }
  bundleOwnedBy(hash: string, owner: string): boolean { return !!this.bundleOwners.get(hash)?.has(owner) }
  commit(): void {}
  close(): void {}
}
