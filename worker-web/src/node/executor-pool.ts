/**
 * A Node peer's executors: child processes under Node's permission model
 * (`--experimental-permission`, file reads only inside a private sandbox folder,
 * no child processes, a heap cap). Node 20's permission model does not restrict the
 * network: job code on a Node peer can open sockets.
 *
 * A task past its `timeoutMs`, or a cancelled one, ends its executor (running JS
 * cannot be interrupted); the executor is replaced, and the other tasks it had go
 * back to the coordinator as lost, to run again.
 *
 * Each actor gets an executor process of its own (as in Ray), so nothing done to
 * ordinary tasks can take an actor down with it.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, mkdirSync, existsSync, copyFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { TimeoutError, serializeError } from '@colony/shared'
import type { ExecTask, ExecutorHost, ExecutorPool, ToExecutor, ToHost } from '../core/executor-protocol.js'
import { nextTurn } from '../core/turn.js'

export interface NodeExecutorOptions {
  executors: number
  /** Heap cap of each executor, in MB. */
  memoryMb?: number
  log?: (line: string) => void
}

interface Executor {
  /** Its slot in the task pool, or -1 for an actor's own executor. */
  index: number
  child: ChildProcess
  tasks: Map<string, ExecTask>
  actors: Set<string>
  knownFns: Set<string>
  outbox: ToExecutor[]
  flushQueued: boolean
  dead: boolean
  started: Promise<void>
}

let executorScript: Promise<string> | undefined

/** Bundles the executor entry into one file, so the sandbox can read it without reading node_modules. */
async function buildExecutorScript(dir: string): Promise<string> {
  const { build } = await import('esbuild')
  const entry = join(dirname(fileURLToPath(import.meta.url)), 'executor-main.js')
  const outfile = join(dir, 'executor.mjs')
  await build({
    entryPoints: [entry], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20',
    external: ['msgpackr-extract'], logLevel: 'error',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  })
  return outfile
}

export class NodeExecutorPool implements ExecutorPool {
  readonly size: number
  readonly sandbox: string
  private host?: ExecutorHost
  private executors: Executor[] = []
  private actorHosts = new Map<string, Executor>()
  private timers = new Map<string, NodeJS.Timeout>()
  private closed = false
  private script?: string
  private readonly say: (line: string) => void

  constructor(private readonly opts: NodeExecutorOptions) {
    this.size = Math.max(1, opts.executors)
    this.sandbox = mkdtempSync(join(tmpdir(), 'colony-peer-'))
    mkdirSync(join(this.sandbox, 'bundles'))
    this.say = opts.log ?? ((l) => console.error(`[executors] ${l}`))
  }

  async start(host: ExecutorHost): Promise<void> {
    this.host = host
    executorScript ??= buildExecutorScript(mkdtempSync(join(tmpdir(), 'colony-executor-')))
    const built = await executorScript
    this.script = join(this.sandbox, 'executor.mjs')
    copyFileSync(built, this.script)
    for (let i = 0; i < this.size; i++) this.executors.push(this.spawn(i))
    await Promise.all(this.executors.map((e) => e.started))
  }

  /** Where a bundle's module is written so the sandboxed executor may import it. */
  bundlePath(hash: string): string { return join(this.sandbox, 'bundles', `${hash}.mjs`) }
  bundleUrl(hash: string): string { return pathToFileURL(this.bundlePath(hash)).href }
  hasBundle(hash: string): boolean { return existsSync(this.bundlePath(hash)) }

  private spawn(index: number): Executor {
    const child = fork(this.script!, [], {
      execArgv: [
        '--experimental-permission', `--allow-fs-read=${this.sandbox}`,
        `--max-old-space-size=${this.opts.memoryMb ?? 1024}`, '--enable-source-maps', '--no-warnings',
      ],
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // Job code gets none of the peer's environment (tokens may live there).
      env: { NODE_ENV: process.env.NODE_ENV ?? 'production', TZ: process.env.TZ ?? 'UTC' },
    })
    let markStarted!: () => void
    const e: Executor = {
      index, child, tasks: new Map(), actors: new Set(), knownFns: new Set(), outbox: [], flushQueued: false, dead: false,
      started: new Promise<void>((r) => { markStarted = r }),
    }
    child.on('message', (msgs: ToHost[]) => {
      for (const m of msgs) {
        if (m.k === 'started') markStarted()
        else this.fromExecutor(e, m)
      }
    })
    child.on('exit', (code, signal) => {
      if (e.dead || this.closed) return
      this.replace(e, `executor exited (${signal ?? `code ${code}`})`)
    })
    child.on('error', (err) => this.say(`executor ${index}: ${err.message}`))
    return e
  }

