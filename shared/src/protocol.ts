/**
 * The control-plane protocol, in one place. Every message is a plain object with
 * a `t` tag; many travel together in one msgpack frame (see codec.ts).
 *
 * Durable messages (fn, submit, put, done) are acknowledged with `ack` only after
 * the coordinator has committed them, and a peer replays the unacknowledged ones
 * after it reconnects. That is what lets the coordinator die mid-job.
 */
import type { ActorId, JobId, ObjectId, PeerId, TaskId } from './ids.js'
import type { SerializedError } from './errors.js'
import type { Grant } from './grant.js'

export const PROTOCOL_VERSION = 2

export type PeerKind = 'node' | 'browser'

/**
 * What a peer speaks this protocol over: the parts of a WebSocket it uses (the browser's and the
 * `ws` package's both fit, and so does the coordinator's in-process socket, local-socket.ts).
 */
export interface WebSocketLike {
  binaryType: string
  readonly readyState: number
  readonly bufferedAmount: number
  send(data: Uint8Array): void
  close(code?: number, reason?: string): void
  onopen: ((ev: unknown) => void) | null
  onmessage: ((ev: { data: unknown }) => void) | null
  onclose: ((ev: { code: number; reason: string }) => void) | null
  onerror: ((ev: unknown) => void) | null
}
export type PeerRole = 'worker' | 'driver'

export interface TaskOptions {
  /** Amounts this task holds while it runs; `cpu` defaults to 1 for tasks and 0 for actors. */
  resources?: Record<string, number>
  /** Capabilities the peer must advertise, e.g. ['webgpu']. */
  capabilities?: string[]
  /** Re-runs after a peer dies (and after a throw, with retryExceptions). Default 3; actor calls 0. */
  maxRetries?: number
  retryExceptions?: boolean
  /** Actor creation only: how often the actor is re-created after its peer dies. Default 0. */
  maxRestarts?: number
  /**
   * Actor creation only (an async actor, Ray's `max_concurrency`): how many of the actor's calls run
   * at once in its executor, 1 to 1000. Default 1: each call starts when the one before it has ended.
   * Above 1, calls still start in submission order, but a call that awaits (a long `run()` waiting on
   * a promise) no longer holds back the calls after it: they interleave at their awaits, and calls
   * past the limit wait their turn, in order. A checkpointed actor (a class with `checkpoint()`)
   * cannot have it: a checkpoint taken after one call would capture another's half-done state, so
   * such a creation fails. Refused on anything but an actor's creation (a method call, a task).
   */
  maxConcurrency?: number
  /** The peer ends the task (and its executor) past this. */
  timeoutMs?: number
  numReturns?: number
  /**
   * Run the task on this many distinct peers and accept a result only when `quorum` of them
   * agree (volunteers may answer wrong). Peers that disagree with an accepted result lose
   * reputation. Not for actors. Default 1.
   */
  replicas?: number
  /** How many replicas must agree; default: a majority of `replicas`. */
  quorum?: number
  /** How replicas' results are compared: equal bytes by default, or numbers within `tolerance`. */
  compare?: { tolerance?: number }
}

/** A function a job can call: an inline source, or an export of the job's bundle. */
export type FnDef =
  | { id: string; kind: 'inline'; name: string; src: string }
  | { id: string; kind: 'bundle'; name: string; bundle: string; export: string }

export interface TaskSpec {
  id: TaskId
  /** For logs and errors: the function, class or `Class.method`. */
  name: string
  /** The FnDef id; empty for actor method calls. */
  fn: string
  /** Value-encoded argument array. Top-level ObjectRefs are resolved before the call. */
  args: Uint8Array
  /** The top-level ObjectRefs among the arguments. */
  deps: ObjectId[]
  /** Set for an actor method call. */
  actor?: ActorId
  method?: string
  /** Set when this task creates an actor (its id is this task's id). */
  createsActor?: boolean
  opts: TaskOptions
  /** The task that submitted this one, when submitted from inside a task. */
  parent?: TaskId
  /**
   * Set by the coordinator, never taken from a peer (the schema has no such field): for an actor
   * created from inside a call (or the creation) of another actor, that actor. It ends with it.
   * Kept in the stored spec, so a restarted coordinator knows it after `parent`'s record is gone.
   */
  owner?: ActorId
}

