/**
 * Errors a user sees. Each carries a stable `code`, and crosses process and
 * network boundaries as a plain SerializedError so the remote stack survives.
 */
import { JOB_TEXT_LIMITS, clip } from './limits.js'

export interface SerializedError {
  type: string
  message: string
  stack?: string
  remoteStack?: string
  taskId?: string
  taskName?: string
  peerId?: string
  objectId?: string
  limit?: string
  /** A platform error code, e.g. ERR_ACCESS_DENIED. */
  code?: string
}

export class ColonyError extends Error {
  readonly code: string = 'COLONY_ERROR'
  taskId?: string
  taskName?: string
  peerId?: string
  objectId?: string
  constructor(message: string, fields: Partial<SerializedError> = {}) {
    super(message)
    // By table, not new.target.name: minified page bundles rename classes, and names travel in SerializedError.type.
    this.name = ERROR_NAMES.get(new.target) ?? new.target.name
    if (fields.taskId) this.taskId = fields.taskId
    if (fields.taskName) this.taskName = fields.taskName
    if (fields.peerId) this.peerId = fields.peerId
    if (fields.objectId) this.objectId = fields.objectId
  }
  toJSON(): SerializedError { return serializeError(this) }
}

/** A task's own code threw. `remoteStack` is the stack as it was on the peer. */
export class TaskError extends ColonyError {
  override readonly code = 'TASK_FAILED'
  readonly remoteStack: string
  constructor(message: string, fields: Partial<SerializedError> = {}) {
    const where = `task ${fields.taskName ?? '?'} (${fields.taskId ?? '?'}) on peer ${fields.peerId ?? '?'}`
    super(`${where} failed: ${message}`, fields)
    this.remoteStack = fields.remoteStack ?? ''
    // Show the remote stack first: it is where the bug is.
    this.stack = `${this.name}: ${this.message}\n--- remote stack ---\n${this.remoteStack}\n--- local stack ---\n${this.stack?.split('\n').slice(1).join('\n') ?? ''}`
  }
}

/** The peer running a task vanished and the task ran out of retries. */
export class PeerDiedError extends ColonyError { override readonly code = 'PEER_DIED' }
/** No copy of an object is left and it cannot be rebuilt (a `put` object, or lineage exhausted). */
export class ObjectLostError extends ColonyError { override readonly code = 'OBJECT_LOST' }
/** A deadline passed: `get`/`wait` timeouts, or a task's `timeoutMs`. */
export class TimeoutError extends ColonyError { override readonly code = 'TIMEOUT' }
/** The task or its job was cancelled. */
export class CancelledError extends ColonyError { override readonly code = 'CANCELLED' }
/** A token was missing, wrong, revoked, or of the wrong kind. */
export class AuthError extends ColonyError { override readonly code = 'AUTH' }
/** A size, count or rate limit at a boundary was passed; `limit` names it. */
export class LimitError extends ColonyError {
  override readonly code = 'LIMIT'
  readonly limit: string
  constructor(limit: string, message: string) { super(message); this.limit = limit }
}
/** A peer sent something the protocol does not allow. */
export class ProtocolError extends ColonyError { override readonly code = 'PROTOCOL' }

const classes: Record<string, new (m: string, f?: Partial<SerializedError>) => ColonyError> = {
  ColonyError, TaskError, PeerDiedError, ObjectLostError, TimeoutError, CancelledError, AuthError, ProtocolError,
}
const ERROR_NAMES = new Map<unknown, string>([...Object.entries(classes).map(([n, C]) => [C, n] as const), [LimitError, 'LimitError']])

export function serializeError(err: unknown): SerializedError {
  if (err instanceof ColonyError) {
    const out: SerializedError = { type: err.name, message: err.message, stack: err.stack }
    for (const k of ['taskId', 'taskName', 'peerId', 'objectId'] as const) if (err[k]) out[k] = err[k]
    if (err instanceof TaskError) out.remoteStack = err.remoteStack
    if (err instanceof LimitError) out.limit = err.limit
    return clipError(out)
  }
  if (err instanceof Error) {
    const out: SerializedError = { type: textOf(err.name) || 'Error', message: textOf(err.message), stack: err.stack === undefined ? undefined : textOf(err.stack) }
    const code = (err as { code?: unknown }).code
    if (typeof code === 'string') out.code = code
    return clipError(out)
  }
  return clipError({ type: 'Error', message: textOf(err) })
}

/** Job code can throw anything, including objects whose fields are not strings, or whose toString throws. */
function textOf(v: unknown): string {
  if (typeof v === 'string') return v
  try { return String(v) } catch { return '<an error that cannot be shown as text>' }
}

/**
 * Cuts every field of an error to what the protocol carries (JOB_TEXT_LIMITS): an error thrown by
 * job code, however long its message, fails only its task and never the worker's connection.
 */
export function clipError(e: SerializedError): SerializedError {
  // Fields are made text first: an executor's channel can carry whatever job code posts on it.
  const out: SerializedError = { type: clip(textOf(e.type), 200), message: clip(textOf(e.message), JOB_TEXT_LIMITS.errorMessageChars) }
  if (e.stack !== undefined) out.stack = clip(textOf(e.stack), JOB_TEXT_LIMITS.stackChars)
  if (e.remoteStack !== undefined) out.remoteStack = clip(textOf(e.remoteStack), JOB_TEXT_LIMITS.stackChars)
  if (e.taskName !== undefined) out.taskName = clip(textOf(e.taskName), JOB_TEXT_LIMITS.nameChars)
  for (const k of ['taskId', 'peerId', 'objectId', 'limit', 'code'] as const) if (e[k] !== undefined) out[k] = clip(textOf(e[k]), 200)
  return out
}

/** Turns a SerializedError back into the matching class, so `instanceof` works on the driver. */
export function deserializeError(e: SerializedError): ColonyError {
  if (e.type === 'LimitError') return new LimitError(e.limit ?? 'unknown', e.message)
  const Cls = classes[e.type]
  if (Cls === TaskError) return new TaskError(e.message, e)
  if (Cls) {
    const err = new Cls(e.message, e)
    if (e.stack) err.stack = e.stack
    return err
  }
  return new TaskError(e.message, { ...e, remoteStack: e.remoteStack ?? e.stack })
}
