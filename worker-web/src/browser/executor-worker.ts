/**
 * A browser executor: a dedicated Web Worker, driven by its page through comlink.
 * Job code runs only here: no DOM, no token, no sockets of the page. A worker runs
 * one task at a time (browsers have no AsyncLocalStorage, so interleaved tasks could
 * not tell whose grid `colony.grid` is); the page adds workers when tasks wait.
 */
import * as Comlink from 'comlink'
import { ExecutorRuntime, type TaskContext } from '../core/executor-runtime.js'
import type { ToExecutor, ToHost } from '../core/executor-protocol.js'
import * as ml from './ml.js'

let current: TaskContext | undefined
let toHost: ((msgs: ToHost[]) => void) | undefined
const backlog: ToHost[][] = []

const runtime = new ExecutorRuntime({
  post: (msgs) => { if (toHost) toHost(msgs); else backlog.push(msgs) },
  runInTask: (ctx, fn) => {
    current = ctx
    const out = fn() as unknown
    if (out instanceof Promise) return out.finally(() => { if (current === ctx) current = undefined }) as never
    current = undefined
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