export interface ObjectInfo {
  id: ObjectId
  /**
   * From the coordinator: the job the object belongs to, or, on a refusal, the job that asked.
   * A peer keeps what it learns per job, so one job's tasks never see another job's objects.
   */
  job?: JobId
  size: number
  /** The value bytes when small enough to travel in control messages. */
  inline?: Uint8Array
  error?: SerializedError
}

/** `hash`: SHA-256 (hex) of a value that stays on its peer, so whoever fetches it can check the bytes. */
export interface ResultOut { size: number; inline?: Uint8Array; hash?: string }

// ---- peer -> coordinator ----
export interface HelloMsg {
  t: 'hello'
  v: number
  token: string
  kind: PeerKind
  role: PeerRole
  /** Set when reconnecting, so the coordinator can reconcile. */
  peerId?: PeerId
  /** With `peerId`: the secret the coordinator gave this peer at its first hello; without it the id is not kept. */
  peerSecret?: string
  /** A driver resuming its job after a reconnect. */
  jobId?: JobId
  capabilities: string[]
  resources: Record<string, number>
  /** Objects this peer still holds (reconnect). */
  holds?: ObjectId[]
  /** Actors still hosted here (reconnect). */
  actors?: ActorId[]
  /** Tasks still running here (reconnect). */
  running?: TaskId[]
  /** Of those, the ones waiting in get/wait (they hold no resources). */
  blocked?: TaskId[]
  /** For drivers: a label for the job. */
  name?: string
  /** For drivers: the time limit of this job's tasks that set no `timeoutMs` (the coordinator's default otherwise; 0: none). */
  taskTimeoutMs?: number
  /** The peer can open WebRTC data channels to other peers. */
  p2p?: boolean
}
export interface FnMsg { t: 'fn'; job?: JobId; def: FnDef }
export interface SubmitMsg { t: 'submit'; spec: TaskSpec }
/** `replicate`: keep this many copies on distinct peers, so the object outlives the peer that put it. */
export interface PutMsg { t: 'put'; id: ObjectId; size: number; inline?: Uint8Array; hash?: string; parent?: TaskId; replicate?: number }
/** `lost`: the executor died under the task (not the task's fault); the coordinator re-queues it. */
export interface DoneMsg {
  t: 'done'; task: TaskId; attempt: number; results?: ResultOut[]; error?: SerializedError; lost?: boolean
  /** How long the task's code ran, in ms: the scheduler sizes each peer's pipeline by it. */
  ms?: number
  /** An actor call's result comes with the actor's checkpoint after it (when its class has one), recorded together. */
  checkpoint?: Uint8Array
}
/** The executor hosting an actor died; the coordinator restarts the actor or ends it. */
export interface ActorLostMsg { t: 'actorLost'; actor: ActorId; reason: string }
/** `job`: a worker asks on behalf of a task of this job, and may read only that job's objects. */
export interface SubMsg { t: 'sub'; ids: ObjectId[]; job?: JobId }
/** `job`: a worker cancels on behalf of a task of this job, and only that job's tasks. */
export interface CancelMsg { t: 'cancel'; ids: TaskId[]; force?: boolean; job?: JobId }
export interface BlockedMsg { t: 'blocked'; task: TaskId; blocked: boolean }
export interface LogMsg { t: 'log'; task: TaskId; lines: string[] }
/** `relay`: skip peer-to-peer and have the coordinator relay the bytes (after P2P failed, or by policy). */
export interface PullMsg { t: 'pull'; req: number; id: ObjectId; relay?: boolean; job?: JobId }
/** The sender no longer needs these objects (explicit `free`, or its refs were garbage-collected). */
export interface FreeMsg { t: 'free'; ids: ObjectId[]; job?: JobId }
/** A tab hidden by its user (or shown again): take no new tasks meanwhile. */
export interface PauseMsg { t: 'pause'; paused: boolean }
/** The sender now holds a copy of these objects (it fetched them): another place to read them from. */
export interface HeldMsg { t: 'held'; ids: ObjectId[] }
/** The sender dropped its copies of these objects to stay under its object-store cap. */
export interface EvictedMsg { t: 'evicted'; ids: ObjectId[] }
/** WebRTC signalling for the data plane, relayed by the coordinator; `link` names one connection attempt. */
export interface SignalMsg { t: 'signal'; to: PeerId; link: string; data: unknown }
/** `hash`: on a relayed object's last chunk, the SHA-256 its producer reported, for the reader to check. */
export interface ChunkMsg { t: 'chunk'; req: number; seq: number; data: Uint8Array; last: boolean; size?: number; hash?: string }
export interface ServeFailMsg { t: 'serveFail'; req: number; reason: string }
export interface PingMsg { t: 'ping' }
export interface ByeMsg { t: 'bye' }

