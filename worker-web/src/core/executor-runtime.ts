/**
 * What runs inside an executor (a sandboxed Node child process, or a Web Worker):
 * it loads job functions, calls them, keeps actor instances, and gives task code
 * a Grid whose every operation goes through the host peer.
 */
import {
  LimitError, MAX_CHECKPOINT_BYTES, ObjectRef, decodeValue, encodeValue, serializeError, deserializeError,
  type FnDef, type ObjectId, type ObjectInfo, type SerializedError, type TaskId, type TaskSpec,
} from '@colony-grid/shared'
import { ActorSlot } from './actor-slot.js'
import type { GridBackend } from './backend.js'
import type { ExecTask, GridOp, GridRequest, ToExecutor, ToHost } from './executor-protocol.js'
import { Grid, setAmbientGrid } from './grid.js'
import { deferred, nextTurn, type Deferred } from './turn.js'

export interface TaskContext { taskId: TaskId; job: string; peer: string; grid: Grid; spec: TaskSpec }

export interface ExecutorEnv {
  post(msgs: ToHost[]): void
  /** Runs `fn` with `ctx` as the current task, for `colony.grid` and console capture. */
  runInTask<T>(ctx: TaskContext, fn: () => T): T
  current(): TaskContext | undefined
  importModule(url: string): Promise<Record<string, unknown>>
  /** More of the `colony` global task code sees (browser tabs add `ml`). */
  globals?: Record<string, unknown>
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Callable = (...args: any[]) => any

/** The `colony` global that task code reads: the grid of the task it runs in, and where it runs. */
export interface ColonyGlobal { readonly grid: Grid; readonly taskId: string; readonly peerId: string }

export class ExecutorRuntime {
  private readonly defs = new Map<string, FnDef>()
  private readonly compiled = new Map<string, Promise<Callable>>()
  private readonly modules = new Map<string, Promise<Record<string, unknown>>>()
  private readonly exportsByFn = new Map<unknown, { bundle: string; export: string }>()
  private readonly actors = new Map<string, ActorSlot>()
  private readonly replies = new Map<number, Deferred<unknown>>()
  private readonly definedFns = new Set<string>()
  /** Actor calls cancelled before they started: skipped when their turn comes. */
  private readonly cancelled = new Set<string>()
  private nextReq = 1
  private outbox: ToHost[] = []
  private flushQueued = false

  constructor(private readonly env: ExecutorEnv) {
    setAmbientGrid(() => env.current()?.grid)
    const current = () => {
      const ctx = env.current()
      if (!ctx) throw new Error('colony.grid is only available inside a task')
      return ctx
    }
    Object.defineProperty(globalThis, 'colony', {
      configurable: true,
      value: Object.freeze({ ...env.globals, get grid() { return current().grid }, get taskId() { return current().taskId }, get peerId() { return current().peer } }) satisfies ColonyGlobal,
    })
  }

  post(m: ToHost): void {
    this.outbox.push(m)
    if (!this.flushQueued) { this.flushQueued = true; nextTurn(() => this.flush()) }
  }

  private flush(): void {
    this.flushQueued = false
    if (this.outbox.length === 0) return
    const msgs = this.outbox
    this.outbox = []
    this.env.post(msgs)
  }

  /** Sends a task's console output to the host, marked with the task. */
  logLine(task: TaskId, line: string): void { this.post({ k: 'log', task, lines: [line] }) }

  actorIds(): string[] { return [...this.actors.keys()] }

  onMessages(msgs: ToExecutor[]): void {
    for (const m of msgs) {
      switch (m.k) {
        case 'run': void this.run(m.task); break
        case 'reply': {
          const d = this.replies.get(m.req)
          if (!d) break
          this.replies.delete(m.req)
          if (m.error) d.reject(deserializeError(m.error)); else d.resolve(m.value)
          break
        }
        // Running JS cannot be interrupted (the host replaces a task executor); a waiting actor call is skipped.
        case 'cancel': this.cancelled.add(m.task); break
      }
    }
  }

