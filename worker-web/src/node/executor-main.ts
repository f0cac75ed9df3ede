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

// A broken pipe or channel means the peer is gone: there is no one left to run for. Without the
// 'error' listeners, the error about a broken stderr would be reported on that stderr, raising the
// same error again, for ever: an orphan seen spinning a core after its peer was killed, never
// reaching the 'disconnect' below, as each report queued the next ahead of all I/O.
const peerGone = (err: unknown) => ['EPIPE', 'ERR_IPC_CHANNEL_CLOSED', 'ERR_STREAM_DESTROYED'].includes((err as { code?: string })?.code ?? '')
for (const out of [process.stdout, process.stderr]) out.on('error', () => process.exit(0))
const report = (what: string, err: unknown) => {
  if (peerGone(err) || !process.connected) process.exit(0)
  process.stderr.write(`[executor ${process.pid}] ${what}: ${(err as Error)?.stack ?? err}\n`)
}
process.on('message', (msgs: ToExecutor[]) => runtime.onMessages(msgs))
process.on('uncaughtException', (err) => report('uncaught', err))
process.on('unhandledRejection', (err) => report('unhandled rejection', err))
process.on('disconnect', () => process.exit(0))
send([{ k: 'started' }] satisfies ToHost[])