export type PeerToCoordinator =
  | HelloMsg | FnMsg | SubmitMsg | PutMsg | DoneMsg | SubMsg | CancelMsg | BlockedMsg
  | LogMsg | PullMsg | ChunkMsg | ServeFailMsg | PingMsg | ByeMsg | ActorLostMsg | SignalMsg | FreeMsg | EvictedMsg | HeldMsg | PauseMsg

/** Messages the coordinator acknowledges once committed, and peers replay after a reconnect (all idempotent). */
export const DURABLE_TYPES = new Set(['fn', 'submit', 'put', 'done', 'free'])

// ---- coordinator -> peer ----
export interface Limits {
  maxFrameBytes: number
  inlineMaxBytes: number
  relayChunkBytes: number
}
/**
 * `pingMs`: how often the peer must ping; the coordinator drops a peer silent for several of these.
 * `grantKey`: this session's secret; the coordinator signs grants to read objects held here with it.
 */
export interface WelcomeMsg {
  t: 'welcome'; peerId: PeerId; jobId?: JobId; limits: Limits; pingMs: number
  grantKey: Uint8Array
  /**
   * Proves this peer's id on a reconnect (hello.peerSecret), and authenticates its HTTP requests
   * (`Authorization: Peer <peerId>:<peerSecret>`, e.g. for the bundles of jobs it runs).
   */
  peerSecret: string
  /** The peer joined with a trusted join token: it may run what no quorum can check (a job's main). */
  trusted: boolean
  /** STUN/TURN servers for the data plane (RTCIceServer shape). */
  iceServers: { urls: string | string[]; username?: string; credential?: string }[]
  /**
   * The http(s) URLs of every coordinator of the grid (hot standbys sharing one store), the leader
   * first. Peers fail over along this list when their coordinator goes; absent on a lone coordinator.
   */
  coordinators?: string[]
}
/**
 * WebSocket close code of a standby coordinator: it takes no peers until it becomes the leader, so
 * try another coordinator now. The close reason names the leader's http(s) URL when the standby knows
 * it (e.g. `standby; leader https://a.example.org`; a close reason is at most 123 bytes).
 */
export const CLOSE_STANDBY = 4503

/**
 * The longest pause a peer makes between reconnect attempts (it jitters ±25%): a restarted
 * coordinator's reconciliation window shorter than that may fail actors whose peers were coming back.
 */
export const MAX_RECONNECT_PAUSE_MS = 3000

