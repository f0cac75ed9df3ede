import { returnId, type FnDef } from '@colony-grid/shared'
import type { ActorRow, ControlStore, JobRow, ObjectRow, OriginRow, PeerRow, StoreSnapshot, TaskRow } from './types.js'

/** Keeps the tables in maps, committed as they are written. For tests, and for grids that need no durability. */
export class MemoryStore implements ControlStore {
  readonly kind = 'memory' as const
  private readonly rows = {
    jobs: new Map<string, JobRow>(),
    tasks: new Map<string, TaskRow>(),
    objects: new Map<string, ObjectRow>(),
    actors: new Map<string, ActorRow>(),
    peers: new Map<string, PeerRow>(),
    origins: new Map<string, OriginRow>(),
    /** Per object, the peers recorded as holding it. */
    locations: new Map<string, Set<string>>(),
    fns: new Map<string, { job: string; def: FnDef }>(),
    bundles: new Map<string, { code: Uint8Array; owners: Set<string> }>(),
    /** Per owner, its states by key. */
    states: new Map<string, Map<string, { value: Uint8Array; updatedAt: number }>>(),
  }

  async load(): Promise<StoreSnapshot> {
    const r = this.rows
    return {
      jobs: [...r.jobs.values()].map((j) => ({ ...j })),
      tasks: [...r.tasks.values()].map((t) => ({ ...t })),
      objects: [...r.objects.values()],
      actors: [...r.actors.values()].map((a) => ({ ...a })),
      peers: [...r.peers.values()],
      origins: [...r.origins.values()].map((o) => ({ ...o })),
      locations: [...r.locations].flatMap(([object, peers]) => [...peers].map((peer) => ({ object, peer }))),
      fns: [...r.fns.values()],
      bundles: [...r.bundles].map(([hash, b]) => ({ hash, owners: [...b.owners] })),
    }
  }

  readonly jobs: ControlStore['jobs'] = {
    put: (job) => { this.rows.jobs.set(job.id, { ...job }) },
    dropDetails: (job, ids) => {
      const r = this.rows
      for (const id of ids.tasks) { r.tasks.delete(id); r.objects.delete(returnId(id)) }
      for (const id of ids.objects) { r.objects.delete(id); r.locations.delete(id) }
      for (const id of ids.actors) r.actors.delete(id)
      for (const id of ids.fns) r.fns.delete(`${job}/${id}`)
    },
    dropRecords: (_job, ids) => {
      const r = this.rows
      for (const id of ids.tasks) r.tasks.delete(id)
      for (const id of ids.objects) { r.objects.delete(id); r.locations.delete(id) }
    },
    remove: (job) => { this.rows.jobs.delete(job) },
  }
  readonly tasks: ControlStore['tasks'] = {
    put: (task) => { if (!this.rows.tasks.has(task.id)) this.rows.tasks.set(task.id, { ...task }) },
    setState: (id, state, attempts, error) => {
      const t = this.rows.tasks.get(id)
      if (t) { t.state = state; t.attempts = attempts; t.error = error }
    },
    finish: (id, attempts, result) => {
      const t = this.rows.tasks.get(id)
      if (!t) return
      t.state = 'finished'
      t.attempts = attempts
      this.rows.objects.set(returnId(id), { id: returnId(id), job: t.job, size: result.size, inline: result.inline })
    },
  }
  readonly objects = { put: (obj: ObjectRow) => { this.rows.objects.set(obj.id, obj) } }
  readonly actors = { put: (actor: ActorRow) => { this.rows.actors.set(actor.id, { ...actor }) } }
  readonly peers = {
    put: (peer: PeerRow) => { this.rows.peers.set(peer.id, peer) },
    remove: (id: string) => { this.rows.peers.delete(id) },
  }
  readonly origins = {
    put: (o: OriginRow) => { this.rows.origins.set(o.origin, { ...o }) },
    remove: (origin: string) => { this.rows.origins.delete(origin) },
  }
  readonly locations: ControlStore['locations'] = {
    put: (l) => {
      let peers = this.rows.locations.get(l.object)
      if (!peers) this.rows.locations.set(l.object, peers = new Set())
      peers.add(l.peer)
    },
    remove: (l) => {
      const peers = this.rows.locations.get(l.object)
      if (peers?.delete(l.peer) && peers.size === 0) this.rows.locations.delete(l.object)
    },
    removeAll: (object) => { this.rows.locations.delete(object) },
  }
  /** The first definition of an id wins, as in SQLite and Redis. */
  readonly fns = { put: (job: string, def: FnDef) => { const k = `${job}/${def.id}`; if (!this.rows.fns.has(k)) this.rows.fns.set(k, { job, def }) } }
  readonly bundles: ControlStore['bundles'] = {
    put: async (hash, code, owner) => {
      let b = this.rows.bundles.get(hash)
      if (!b) this.rows.bundles.set(hash, b = { code, owners: new Set() })
      if (owner) b.owners.add(owner)
    },
    get: async (hash) => this.rows.bundles.get(hash)?.code,
    remove: async (hash) => { this.rows.bundles.delete(hash) },
  }
  readonly states: ControlStore['states'] = {
    put: async (owner, key, value, updatedAt) => {
      let mine = this.rows.states.get(owner)
      if (!mine) this.rows.states.set(owner, mine = new Map())
      // A copy: the caller's buffer may be reused, and a stored value must not change with it.
      mine.set(key, { value: value.slice(), updatedAt })
    },
    get: async (owner, key) => {
      const s = this.rows.states.get(owner)?.get(key)
      return s && { value: s.value.slice(), updatedAt: s.updatedAt }
    },
    remove: async (owner, key) => {
      const mine = this.rows.states.get(owner)
      if (mine?.delete(key) && mine.size === 0) this.rows.states.delete(owner)
    },
    list: async (owner, prefix) => [...this.rows.states.get(owner) ?? []]
      .filter(([key]) => key.startsWith(prefix))
      .map(([key, s]) => ({ key, size: s.value.byteLength, updatedAt: s.updatedAt }))
      .sort((a, b) => (a.key < b.key ? -1 : 1)),
    expire: async (before) => {
      let n = 0
      for (const [owner, mine] of this.rows.states) {
        for (const [key, s] of mine) if (s.updatedAt < before) { mine.delete(key); n++ }
        if (mine.size === 0) this.rows.states.delete(owner)
      }
      return n
    },
  }
  async commit(): Promise<void> {}
  async close(): Promise<void> {}
}
