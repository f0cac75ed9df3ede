/**
 * Entry of a Node executor: a child process started for one job, under Node's permission
 * model (reads only in its job's folder, no writes, no child processes) and, on Linux, in
 * namespaces of its own (executor-pool.ts, confine.ts): it is PID 1 there, with no network.
 * It talks to its peer over the IPC channel only; it never sees the join token or the
 * coordinator's socket.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { format } from 'node:util'
import { ExecutorRuntime, type TaskContext } from '../core/executor-runtime.js'
import type { ToExecutor, ToHost } from '../core/executor-protocol.js'
import { nodeMl } from './ml.js'

const als = new AsyncLocalStorage<TaskContext>()
const send = process.send!.bind(process)

const runtime = new ExecutorRuntime({
  post: (msgs: ToHost[]) => { send(msgs) },
  runInTask: (ctx, fn) => als.run(ctx, fn),
  current: () => als.getStore(),
  importModule: (url) => import(url) as Promise<Record<string, unknown>>,
  // argv: the ML runtimes' folder, and onnxruntime-node's where the peer has it (executor-pool.ts).
  globals: { ml: nodeMl(process.argv[2], process.argv[3] || undefined) },
})

// console output inside a task goes to the task's log; outside a task, to stderr.
for (const level of ['log', 'info', 'warn', 'error', 'debug'] as const) {
  const original = console[level].bind(console)
  console[level] = (...args: unknown[]) => {
    const ctx = als.getStore()
    if (ctx) runtime.logLine(ctx.taskId, level === 'log' || level === 'info' ? format(...args) : `${level}: ${format(...args)}`)
    else original(...args)
  }
}

process.on('message', (msgs: ToExecutor[]) => runtime.onMessages(msgs))
process.on('uncaughtException', (err) => { process.stderr.write(`[executor ${process.pid}] uncaught: ${err.stack ?? err}\n`) })
process.on('unhandledRejection', (err) => { process.stderr.write(`[executor ${process.pid}] unhandled rejection: ${(err as Error)?.stack ?? err}\n`) })
process.on('disconnect', () => process.exit(0))
send([{ k: 'started' }] satisfies ToHost[])
