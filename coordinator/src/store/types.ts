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
  /** Its tasks' time limit where they set none (control.ts JobOptions). */
  taskTimeoutMs?: number
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
  tasks: TaskRow[]
  objects: ObjectRow[]
  actors: ActorRow[]
  peers: PeerRow[]
  origins: OriginRow[]
  locations: LocationRow[]
  fns: { job: string; def: FnDef }[]
  bundles: string[]
}

export interface ControlStore {
  readonly kind: 'sqlite' | 'memory'
  load(): StoreSnapshot
  putJob(job: JobRow): void
  putTask(task: TaskRow): void
  /** A state change only; the spec is written once by putTask. */
  setTaskState(id: string, state: TaskState, attempts: number, error?: SerializedError): void
  /**
   * A task finished with one small result: the state and the value in one write
   * (its object row is derived on load). Other results go through putObject.
   */
  finishTask(id: string, attempts: number, result: { size: number; inline: Uint8Array }): void
  putObject(obj: ObjectRow): void
  putActor(actor: ActorRow): void
  putPeer(peer: PeerRow): void
  removePeer(id: string): void
  putOrigin(origin: OriginRow): void
  removeOrigin(origin: string): void
  putLocation(loc: LocationRow): void
  removeLocation(loc: LocationRow): void
  /** Every location row of this object (it was disposed of). */
  removeLocations(object: string): void
  putFn(job: string, def: FnDef): void
  /** Keeps a bundle at once (not at the next commit: peers fetch it by the next request); `owner`: the id of a token that uploaded it. */
  putBundle(hash: string, code: Uint8Array, owner?: string): void
  getBundle(hash: string): Uint8Array | undefined
  /** Did the token `owner` upload this bundle? */
  bundleOwnedBy(hash: string, owner: string): boolean
  /** Commits every queued write in one transaction. */
  commit(): void
  close(): void
}
