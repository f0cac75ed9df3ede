/**
 * The Grid API: remote functions and actors, put/get/wait/cancel. The same class
 * serves a driver (Node, browser) and code inside a task (nesting); only the
 * GridBackend underneath differs.
 */
import {
  ActorHandleBase, IdMinter, ObjectRef, TimeoutError, decodeValue, deserializeError, encodeValue, encodeValueWithRefs, hashString, returnId,
  setActorHandleFactory, taskOfObject, type ActorHandleData, type FnDef, type TaskOptions, type TaskSpec,
} from '@colony-grid/shared'
import type { GridBackend } from './backend.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFn = (...args: any[]) => any
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyClass = new (...args: any[]) => any

/** An argument may be the value or a ref to it. */
export type Arg<T> = T | ObjectRef<T>
type Args<P extends unknown[]> = { [K in keyof P]: Arg<P[K]> }
type Resolved<R> = Awaited<R>

export interface RemoteFunction<F extends AnyFn> {
  remote(...args: Args<Parameters<F>>): ObjectRef<Resolved<ReturnType<F>>>
  /** The same function with other options. */
  options(opts: TaskOptions): RemoteFunction<F>
  readonly fnId: string
}

type Methods<T> = { [K in keyof T as T[K] extends AnyFn ? K : never]: T[K] extends AnyFn ? RemoteMethod<T[K]> : never }
export interface RemoteMethod<F extends AnyFn> {
  remote(...args: Args<Parameters<F>>): ObjectRef<Resolved<ReturnType<F>>>
  options(opts: TaskOptions): RemoteMethod<F>
}
export type ActorHandle<T> = ActorHandleBase & Methods<T>

export interface ActorClass<C extends AnyClass> {
  remote(...args: Args<ConstructorParameters<C>>): ActorHandle<InstanceType<C>>
  options(opts: TaskOptions): ActorClass<C>
}

export interface GetOptions { timeoutMs?: number }
export interface WaitOptions { numReturns?: number; timeoutMs?: number }

/** Arguments encoding past this are split: each one over LARGE_ARG_BYTES is put as an object. */
const LARGE_ARGS_BYTES = 64 * 1024
const LARGE_ARG_BYTES = 16 * 1024

/** The grid to use for actor handles that arrive inside values: the current task's, or the driver's. */
let ambientGrid: () => Grid | undefined = () => undefined
export function setAmbientGrid(f: () => Grid | undefined): void { ambientGrid = f }