export interface AckMsg { t: 'ack'; n: number }
export interface RunMsg {
  t: 'run'
  spec: TaskSpec
  job: JobId
  attempt: number
  /** Function definitions this peer has not been sent yet. */
  fns?: FnDef[]
  /** What is known of the task's dependencies: inline values, or just sizes to pull. */
  deps: ObjectInfo[]
  /** Re-creating an actor: its last checkpoint, for its `restore`. */
  restore?: Uint8Array
}
export interface ObjMsg { t: 'obj'; info: ObjectInfo }
/** Who holds an object, each with a grant that lets this peer read it from that holder directly. */
export interface PullPlanMsg { t: 'pullPlan'; req: number; id: ObjectId; size: number; hash?: string; holders: { peer: PeerId; grant: Grant }[] }
export interface SignalFromMsg { t: 'signal'; from: PeerId; link: string; data: unknown }
/** These objects were freed: drop their bytes. */
export interface DropMsg { t: 'drop'; ids: ObjectId[] }
/** Fetch these objects and keep them (not evictable): another copy, for a put that asked for `replicate`. */
export interface ReplicateMsg { t: 'replicate'; infos: ObjectInfo[] }
/** Fresh STUN/TURN servers (TURN credentials expire): used for data channels opened from now on. */
export interface IceMsg { t: 'ice'; iceServers: WelcomeMsg['iceServers'] }
/** A peer left: drop data channels to it now, rather than wait for WebRTC to notice. */
export interface PeerLeftMsg { t: 'peerLeft'; peer: PeerId }
export interface CancelTaskMsg { t: 'cancelTask'; task: TaskId; reason: string }
export interface ServeMsg { t: 'serve'; req: number; id: ObjectId }
export interface PullFailMsg { t: 'pullFail'; req: number; id: ObjectId; error: SerializedError }
export interface TaskLogMsg { t: 'tlog'; task: TaskId; name: string; peer: PeerId; lines: string[] }
export interface ErrorMsg { t: 'error'; code: string; message: string; limit?: string; fatal?: boolean }
export interface PongMsg { t: 'pong' }

export type CoordinatorToPeer =
  | WelcomeMsg | AckMsg | RunMsg | ObjMsg | CancelTaskMsg | ServeMsg | ChunkMsg | PullFailMsg
  | TaskLogMsg | ErrorMsg | PongMsg | PullPlanMsg | SignalFromMsg | PeerLeftMsg | DropMsg | ReplicateMsg | IceMsg

// ---- HTTP API shapes ----
export type TaskState = 'waiting' | 'ready' | 'running' | 'finished' | 'failed' | 'cancelled'
export type JobState = 'running' | 'finished' | 'failed' | 'cancelled'

export interface PeerInfo {
  id: PeerId
  kind: PeerKind
  role: PeerRole
  capabilities: string[]
  resources: Record<string, number>
  load: number
  running: number
  paused: boolean
  /** 1 to start; it drops when the peer's results disagree with a quorum of other peers'. */
  reputation: number
  /** Below the reputation threshold: no more work until an operator releases it. */
  quarantined: boolean
  /** Joined with a trusted join token: it may run a job's main. */
  trusted?: boolean
  /** The address it connects from (behind a trusted proxy, the one the proxy saw). */
  address?: string
  tasksDone: number
  connectedAt: number
  /** Objects whose bytes this peer holds (not counting small ones, which live in the coordinator). */
  objects: number
  bytesHeld: number
}

export interface JobInfo {
  id: JobId
  name: string
  state: JobState
  createdAt: number
  finishedAt?: number
  tasks: Record<TaskState, number>
  result?: unknown
  error?: SerializedError
  /** Why the job's work is not running yet, when the coordinator knows (e.g. its main waits for a trusted worker): the first `infeasible` message. */
  waiting?: string
  /**
   * Work of this job that no connected peer could ever run (a capability, a resource or trust no
   * connected worker offers), grouped by what it needs. Said at once, not left waiting in silence
   * (the job's log says it too, once); a group goes when its tasks are placed (such a worker joined) or end.
   */
  infeasible?: InfeasibleWork[]
  /**
   * Retention dropped this finished job's work (its tasks, objects, actors and log): `tasks`
   * and `result` are what was written down then, and only this summary is left, until it expires too.
   */
  detailsExpired?: true
}

