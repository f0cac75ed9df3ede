/**
 * A browser executor: a dedicated Web Worker, driven by its page through comlink.
 * Job code runs only here: no DOM, no token, no sockets of the page. A worker runs
 * one task at a time (browsers have no AsyncLocalStorage, so interleaved tasks could
 * not tell whose grid `colony.grid` is); the page adds workers when tasks wait.
 *
 * The exception is an actor with maxConcurrency > 1 (it has a worker of its own): its calls
 * interleave at their awaits. The current task is then exact while a call runs before its first
 * await; after one, it is the latest started of the calls still running, which is the same actor
 * and job, but may be another call: its console lines may be logged under that call, and work it
 * submits through `colony.grid` counted as that call's. It is never a call that has ended (whose
 * grid the peer would ignore). Code that reads `colony.grid` at the start of the call and keeps
 * it, as task code should, uses its own grid throughout.
 */
import * as Comlink from 'comlink'
import { ExecutorRuntime, type TaskContext } from '../core/executor-runtime.js'
import type { ToExecutor, ToHost } from '../core/executor-protocol.js'
import * as ml from './ml.js'

let current: TaskContext | undefined
/** The tasks running here, oldest first: more than one only for a concurrent actor's calls. */
const live: TaskContext[] = []
let toHost: ((msgs: ToHost[]) => void) | undefined
const backlog: ToHost[][] = []

/** A task's code has ended: the current task is now the latest started of those still running. */
function ended(ctx: TaskContext): void {
  live.splice(live.indexOf(ctx), 1)
  if (current === ctx) current = live.at(-1)
}

const runtime = new ExecutorRuntime({
  post: (msgs) => { if (toHost) toHost(msgs); else backlog.push(msgs) },
  runInTask: (ctx, fn) => {
    current = ctx
    live.push(ctx)
    let out: unknown
    try { out = fn() } catch (e) { ended(ctx); throw e }
    if (out instanceof Promise) return out.finally(() => ended(ctx)) as never
    ended(ctx)
    return out as never
  },
  current: () => current,
  importModule: (url) => import(/* @vite-ignore */ url) as Promise<Record<string, unknown>>,
  globals: { ml: ml.ml },
})

for (const level of ['log', 'info', 'warn', 'error', 'debug'] as const) {
  const original = console[level].bind(console)
  console[level] = (...args: unknown[]) => {
    if (!current) { original(...args); return }
    const text = args.map((a) => (typeof a === 'string' ? a : (() => { try { return JSON.stringify(a) } catch { return String(a) } })())).join(' ')
    runtime.logLine(current.taskId, level === 'log' || level === 'info' ? text : `${level}: ${text}`)
  }
}

const api = {
  connect(post: (msgs: ToHost[]) => void, mlConfig?: ml.MlConfig): void {
    if (mlConfig) ml.configureMl(mlConfig)
    toHost = post
    for (const msgs of backlog.splice(0)) post(msgs)
  },
  deliver(msgs: ToExecutor[]): void { runtime.onMessages(msgs) },
  /** A new ML config (its files' coordinator changed in a failover): for runtimes not loaded yet. */
  configureMl(mlConfig: ml.MlConfig): void { ml.configureMl(mlConfig) },
}
export type ExecutorWorkerApi = typeof api

Comlink.expose(api)
runtime.post({ k: 'started' })
