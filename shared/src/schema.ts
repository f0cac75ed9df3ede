/**
 * zod schemas for everything that enters the coordinator from a peer: the trust
 * boundary. A message that fails here is answered with a ProtocolError and never used.
 */
import { z } from 'zod'
import type { PeerToCoordinator, TaskSpec } from './protocol.js'

const id = z.string().min(1).max(200)
const bytes = z.instanceof(Uint8Array)
const count = z.number().int().nonnegative()

const serializedError = z.object({
  type: z.string().max(200), message: z.string().max(100_000), stack: z.string().max(200_000).optional(),
  remoteStack: z.string().max(200_000).optional(), taskId: id.optional(), taskName: z.string().max(500).optional(),
  peerId: id.optional(), objectId: id.optional(), limit: z.string().max(200).optional(), code: z.string().max(200).optional(),
})

const CONCURRENCY = 'maxConcurrency is a whole number of calls, from 1 to 1000'
const CONCURRENCY_ACTORS_ONLY = 'maxConcurrency is an option of an actor\'s creation only: grid.remote(Class).options({ maxConcurrency }) (its calls all run under it)'

const taskOptions = z.object({
  resources: z.record(z.string().max(100), z.number().nonnegative().finite()).optional(),
  capabilities: z.array(z.string().max(100)).max(64).optional(),
  maxRetries: count.max(1000).optional(),
  retryExceptions: z.boolean().optional(),
  maxRestarts: count.max(1000).optional(),
  maxConcurrency: z.number(CONCURRENCY).int(CONCURRENCY).min(1, CONCURRENCY).max(1000, CONCURRENCY).optional(),
  // Past 2^31 - 1 ms a timer fires at once (setTimeout's range).
  timeoutMs: z.number().positive().max(2_147_483_647).optional(),
  numReturns: z.number().int().min(1).max(1000).optional(),
  replicas: z.number().int().min(1).max(9).optional(),
  quorum: z.number().int().min(1).max(9).optional(),
  compare: z.object({ tolerance: z.number().nonnegative().finite().optional() }).optional(),
})

const taskSpec = z.object({
  id, name: z.string().max(500), fn: z.string().max(200), args: bytes, deps: z.array(id).max(100_000),
  actor: id.optional(), method: z.string().max(200).optional(), createsActor: z.boolean().optional(),
  opts: taskOptions, parent: id.optional(),
}).refine((s) => s.opts.maxConcurrency === undefined || s.createsActor === true, { error: CONCURRENCY_ACTORS_ONLY, path: ['opts', 'maxConcurrency'] })

const fnDef = z.discriminatedUnion('kind', [
  z.object({ id, kind: z.literal('inline'), name: z.string().max(500), src: z.string().max(4_000_000) }),
  z.object({ id, kind: z.literal('bundle'), name: z.string().max(500), bundle: id, export: z.string().max(500) }),
])

export const peerMessage = z.discriminatedUnion('t', [
  z.object({
    t: z.literal('hello'), v: z.number(), token: z.string().max(500), kind: z.enum(['node', 'browser']),
    role: z.enum(['worker', 'driver']), peerId: id.optional(), peerSecret: z.string().max(200).optional(), jobId: id.optional(),
    capabilities: z.array(z.string().max(100)).max(64), resources: z.record(z.string().max(100), z.number().nonnegative().finite()),
    p2p: z.boolean().optional(), holds: z.array(id).max(1_000_000).optional(), actors: z.array(id).max(100_000).optional(), running: z.array(id).max(100_000).optional(), blocked: z.array(id).max(100_000).optional(), name: z.string().max(200).optional(), taskTimeoutMs: z.number().int().nonnegative().max(2_147_483_647).optional(),
  }),
  z.object({ t: z.literal('fn'), job: id.optional(), def: fnDef }),
  z.object({ t: z.literal('submit'), spec: taskSpec }),
  z.object({ t: z.literal('put'), id, size: count, inline: bytes.optional(), hash: z.string().max(128).optional(), parent: id.optional(), replicate: z.number().int().min(1).max(3).optional() }),
  z.object({
    t: z.literal('done'), task: id, attempt: count,
    results: z.array(z.object({ size: count, inline: bytes.optional(), hash: z.string().max(128).optional() })).max(1000).optional(),
    error: serializedError.optional(), lost: z.boolean().optional(), ms: z.number().nonnegative().finite().optional(),
    checkpoint: bytes.optional(),
  }),
  z.object({ t: z.literal('actorLost'), actor: id, reason: z.string().max(10_000) }),
  z.object({ t: z.literal('sub'), ids: z.array(id).max(100_000), job: id.optional() }),
  z.object({ t: z.literal('cancel'), ids: z.array(id).max(100_000), force: z.boolean().optional(), job: id.optional() }),
  z.object({ t: z.literal('blocked'), task: id, blocked: z.boolean() }),
  z.object({ t: z.literal('log'), task: id, lines: z.array(z.string().max(100_000)).max(10_000) }),
  z.object({ t: z.literal('pull'), req: count, id, relay: z.boolean().optional(), job: id.optional() }),
  z.object({ t: z.literal('signal'), to: id, link: z.string().max(64), data: z.unknown() }),
  z.object({ t: z.literal('chunk'), req: count, seq: count, data: bytes, last: z.boolean(), size: count.optional() }),
  z.object({ t: z.literal('serveFail'), req: count, reason: z.string().max(10_000) }),
  z.object({ t: z.literal('free'), ids: z.array(id).max(100_000), job: id.optional() }),
  z.object({ t: z.literal('evicted'), ids: z.array(id).max(100_000) }),
  z.object({ t: z.literal('held'), ids: z.array(id).max(100_000) }),
  z.object({ t: z.literal('pause'), paused: z.boolean() }),
  z.object({ t: z.literal('ping') }),
  z.object({ t: z.literal('bye') }),
])

/** Validates one inbound message; returns it typed, or a one-line reason. */
export function parsePeerMessage(raw: unknown): { ok: true; msg: PeerToCoordinator } | { ok: false; reason: string } {
  const r = peerMessage.safeParse(raw)
  if (r.success) return { ok: true, msg: r.data as PeerToCoordinator }
  const t = typeof raw === 'object' && raw !== null && 't' in raw ? String((raw as { t: unknown }).t) : '?'
  return { ok: false, reason: `bad '${t.slice(0, 40)}' message${issueText(r.error)}` }
}

/** Option objects found valid: a RemoteFunction sends the same one with every call, so it is checked once. */
const validOptions = new WeakSet<object>()

/**
 * Why the coordinator would refuse a task's options, in one line, or undefined. A driver checks
 * before it sends, so `.remote()` throws the reason at once: a refused submit would leave `get` waiting.
 */
export function taskOptionsProblem(spec: Pick<TaskSpec, 'createsActor' | 'opts'>): string | undefined {
  const opts: unknown = spec.opts
  if (!(typeof opts === 'object' && opts !== null && validOptions.has(opts))) {
    const r = taskOptions.safeParse(opts)
    if (!r.success) return `bad task options${issueText(r.error)}`
    validOptions.add(opts as object)
  }
  return spec.opts.maxConcurrency === undefined || spec.createsActor ? undefined : CONCURRENCY_ACTORS_ONLY
}

function issueText(error: z.ZodError): string {
  const issue = error.issues[0]
  const where = issue?.path.length ? ` at ${issue.path.join('.')}` : ''
  return `${where}: ${issue?.message ?? 'invalid'}`
}