  request(task: TaskId, op: GridRequest): Promise<unknown> {
    const req = this.nextReq++
    const d = deferred<unknown>()
    this.replies.set(req, d)
    this.post({ k: 'req', req, task, op })
    return d.promise
  }

  private backendFor(task: TaskId, job: string): GridBackend {
    let blockedDepth = 0
    const op = (o: GridOp) => this.post({ k: 'grid', task, op: o })
    return {
      defineFn: (def) => {
        const key = `${job}/${def.id}`
        if (this.definedFns.has(key)) return
        this.definedFns.add(key)
        op({ op: 'fn', def })
      },
      submit: (spec) => op({ op: 'submit', spec }),
      put: (id, bytes, replicate) => op({ op: 'put', id, bytes, replicate }),
      ready: (id: ObjectId) => this.request(task, { op: 'ready', id }) as Promise<ObjectInfo>,
      fetch: (info: ObjectInfo) => this.request(task, { op: 'fetch', info }) as Promise<Uint8Array>,
      cancel: (ids, force) => op({ op: 'cancel', ids, force }),
      free: (ids) => op({ op: 'free', ids }),
      blocked: (b) => {
        blockedDepth += b ? 1 : -1
        if ((b && blockedDepth === 1) || (!b && blockedDepth === 0)) op({ op: 'blocked', blocked: b })
      },
      bundleExport: (fn) => this.exportsByFn.get(fn),
    }
  }

  private async run(task: ExecTask): Promise<void> {
    const { spec, job } = task
    if (task.fn) this.defs.set(`${job}/${task.fn.id}`, task.fn)
    const ctx: TaskContext = { taskId: spec.id, job, peer: task.peer, spec, grid: new Grid(this.backendFor(spec.id, job), spec.id) }
    let error: SerializedError | undefined
    let results: Uint8Array[] | undefined
    let checkpoint: Uint8Array | undefined
    const started = performance.now()
    try {
      let value: unknown
      if (spec.actor) ({ value, checkpoint } = await this.callActor(task, ctx))
      else value = await this.env.runInTask(ctx, () => this.call(task, ctx))
      const n = spec.opts.numReturns ?? 1
      if (n === 1) results = [encodeValue(value)]
      else if (Array.isArray(value) && value.length === n) results = value.map((v) => encodeValue(v))
      else throw new TypeError(`${spec.name} has numReturns ${n} but returned ${Array.isArray(value) ? `${value.length} values` : 'a non-array'}`)
    } catch (e) {
      error = serializeError(e)
    }
    const ms = performance.now() - started
    this.post({ k: 'done', task: spec.id, outcome: error ? { error, ms } : { results, ms, checkpoint } })
  }

  private args(task: ExecTask): unknown[] {
    const depValues = new Map(task.deps)
    const raw = decodeValue<unknown[]>(task.spec.args)
    return raw.map((a) => (a instanceof ObjectRef && depValues.has(a.id) ? decodeValue(depValues.get(a.id)!) : a))
  }

  /**
   * Calls to one actor start in the order they arrive, each once fewer than its maxConcurrency run
   * (by default one: when the call before it has ended); each is the current task only while it runs.
   * An actor whose class has `checkpoint()` (never concurrent) is checkpointed right after each call, before the next starts.
   */
  private async callActor(task: ExecTask, ctx: TaskContext): Promise<{ value: unknown; checkpoint?: Uint8Array }> {
    const { spec } = task
    const slot = this.actors.get(spec.actor!)
    if (!slot) throw new Error(`actor ${spec.actor} is not hosted by this executor (it may have been restarted elsewhere)`)
    const method = spec.method ?? ''
    const f = slot.instance[method]
    if (method === 'constructor' || typeof f !== 'function') throw new TypeError(`${spec.name}: the actor has no method '${method}'`)
    const checkpointed = typeof slot.instance.checkpoint === 'function' && method !== 'checkpoint' && method !== 'restore'
    await slot.enter()
    try {
      if (this.cancelled.has(spec.id)) throw new Error(`${spec.name} was cancelled before it started`)
      if (spec.opts.timeoutMs !== undefined) this.post({ k: 'begin', task: spec.id })
      const value: unknown = await this.env.runInTask(ctx, () => (f as Callable).apply(slot.instance, this.args(task)))
      if (!checkpointed) return { value }
      const state: unknown = await this.env.runInTask(ctx, () => (slot.instance.checkpoint as Callable).call(slot.instance))
      const checkpoint = encodeValue(state)
      if (checkpoint.length > MAX_CHECKPOINT_BYTES) {
        throw new LimitError('maxCheckpointBytes', `${spec.name}: the actor's checkpoint is ${checkpoint.length} bytes; the maxCheckpointBytes limit is ${MAX_CHECKPOINT_BYTES} (keep big state in objects, and refs to them in the checkpoint)`)
      }
      return { value, checkpoint }
    } finally {
      // A cancel of a call already running is dropped here too: it came too late to skip it.
      this.cancelled.delete(spec.id)
      slot.leave()
    }
  }