/** Tasks of a job that no connected peer could ever run (JobInfo.infeasible). */
export interface InfeasibleWork {
  /** What they need that no connected worker offers, e.g. `capability webgpu`, `gpu 2`, `a trusted worker`. */
  needs: string[]
  /** What the connected workers offer. */
  offered: string
  /** How many of the job's tasks wait for it, and the first of them. */
  tasks: number
  task: { id: TaskId; name: string }
  /** When it was first seen (ms since the epoch). */
  since: number
  /** All of it in one line, as the job's log says it. */
  message: string
}

export interface TaskInfo {
  id: TaskId
  name: string
  state: TaskState
  attempts: number
  peer?: PeerId
  parent?: TaskId
  actor?: ActorId
  error?: SerializedError
  /** When its last attempt started, and when it ended (ms since the epoch). */
  startedAt?: number
  endedAt?: number
}

/**
 * One page of a list the HTTP API serves: `GET …?limit=&cursor=&state=` on jobs and on a job's
 * tasks, objects, actors and log. `limit` defaults to PAGE_LIMITS.default and may not pass
 * PAGE_LIMITS.max; `cursor` is the `next` of the page before (opaque); `state` keeps those in that state.
 */
export interface Page<T> {
  items: T[]
  /** How many match, over all pages (with the `state` filter applied). */
  total: number
  /** More follow this page: ask again with `cursor=<next>`. */
  truncated: boolean
  next?: string
}
export const PAGE_LIMITS = { default: 100, max: 10_000 } as const

/** A line of a job's log: `seq` counts from 1 over the whole job (lines dropped to keep within budget keep their numbers); SSE 'log' events carry it as their id. */
export interface LogLine { seq: number; line: string }

/**
 * GET /api/summary: the grid in counts, kept as things change, so reading it costs nothing
 * whatever the number of peers and tasks (what the dashboard, the IDE and `colony status` poll).
 */
export interface GridSummary {
  at: number
  /** Whether this coordinator serves yet (see /readyz): false while a restarted one waits for its peers. */
  ready: boolean
  peers: { total: number; byKind: Record<string, number>; byRole: Record<string, number>; quarantined: number; paused: number }
  /** Tasks of the jobs kept, by state (`ready` = queued for a slot). */
  tasks: Record<TaskState, number>
  jobs: Record<JobState, number>
  /** Since the coordinator started. */
  tasksFinishedTotal: number
  objects: { kept: number; bytes: number }
}

/**
 * GET /api/history?since=<ms> (operator): the grid over time, sampled by the coordinator every
 * `intervalMs` and kept for the last `capacity` samples, as columns (what a chart takes), oldest
 * first, only those taken after `since`.
 */
export interface GridHistory {
  intervalMs: number
  capacity: number
  /** When each sample was taken, ms since the epoch. */
  at: number[]
  /** Tasks finished per second since the sample before. */
  tasksPerSecond: number[]
  /** Tasks ready and waiting for a slot. */
  queued: number[]
  running: number[]
  /** Connected peers (workers and drivers). */
  peers: number[]
}

export interface ObjectSummary { id: ObjectId; state: 'pending' | 'ready' | 'error'; size: number; inline: boolean; holders: PeerId[] }
export interface ActorSummary {
  id: ActorId; name: string; state: string; peer?: PeerId; restarts: number; queued: number
  /** The actor it was created from (inside one of its calls): it ends when that one ends. */
  owner?: ActorId
  /** Why a dead actor ended (killed, its peer died, its owner actor ended, ...): what its calls fail with. */
  error?: SerializedError
}
