/**
 * What the control plane is made with, and the few constants its managers share.
 */
import type { JobInfo, Limits, PeerKind, TaskState } from '@colony-grid/shared'
import type { IceServersFor } from '../ice-servers.js'
import type { ControlStore, StoreSnapshot } from '../store/types.js'
import type { RetentionOptions } from './retention.js'

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
  /** How long finished jobs' work and summaries are kept (retention.ts); DEFAULT_RETENTION where unset. */
  retention?: Partial<RetentionOptions>
  /** The URLs of the grid's coordinators (this one first), for each welcome: peers fail over along them. */
  coordinators?: () => string[]
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
  /** Where task timings go (metrics.ts makes histograms of them); none: not measured. */
  taskTimings?: TaskTimings
}

/** How an attempt's report ended: results, an error, or its executor died under it. */
export type AttemptOutcome = 'finished' | 'failed' | 'lost'

/**
 * Timings of tasks as the control plane sees them (metrics.ts). Called on hot paths (inside a
 * scheduling turn, before its commit), with numbers only: an implementation must not allocate,
 * do I/O or throw per call, whatever the numbers (metrics.ts drops one that is not finite).
 * `readyAt` and `turnRequestedAt` are performance.now(); `startedAt` is Date.now(), as TaskRec keeps it.
 */
export interface TaskTimings {
  /** A turn begins; `requestedAt`: when the first event since the last turn asked for it. */
  turnBegan(requestedAt: number): void
  /** A task (or actor call) was sent to a peer to run; `readyAt`: when it was last queued as ready. */
  placed(readyAt: number | undefined): void
  /** A peer reported an attempt that started at `startedAt`. */
  ended(startedAt: number | undefined, outcome: AttemptOutcome, peerKind: PeerKind): void
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

export function newCounters(): Counters {
  return { relayedBytes: 0, duplicateResults: 0, tasksFinished: 0, tasksRetried: 0, badMessages: 0, quorumDisagreements: 0, peersQuarantined: 0, rateLimited: 0, signalsRefused: 0, holdsRefused: 0 }
}

/** What a job's listeners (GET /api/jobs/:id/events) hear: a log line, or its end. */
export type JobEvent = { type: 'log'; line: string; seq: number } | { type: 'state'; job: JobInfo }

export const TERMINAL: ReadonlySet<TaskState> = new Set(['finished', 'failed', 'cancelled'])
export const NO_RESOURCES: Record<string, number> = {}
/** What a job whose main cannot be placed says (its main runs only on a peer the operator trusts). */
export const WAITING_FOR_TRUST = 'waiting for a trusted worker: start one with colony worker --trusted --token <trusted join token>'

/** The resources a task holds while it runs: an actor call none (its actor holds them), an actor's creation none by default, a task 1 cpu by default. */
export function resourcesOf(spec: { actor?: string; createsActor?: boolean; opts: { resources?: Record<string, number> } }): Record<string, number> {
  return spec.actor ? NO_RESOURCES : { cpu: spec.createsActor ? 0 : 1, ...spec.opts.resources }
}