  private fromExecutor(e: Executor, m: ToHost): void {
    const host = this.host!
    switch (m.k) {
      case 'done': {
        const task = e.tasks.get(m.task)
        e.tasks.delete(m.task)
        this.clearTimer(m.task)
        if (task?.spec.createsActor && m.outcome.error) this.retire(e) // the actor never came to be
        host.done(m.task, m.outcome)
        break
      }
      case 'log': host.log(m.task, m.lines); break
      case 'grid': host.grid(m.task, m.op); break
      case 'req':
        host.request(m.task, m.op).then(
          (value) => this.send(e, { k: 'reply', req: m.req, value }),
          (err) => this.send(e, { k: 'reply', req: m.req, error: serializeError(err) }),
        )
        break
      case 'started': break
    }
  }

  private send(e: Executor, m: ToExecutor): void {
    if (e.dead) return
    e.outbox.push(m)
    if (e.flushQueued) return
    e.flushQueued = true
    // Messages wait until the child has its listener up; after that, one IPC message per turn.
    void e.started.then(() => nextTurn(() => {
      e.flushQueued = false
      const msgs = e.outbox
      e.outbox = []
      if (!e.dead && e.child.connected) e.child.send(msgs)
    }))
  }

  run(task: ExecTask): void {
    const e = this.pick(task)
    if (!e) {
      // The coordinator thinks an actor lives here that does not (its executor died): say so.
      this.host!.actorLost(task.spec.actor!, 'its executor is gone')
      this.host!.done(task.spec.id, { lost: true })
      return
    }
    e.tasks.set(task.spec.id, task)
    if (task.fn) {
      if (e.knownFns.has(`${task.job}/${task.fn.id}`)) task = { ...task, fn: undefined }
      else e.knownFns.add(`${task.job}/${task.fn.id}`)
    }
    const ms = task.spec.opts.timeoutMs
    if (ms !== undefined) {
      this.timers.set(task.spec.id, setTimeout(() => this.timeout(task.spec.id, ms), ms))
    }
    this.send(e, { k: 'run', task })
  }

  private pick(task: ExecTask): Executor | undefined {
    if (task.spec.actor) return this.actorHosts.get(task.spec.actor)
    if (task.spec.createsActor) {
      const e = this.spawn(-1)
      e.actors.add(task.spec.id)
      this.actorHosts.set(task.spec.id, e)
      return e
    }
    return this.executors.reduce((a, b) => (b.tasks.size < a.tasks.size ? b : a))
  }

  private timeout(taskId: string, ms: number): void {
    this.timers.delete(taskId)
    const e = this.all().find((x) => x.tasks.has(taskId))
    if (!e) return
    const task = e.tasks.get(taskId)!
    e.tasks.delete(taskId)
    this.host!.done(taskId, { error: serializeError(new TimeoutError(
      `task ${task.spec.name} (${taskId}) ran past its timeoutMs of ${ms} ms and was stopped`, { taskId, taskName: task.spec.name })) })
    this.replace(e, `task ${taskId} timed out`)
  }

  cancel(taskId: string): void {
    this.clearTimer(taskId)
    const e = this.all().find((x) => x.tasks.has(taskId))
    if (!e) return
    e.tasks.delete(taskId)
    // An actor keeps its state: a call not yet started is skipped; one running finishes and is ignored.
    if (e.index < 0) this.send(e, { k: 'cancel', task: taskId })
    else this.replace(e, `task ${taskId} was cancelled`)
  }

  dropActor(actor: string): void {
    const e = this.actorHosts.get(actor)
    if (e) this.retire(e)
  }

  actorIds(): string[] { return [...this.actorHosts.keys()] }

  private all(): Executor[] { return [...this.executors, ...this.actorHosts.values()] }

  /** Ends an actor's executor on purpose: nothing is reported lost. */
  private retire(e: Executor): void {
    for (const a of e.actors) this.actorHosts.delete(a)
    e.actors.clear()
    for (const id of e.tasks.keys()) { this.clearTimer(id); this.host!.done(id, { lost: true }) }
    e.tasks.clear()
    e.dead = true
    e.child.kill('SIGKILL')
  }

  private clearTimer(taskId: string): void {
    const t = this.timers.get(taskId)
    if (t) { clearTimeout(t); this.timers.delete(taskId) }
  }

  /** Kills an executor and starts a fresh one in its place; its other work is reported lost. */
  private replace(e: Executor, reason: string): void {
    if (e.dead) return
    e.dead = true
    e.child.kill('SIGKILL')
    for (const id of e.tasks.keys()) { this.clearTimer(id); this.host!.done(id, { lost: true }) }
    for (const a of e.actors) { this.actorHosts.delete(a); this.host!.actorLost(a, reason) }
    if (this.closed || e.index < 0) return
    this.say(`replacing executor ${e.index}: ${reason}`)
    this.executors[e.index] = this.spawn(e.index)
  }

  async close(): Promise<void> {
    this.closed = true
    for (const t of this.timers.values()) clearTimeout(t)
    await Promise.all(this.all().map((e) => new Promise<void>((resolve) => {
      e.dead = true
      if (e.child.exitCode !== null || e.child.signalCode !== null) { resolve(); return }
      e.child.once('exit', () => resolve())
      e.child.kill('SIGKILL')
    })))
    rmSync(this.sandbox, { recursive: true, force: true })
  }
}
