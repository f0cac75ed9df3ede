/**
 * Between a peer and its executors (Node child processes, or Web Workers in a tab).
 * Job code runs only on the executor side; it never sees the token or the socket.
 */
import type { FnDef, ObjectId, ObjectInfo, SerializedError, TaskId, TaskSpec } from '@colony-grid/shared'

export interface ExecTask {
  spec: TaskSpec
  job: string
  attempt: number
  /** The peer that runs it (`colony.peerId`). */
  peer: string
  /** The function to call; left out when the executor already has it. */
  fn?: FnDef
  /** Where the executor imports a bundle function's module from. */
  bundleUrl?: string
  /** Dependency values, as bytes, for the top-level ObjectRefs in the arguments. */
  deps: [ObjectId, Uint8Array][]
  /** Re-creating an actor: the checkpoint its `restore(state)` gets. */
  restore?: Uint8Array
}

export interface ExecOutcome {
  results?: Uint8Array[]
  error?: SerializedError
  /** The executor died under the task; not the task's fault. */
  lost?: boolean
  /** How long the task's code ran, in ms. */
  ms?: number
  /** An actor call: the actor's `checkpoint()` right after it, encoded. */
  checkpoint?: Uint8Array
}

/** What code inside a task asks of the grid, on behalf of that task. */
export type GridOp =
  | { op: 'fn'; def: FnDef }
  | { op: 'submit'; spec: TaskSpec }
  | { op: 'put'; id: ObjectId; bytes: Uint8Array; replicate?: number }
  | { op: 'cancel'; ids: TaskId[]; force: boolean }
  | { op: 'blocked'; blocked: boolean }
  | { op: 'free'; ids: ObjectId[] }

export type GridRequest = { op: 'ready'; id: ObjectId } | { op: 'fetch'; info: ObjectInfo }

export type ToExecutor =
  | { k: 'run'; task: ExecTask }
  | { k: 'cancel'; task: TaskId }
  | { k: 'reply'; req: number; value?: unknown; error?: SerializedError }

export type ToHost =
  | { k: 'started' }
  /** An actor call has started (earlier ones finished): its timeout runs from here. */
  | { k: 'begin'; task: TaskId }
  | { k: 'done'; task: TaskId; outcome: ExecOutcome }
  | { k: 'log'; task: TaskId; lines: string[] }
  | { k: 'grid'; task: TaskId; op: GridOp }
  | { k: 'req'; req: number; task: TaskId; op: GridRequest }

/** The peer side of an executor pool. */
export interface ExecutorHost {
  done(task: TaskId, outcome: ExecOutcome): void
  log(task: TaskId, lines: string[]): void
  grid(task: TaskId, op: GridOp): void
  request(task: TaskId, op: GridRequest): Promise<unknown>
  /** An executor died with actors in it. */
  actorLost(actor: string, reason: string): void
}

/** Runs tasks somewhere isolated from the peer; Node and browser each provide one. */
export interface ExecutorPool {
  readonly size: number
  start(host: ExecutorHost): Promise<void>
  run(task: ExecTask): void
  /** Stops a task; an executor that cannot interrupt it is replaced, and its other tasks come back as lost. */
  cancel(task: TaskId): void
  dropActor(actor: string): void
  actorIds(): string[]
  close(): Promise<void>
}