function isClass(f: unknown): f is AnyClass {
  return typeof f === 'function' && /^class[\s{]/.test(Function.prototype.toString.call(f))
}

/** Sources of functions written as methods (`{ f(x) {...} }.f`) need a `function` keyword to stand alone. */
/** The source a function or class ships as: an expression (a method's shorthand made a function). */
export function standaloneSource(f: AnyFn | AnyClass): string {
  const src = Function.prototype.toString.call(f)
  if (/^(async\s+)?(function\b|\(|[A-Za-z_$][\w$]*\s*=>|class\b)/.test(src)) return src
  if (/^async\s/.test(src)) return `async function ${src.slice(6).trimStart()}`
  if (src.startsWith('*')) return `function${src}`
  return `function ${src}`
}

function methodNames(C: AnyClass): string[] {
  const names = new Set<string>()
  for (let p = C.prototype; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const n of Object.getOwnPropertyNames(p)) {
      if (n !== 'constructor' && typeof Object.getOwnPropertyDescriptor(p, n)?.value === 'function') names.add(n)
    }
  }
  return [...names]
}

export interface GridOptions {
  /**
   * Free objects whose refs this side made and dropped (FinalizationRegistry). Only refs never passed to a
   * task or put inside another value: those may live on elsewhere, and need an explicit `free`.
   */
  autoFree?: boolean
}

export class Grid {
  private readonly ids = new IdMinter()
  private readonly defined = new Set<string>()
  private readonly bundleExports = new Map<unknown, { bundle: string; export: string }>()
  private readonly registry?: FinalizationRegistry<string>
  /** Ids of refs that went into a task or a value: never freed by garbage collection. */
  private readonly escaped = new Set<string>()
  private toFree: string[] = []

  constructor(readonly backend: GridBackend, private readonly parentTask?: string, opts: GridOptions = {}) {
    if (opts.autoFree && typeof FinalizationRegistry === 'function') {
      this.registry = new FinalizationRegistry((id) => this.collected(id))
    }
  }

  private collected(id: string): void {
    if (this.escaped.delete(id)) return
    if (this.toFree.push(id) === 1) setTimeout(() => { const ids = this.toFree; this.toFree = []; this.backend.free(ids) }, 0)
  }

  private track<T>(ref: ObjectRef<T>): ObjectRef<T> {
    this.registry?.register(ref, ref.id, ref)
    return ref
  }

  /** Encodes a value; refs inside it have escaped this side's hands. */
  private encode(value: unknown): Uint8Array {
    const { bytes, refs } = encodeValueWithRefs(value)
    for (const r of refs) this.escaped.add(r)
    return bytes
  }

  /** Makes a function or class remote. Inline functions ship their source and must not capture variables. */
  remote<F extends AnyFn>(fn: F, opts?: TaskOptions): RemoteFunction<F>
  remote<C extends AnyClass>(cls: C, opts?: TaskOptions): ActorClass<C>
  remote(f: AnyFn | AnyClass, opts: TaskOptions = {}): RemoteFunction<AnyFn> | ActorClass<AnyClass> {
    if (typeof f !== 'function') throw new TypeError('grid.remote() takes a function or a class')
    const def = this.define(f)
    if (isClass(f)) return this.actorClass(def, methodNames(f), opts)
    return this.remoteFunction(def, opts)
  }

  private define(f: AnyFn | AnyClass): FnDef {
    const name = f.name || 'anonymous'
    const exp = this.bundleExports.get(f) ?? this.backend.bundleExport?.(f)
    const def: FnDef = exp
      ? { id: `${exp.bundle}#${exp.export}`, kind: 'bundle', name, bundle: exp.bundle, export: exp.export }
      : (() => { const src = standaloneSource(f); return { id: `f${hashString(src)}`, kind: 'inline' as const, name, src } })()
    if (!this.defined.has(def.id)) { this.defined.add(def.id); this.backend.defineFn(def) }
    return def
  }

  private remoteFunction(def: FnDef, opts: TaskOptions): RemoteFunction<AnyFn> {
    return {
      fnId: def.id,
      remote: (...args: unknown[]) => {
        const refs = this.submit({ name: def.name, fn: def.id }, args, opts)
        return (opts.numReturns ?? 1) > 1 ? refs : refs[0]
      },
      options: (more: TaskOptions) => this.remoteFunction(def, { ...opts, ...more }),
    } as RemoteFunction<AnyFn>
  }

  private actorClass(def: FnDef, methods: string[], opts: TaskOptions): ActorClass<AnyClass> {
    return {
      remote: (...args: unknown[]) => {
        const [ref] = this.submit({ name: def.name, fn: def.id, createsActor: true }, args, { ...opts, numReturns: 1 })
        return makeActorHandle({ actorId: taskOfObject(ref.id)!, className: def.name, methods }, this)
      },
      options: (more: TaskOptions) => this.actorClass(def, methods, { ...opts, ...more }),
    } as ActorClass<AnyClass>
  }

  /**
   * Declares a module's exports as those of a bundle peers can import (one uploaded with
   * `POST /api/bundles`): they then ship by name, not as source, so they keep their imports.
   */
  useBundle(hash: string, exports: Record<string, unknown>): void {
    for (const [name, v] of Object.entries(exports)) if (typeof v === 'function') this.bundleExports.set(v, { bundle: hash, export: name })
  }

  /** @internal Submits a task; returns its return refs. */
  submit(base: Pick<TaskSpec, 'name' | 'fn'> & Partial<TaskSpec>, args: unknown[], opts: TaskOptions): ObjectRef[] {
    const id = this.ids.task()
    let encoded = this.encode(args)
    if (encoded.byteLength > LARGE_ARGS_BYTES) {
      // Big arguments travel as objects (put once, pulled by the peer), not inside the task: Ray does the same.
      args = args.map((a) => (a instanceof ObjectRef || encodeValue(a).byteLength <= LARGE_ARG_BYTES ? a : this.put(a)))
      encoded = this.encode(args)
    }
    const deps: string[] = []
    for (const a of args) if (a instanceof ObjectRef) deps.push(a.id)
    const spec: TaskSpec = { ...base, id, args: encoded, deps, opts }
    if (this.parentTask) spec.parent = this.parentTask
    this.backend.submit(spec)
    const n = opts.numReturns ?? 1
    return Array.from({ length: n }, (_, i) => this.track(new ObjectRef(returnId(id, i))))
  }

  /** Stores a value in the grid and returns its ref. */
  /**
   * `replicate: n` keeps n copies on distinct peers (large objects; small ones live in the
   * coordinator anyway), so the object outlives the peer that put it: Ray loses it.
   */
  put<T>(value: T, opts: { replicate?: number } = {}): ObjectRef<T> {
    const id = this.ids.put()
    this.backend.put(id, this.encode(value), opts.replicate)
    return this.track(new ObjectRef<T>(id))
  }

  /**
   * Lets objects go: their bytes are dropped everywhere once no unfinished task needs them. A later
   * `get` of them rejects with ObjectLostError. A driver's job frees all its objects when it closes.
   */
  free(refs: ObjectRef | readonly ObjectRef[]): void {
    const list = (Array.isArray(refs) ? refs : [refs]) as ObjectRef[]
    for (const r of list) this.registry?.unregister(r)
    this.backend.free(list.map((r) => r.id))
  }

  /** Waits for values. A failed task rejects with its TaskError (remote stack included). */
  get<T>(ref: ObjectRef<T>, opts?: GetOptions): Promise<T>
  get<T extends readonly ObjectRef<unknown>[]>(refs: T, opts?: GetOptions): Promise<{ [K in keyof T]: T[K] extends ObjectRef<infer V> ? V : never }>
  async get(refOrRefs: ObjectRef | readonly ObjectRef[], opts: GetOptions = {}): Promise<unknown> {
    const many = Array.isArray(refOrRefs)
    const refs = (many ? refOrRefs : [refOrRefs]) as ObjectRef[]
    for (const r of refs) if (!(r instanceof ObjectRef)) throw new TypeError(`grid.get() takes ObjectRefs; got ${typeof r}`)
    const values = this.blocking(() => withTimeout(
      Promise.all(refs.map((r) => this.value(r))), opts.timeoutMs,
      () => `grid.get timed out after ${opts.timeoutMs} ms waiting for ${refs.length === 1 ? refs[0].id : `${refs.length} objects`}`,
    ))
    return many ? values : (await values)[0]
  }

  private async value(ref: ObjectRef): Promise<unknown> {
    const info = await this.backend.ready(ref.id)
    if (info.error) throw deserializeError(info.error)
    const bytes = info.inline ?? await this.backend.fetch(info)
    return decodeValue(bytes)
  }

  /**
   * Waits until `numReturns` of the refs are ready (finished or failed), or the timeout passes.
   * Returns them split, each list in the order given.
   */
  async wait(refs: readonly ObjectRef[], opts: WaitOptions = {}): Promise<{ ready: ObjectRef[]; notReady: ObjectRef[] }> {
    const want = Math.min(opts.numReturns ?? 1, refs.length)
    const done = new Set<ObjectRef>()
    await this.blocking(() => new Promise<void>((resolve) => {
      if (want === 0) { resolve(); return }
      const timer = opts.timeoutMs !== undefined ? setTimeout(resolve, opts.timeoutMs) : undefined
      for (const r of refs) {
        this.backend.ready(r.id).then(() => {
          done.add(r)
          if (done.size >= want) { clearTimeout(timer); resolve() }
        })
      }
    }))
    const ready = refs.filter((r) => done.has(r)).slice(0, Math.max(want, 0))
    const readySet = new Set(ready)
    return { ready, notReady: refs.filter((r) => !readySet.has(r)) }
  }

  /** Cancels the task behind a ref. Its `get` then rejects with CancelledError. */
  cancel(ref: ObjectRef, opts: { force?: boolean } = {}): void {
    const task = taskOfObject(ref.id)
    if (!task) throw new TypeError(`${ref.id} is a put object, not a task's result: there is nothing to cancel`)
    this.backend.cancel([task], opts.force ?? false)
  }

  /**
   * Ends an actor now: its executor is released, and its queued and later calls fail with
   * CancelledError. (Otherwise an actor lives until its job ends.)
   */
  kill(actor: ActorHandleBase): void {
    this.backend.cancel([actor.__actor.actorId], true)
  }

  /** Leaves the grid; a driver's job ends and its unfinished work is cancelled. */
  async close(): Promise<void> { await this.backend.close?.() }

  private async blocking<T>(f: () => Promise<T>): Promise<T> {
    this.backend.blocked?.(true)
    try { return await f() } finally { this.backend.blocked?.(false) }
  }
}

function makeActorHandle(data: ActorHandleData, grid: Grid | undefined): ActorHandleBase {
  const handle = new ActorHandleBase(data) as ActorHandleBase & Record<string, RemoteMethod<AnyFn>>
  const method = (name: string, opts: TaskOptions): RemoteMethod<AnyFn> => ({
    remote: (...args: unknown[]) => {
      const g = grid ?? ambientGrid()
      if (!g) throw new Error(`actor handle ${data.className} (${data.actorId}) is used outside a grid`)
      const refs = g.submit({ name: `${data.className}.${name}`, fn: '', actor: data.actorId, method: name }, args, opts)
      return (opts.numReturns ?? 1) > 1 ? refs : refs[0]
    },
    options: (more: TaskOptions) => method(name, { ...opts, ...more }),
  }) as RemoteMethod<AnyFn>
  for (const m of data.methods) if (!(m in handle)) handle[m] = method(m, {})
  return handle
}

// Handles that arrive inside task arguments or results are bound to the grid of wherever they land.
setActorHandleFactory((data) => makeActorHandle(data, undefined))

/** Resolves with the deadline's TimeoutError if the promise is not done in time. */
export function withTimeout<T>(p: Promise<T>, ms: number | undefined, what: () => string): Promise<T> {
  if (ms === undefined) return p
  let timer: ReturnType<typeof setTimeout>
  const deadline = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new TimeoutError(what())), ms) })
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer))
}

