/**
 * The control store: the durable half of the coordinator's tables (Ray's GCS).
 * The coordinator keeps its working set in memory and writes through to a store;
 * writes are queued and committed together by `commit()`, once per event-loop turn.
 * After a crash, `load()` gives back everything that was committed.
 */
import type { FnDef, JobState, PeerKind, PeerRole, SerializedError, TaskSpec, TaskState } from '@colony-grid/shared'

export interface JobRow {
  id: string
  name: string
  state: JobState
  createdAt: number
  finishedAt?: number
  rootTask?: string
  /** The id of the submit token that started it: only that token (and the operator's) sees it. */
  owner?: string
  bundle?: string
  error?: SerializedError
  /** Its tasks' time limit where they set none (control/options.ts JobOptions). */
  taskTimeoutMs?: number
  /**
   * Set once retention dropped its work (control/retention.ts): what `GET /api/jobs/:id` still
   * shows, its tasks counted by state and its main's result (a small value, encoded).
   */
  summary?: { tasks: Record<TaskState, number>; result?: Uint8Array; resultSize?: number }
  /** Its spent tasks whose rows went while it ran (control/spent-records.ts), by state: its counts still count them. */
  dropped?: Partial<Record<TaskState, number>>
}

export interface TaskRow {
  id: string
  job: string
  spec: TaskSpec
  state: TaskState
  attempts: number
  error?: SerializedError
  /** Set for the tasks the coordinator made itself (a bundle job's main). */
  main?: boolean
}

export interface ObjectRow {
  id: string
  job: string
  size: number
  /** Small values are kept here, so they outlive the peer that made them. */
  inline?: Uint8Array
  hash?: string
  error?: SerializedError
}

export type ActorState = 'pending' | 'alive' | 'restarting' | 'dead'
export interface ActorRow {
  id: string
  job: string
  name: string
  state: ActorState
  peer?: string
  restarts: number
  /** Its state after its last recorded call, from its class's `checkpoint()`; a restart hands it to `restore()`. */
  checkpoint?: Uint8Array
}

export interface PeerRow {
  id: string; kind: PeerKind; role: PeerRole; lastSeen: number
  /** Kept when it drops (reputation.ts), so a restart does not clear a quarantine. */
  reputation?: number
  quarantined?: boolean
  /** SHA-256 (hex) of the secret the peer proves its id with (identity.ts); never the secret. */
  secretHash?: string
  /** The token id and address it joined from (identity.ts `originOf`). */
  origin?: string
}

/** The standing of a token and address (reputation.ts), kept so a restart does not wash a quarantine. */
export interface OriginRow { origin: string; reputation: number; quarantined: boolean }

/** A peer the coordinator recorded as holding an object's bytes: only such a peer may claim it in a hello. */
export interface LocationRow { object: string; peer: string }

export interface StoreSnapshot {
  jobs: JobRow[]
  /** In submission order: a restarted coordinator re-queues them in it. */
  tasks: TaskRow[]
  objects: ObjectRow[]
  actors: ActorRow[]
  peers: PeerRow[]
  origins: OriginRow[]
  locations: LocationRow[]
  fns: { job: string; def: FnDef }[]
  /** The hashes of the stored bundles, and which token ids uploaded each (a bundle may have none). */
  bundles: { hash: string; owners: string[] }[]
}

/*
 * Each table is a handle whose writes are queued, not awaited: the coordinator's turn stays
 * synchronous, and `commit()` makes everything queued so far durable at once (group commit).
 */