  private async call(task: ExecTask, ctx: TaskContext): Promise<unknown> {
    const { spec, job } = task
    const args = this.args(task)
    const def = this.defs.get(`${job}/${spec.fn}`)
    if (!def) throw new Error(`function ${spec.fn} is unknown to this executor`)
    const f = await this.callable(job, def, task.bundleUrl)
    if (spec.createsActor) {
      const instance = new (f as unknown as new (...a: unknown[]) => Record<string, unknown>)(...args)
      const limit = spec.opts.maxConcurrency ?? 1
      if (limit > 1 && typeof instance.checkpoint === 'function') {
        throw new Error(`${spec.name} has checkpoint(), so it cannot have maxConcurrency ${limit}: a checkpoint taken after one call would capture ` +
          'another call\'s half-done state. Leave maxConcurrency out (its calls then run one at a time), or drop checkpoint() and restore()')
      }
      // Re-created after its peer died: it takes up from its last checkpoint.
      if (task.restore && typeof instance.restore === 'function') await (instance.restore as Callable).call(instance, decodeValue(task.restore))
      this.actors.set(spec.id, new ActorSlot(instance, limit))
      return null
    }
    if (def.kind === 'bundle' && def.export === 'default') return f(ctx.grid, ...args)
    return f(...args)
  }

  /** Keyed by job too: ids are chosen by clients, so one job must not get another job's function by naming its id. */
  private callable(job: string, def: FnDef, bundleUrl?: string): Promise<Callable> {
    const key = `${job}/${def.id}`
    let p = this.compiled.get(key)
    if (!p) {
      p = def.kind === 'inline' ? Promise.resolve(compileInline(def)) : this.bundleExport(def, bundleUrl)
      this.compiled.set(key, p)
    }
    return p
  }

  private async bundleExport(def: Extract<FnDef, { kind: 'bundle' }>, url?: string): Promise<Callable> {
    if (!url) throw new Error(`no module URL for bundle ${def.bundle}`)
    let mod = this.modules.get(def.bundle)
    if (!mod) {
      mod = this.env.importModule(url).then((m) => {
        for (const [name, v] of Object.entries(m)) if (typeof v === 'function') this.exportsByFn.set(v, { bundle: def.bundle, export: name })
        return m
      }, (e: unknown) => {
        const err = e as Error
        throw Object.assign(new Error(`the job bundle failed to import: ${err?.message ?? e}`), { stack: err?.stack })
      })
      this.modules.set(def.bundle, mod)
    }
    const f = (await mod)[def.export]
    if (typeof f !== 'function') throw new TypeError(`the job bundle has no exported function '${def.export}'`)
    return f as Callable
  }
}

function compileInline(def: Extract<FnDef, { kind: 'inline' }>): Callable {
  try {
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    return new Function(`return (${def.src}\n)`)() as Callable
  } catch (e) {
    throw new SyntaxError(`could not compile ${def.name}: ${(e as Error).message}. Inline remote functions must stand alone (no closures, no imports).`)
  }
}