/** The rows of one job's work, named so that no store needs an index it lacks. */
export interface JobDetails { tasks: string[]; objects: string[]; actors: string[]; fns: string[] }
/** Tasks, and objects (their results among them, by id), of one job. */
export interface SpentIds { tasks: string[]; objects: string[] }
export interface JobTable {
  put(job: JobRow): void
  /**
   * Retention (control/retention.ts): a finished job's work goes (its tasks with their results,
   * its objects and their locations, its actors and functions); its summary row stays.
   */
  dropDetails(job: string, ids: JobDetails): void
  /**
   * A running job's spent records (control/spent-records.ts): these tasks (with their results) and
   * these objects (with their locations) go; the job and its other rows stay, in their order.
   */
  dropRecords(job: string, ids: SpentIds): void
  /** Its summary row goes too: the job has expired. */
  remove(job: string): void
}
export interface TaskTable {
  /** Written once, when the task is submitted; a second put of the same id changes nothing. */
  put(task: TaskRow): void
  /** A state change only; the spec is written once by put. */
  setState(id: string, state: TaskState, attempts: number, error?: SerializedError): void
  /**
   * A task finished with one small result: the state and the value in one write
   * (its object row is derived on load). Other results go through objects.put.
   */
  finish(id: string, attempts: number, result: { size: number; inline: Uint8Array }): void
}
export interface ObjectTable { put(obj: ObjectRow): void }
export interface ActorTable { put(actor: ActorRow): void }
export interface PeerTable { put(peer: PeerRow): void; remove(id: string): void }
export interface OriginTable { put(origin: OriginRow): void; remove(origin: string): void }
export interface LocationTable {
  put(loc: LocationRow): void
  remove(loc: LocationRow): void
  /** Every location row of this object (it was disposed of). */
  removeAll(object: string): void
}
export interface FnTable { put(job: string, def: FnDef): void }
/** Bundles skip the queue: a peer fetches one by the next request, so `put` resolves once it is durable. */
export interface BundleTable {
  /** `owner`: the id of a token that uploaded it. */
  put(hash: string, code: Uint8Array, owner?: string): Promise<void>
  get(hash: string): Promise<Uint8Array | undefined>
  /**
   * Retention: the code and its owners go. Like put it skips the commit queue (it is durable when it
   * resolves), so that a put of the same hash made after it is never undone by it.
   */
  remove(hash: string): Promise<void>
}

/** One named state's metadata, as a listing shows it. */
export interface StateInfo { key: string; size: number; updatedAt: number }
/**
 * Named state (state-api.ts, like Ray GCS's internal KV): bytes under a key, per owner (a token id;
 * one owner never reaches another's). Like bundles it skips the commit queue: a write is durable
 * when its promise resolves, so a PUT that was answered outlives a crash of the coordinator.
 */
export interface StateTable {
  /** Replaces the value, if any. */
  put(owner: string, key: string, value: Uint8Array, updatedAt: number): Promise<void>
  get(owner: string, key: string): Promise<{ value: Uint8Array; updatedAt: number } | undefined>
  /** Absent already: nothing happens. */
  remove(owner: string, key: string): Promise<void>
  /** The owner's keys that start with `prefix` ('' for all), in key order. */
  list(owner: string, prefix: string): Promise<StateInfo[]>
  /** Retention: every row, of any owner, last written before `before` goes; resolves with how many. */
  expire(before: number): Promise<number>
}

/**
 * What every store implements (memory, SQLite, Redis); test/src/store-conformance.test.ts is the
 * contract, and each of them runs it.
 */
export interface ControlStore {
  readonly kind: 'sqlite' | 'memory' | 'redis'
  /** Everything committed, read once when a coordinator takes over the tables. */
  load(): Promise<StoreSnapshot>
  readonly jobs: JobTable
  readonly tasks: TaskTable
  readonly objects: ObjectTable
  readonly actors: ActorTable
  readonly peers: PeerTable
  readonly origins: OriginTable
  readonly locations: LocationTable
  readonly fns: FnTable
  readonly bundles: BundleTable
  readonly states: StateTable
  /**
   * Makes every write queued before the call durable, in order and all together. It rejects when the
   * store cannot be reached; those writes stay queued, ahead of later ones, and the next commit
   * retries them. Commits never overlap: a call made while one runs waits for it.
   */
  commit(): Promise<void>
  /** Commits what is queued (if it can) and lets go of the store. */
  close(): Promise<void>
}
