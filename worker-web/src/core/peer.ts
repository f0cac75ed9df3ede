/**
 * A peer of the grid: one runtime for workers (Node processes, browser tabs) and
 * drivers (scripts, the IDE). It keeps the control connection, holds objects,
 * serves and fetches them, and, for workers, hands tasks to its executors.
 */
import {
  FAULTS, PROTOCOL_VERSION, DEFAULT_LIMITS, faultWarning, JOB_TEXT_LIMITS, returnId, sha256Hex, sha256Stream, serializeError, clip, clipError, parsePeerMessage, taskOptionsProblem, ColonyError, LimitError, ProtocolError,
  type CoordinatorToPeer, type FnDef, type HelloMsg, type Limits, type ObjectInfo, type PeerKind, type PeerRole, type PeerToCoordinator, type DoneMsg, type ResultOut, type RunMsg, type TaskLogMsg, type TaskSpec,
} from '@colony-grid/shared'
import type { GridBackend } from './backend.js'
import { ControlConnection, type WebSocketFactory } from './connection.js'
import type { ExecOutcome, ExecutorHost, ExecutorPool, GridOp, GridRequest } from './executor-protocol.js'
import { LocalObjectStore } from './object-store.js'
import { ObjectResolver } from './objects.js'
import { DataPlane, type DataPlaneOptions } from './data-plane.js'
import { deferred } from './turn.js'
import { poisoned } from './poisoned.js'

export interface PeerOptions {
  /** The coordinator's URL, or a grid's coordinator URLs (an array or a comma-separated list): see ConnectionOptions.url. */
  url: string | readonly string[]
  token: string
  role: PeerRole
  kind: PeerKind
  webSocket: WebSocketFactory
  capabilities?: string[]
  resources?: Record<string, number>
  /** Workers only. */
  executors?: ExecutorPool
  /** WebRTC for moving objects peer to peer; without it, objects come through the coordinator's relay. */
  dataPlane?: DataPlaneOptions
  /** Bytes of objects this peer may hold; copies past it are evicted, least recently used first. */
  storeBytes?: number
  /** Where executors import a bundle's module from, for a task of `job` (a worker downloads it first where it must). */
  bundleUrl?: (hash: string, job: string) => Promise<string>
  name?: string
  /** Drivers: the time limit of the job's tasks that set no `timeoutMs`. */
  taskTimeoutMs?: number
  onTaskLog?: (m: TaskLogMsg) => void
  /** Said when another coordinator welcomes this peer (a failover; the first welcome too): see ConnectionOptions. */
  onCoordinatorChanged?: (url: string, previous: string | undefined) => void
  log?: (line: string) => void
}

interface RunningTask { job: string; attempt: number; spec: TaskSpec; /** Held back once already by the slow-worker fault. */ slowed?: boolean }

export class Peer implements ExecutorHost {
  peerId = ''
  /** Proves this peer's id when it reconnects, and authenticates its HTTP requests (see httpAuth). */
  peerSecret = ''
  /** The coordinator trusts this peer (it joined with a trusted join token): it may run a job's main. */
  trusted = false
  jobId?: string
  limits: Limits = DEFAULT_LIMITS
  readonly store: LocalObjectStore
  readonly conn: ControlConnection
  readonly objects: ObjectResolver
  readonly data?: DataPlane
  readonly running = new Map<string, RunningTask>()
  /** Running tasks that wait in get/wait; a reconnect tells the coordinator, which holds no resources for them. */
  private readonly blockedTasks = new Set<string>()
  /** Per actor: calls are handed to the executor strictly in the order they arrived, whatever their arguments. */
  private readonly actorChains = new Map<string, Promise<void>>()
  private readonly fnDefs = new Map<string, FnDef>()
  tasksDone = 0
  private started = deferred<void>()
  private fatal?: ColonyError
  private readonly say: (line: string) => void

  constructor(private readonly opts: PeerOptions) {
    this.store = new LocalObjectStore(opts.storeBytes, (ids) => this.conn.send({ t: 'evicted', ids }))
    this.say = opts.log ?? ((l) => console.error(`[peer] ${l}`))
    if (faultWarning()) this.say(faultWarning()!)
    this.conn = new ControlConnection({
      url: opts.url,
      webSocket: opts.webSocket,
      makeHello: () => this.hello(),
      onWelcome: (w, reconnected) => {
        this.peerId = w.peerId
        this.peerSecret = w.peerSecret
        this.trusted = w.trusted
        this.jobId = w.jobId ?? this.jobId
        this.limits = w.limits
        this.objects.setChunkBytes(w.limits.relayChunkBytes)
        this.data?.configure(w.peerId, w.grantKey, w.iceServers)
        if (reconnected) { this.say(`reconnected as ${w.peerId}`); this.objects.resend() }
        this.started.resolve()
      },
      onMessage: (m) => this.receive(m),
      onFatal: (err) => {
        this.fatal = err
        this.started.reject(err)
        this.objects.failAll(err)
        this.say(`refused by the coordinator: ${err.message}`)
      },
      onDown: () => this.say('lost the coordinator; reconnecting'),
      onCoordinatorChanged: (url, previous) => {
        if (previous) this.say(`now on coordinator ${url} (was ${previous})`)
        opts.onCoordinatorChanged?.(url, previous)
      },
      fatalOnlyForAuth: opts.role === 'worker',
      onRefused: (err) => this.say(`the coordinator closed the connection (${err.message}); joining again shortly`),
    })
    if (opts.dataPlane) this.data = new DataPlane((m) => this.conn.send(m), this.store, opts.dataPlane)
    this.objects = new ObjectResolver(this.conn, this.store, DEFAULT_LIMITS.relayChunkBytes, this.data, this.say)
  }

  /**
   * Connects; resolves once the coordinator has welcomed this peer, and rejects if it
   * refuses it, or (with `timeoutMs`) if it cannot be reached in time.
   */
  async start(timeoutMs?: number): Promise<this> {
    if (this.opts.executors) await this.opts.executors.start(this)
    this.conn.start()
    if (timeoutMs === undefined) { await this.started.promise; return this }
    let timer: ReturnType<typeof setTimeout> | undefined
    const unreachable = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ColonyError(
        `could not reach the coordinator at ${this.conn.coordinators.join(', ')} within ${timeoutMs} ms: is it running (npm start), and is the URL right?`)), timeoutMs)
    })
    try {
      await Promise.race([this.started.promise, unreachable])
    } catch (e) {
      await this.close()
      throw e
    } finally { clearTimeout(timer) }
    return this
  }

  /** The coordinator this peer is on (it changes on a failover): where its HTTP requests go. */
  get coordinatorUrl(): string { return this.conn.currentUrl }

  /**
   * The Authorization header of this peer's own HTTP requests (a job's bundle, say): the join token is
   * shared by every volunteer, so the coordinator asks which peer is asking, and checks what it runs.
   */
  httpAuth(): string { return this.peerSecret ? `Peer ${this.peerId}:${this.peerSecret}` : `Bearer ${this.opts.token}` }

  private hello(): HelloMsg {
    const h: HelloMsg = {
      t: 'hello', v: PROTOCOL_VERSION, token: this.opts.token, kind: this.opts.kind, role: this.opts.role,
      capabilities: this.opts.capabilities ?? [], resources: this.opts.resources ?? {},
    }
    if (this.peerId) { h.peerId = this.peerId; h.peerSecret = this.peerSecret }
    if (this.jobId) h.jobId = this.jobId
    if (this.opts.name) h.name = this.opts.name
    if (this.opts.taskTimeoutMs !== undefined) h.taskTimeoutMs = this.opts.taskTimeoutMs
    if (this.data) h.p2p = true
    if (this.peerId) {
      h.holds = this.store.ids()
      h.running = [...this.running.keys()]
      h.blocked = [...this.blockedTasks].filter((t) => this.running.has(t))
      h.actors = this.opts.executors?.actorIds() ?? []
    }
    return h
  }

  private receive(m: CoordinatorToPeer): void {
    switch (m.t) {
      case 'run': this.run(m); break
      case 'obj': this.objects.learned(m.info); break
      case 'chunk': this.objects.onChunk(m); break
      case 'pullFail': this.objects.onPullFail(m); break
      case 'serve': void this.objects.serve(m); break
      case 'pullPlan': this.objects.onPullPlan(m); break
      case 'signal': this.data?.onSignal(m.from, m.link, m.data); break
      case 'peerLeft': this.data?.dropPeer(m.peer); break
      case 'ice': this.data?.setIceServers(m.iceServers); break
      case 'drop': for (const id of m.ids) this.objects.drop(id); break
      case 'replicate': for (const info of m.infos) void this.objects.replicate(info); break
      case 'cancelTask':
        if (this.running.delete(m.task)) { this.blockedTasks.delete(m.task); this.opts.executors?.cancel(m.task) }
        else this.opts.executors?.dropActor(m.task)
        break
      case 'tlog': this.opts.onTaskLog?.(m); break
      case 'error': this.say(`coordinator: ${m.code}: ${m.message}`); break
      default: break
    }
  }

  // ------------------------------------------------------------ worker side

  private run(m: RunMsg): void {
    const pool = this.opts.executors
    if (!pool) return
    for (const f of m.fns ?? []) this.fnDefs.set(`${m.job}/${f.id}`, f)
    this.running.set(m.spec.id, { job: m.job, attempt: m.attempt, spec: m.spec })
    const actor = m.spec.actor
    if (!actor) { void this.prepareAndRun(m, pool); return }
    const next = (this.actorChains.get(actor) ?? Promise.resolve()).then(() => this.prepareAndRun(m, pool))
    this.actorChains.set(actor, next)
    void next.then(() => { if (this.actorChains.get(actor) === next) this.actorChains.delete(actor) })
  }

  private async prepareAndRun(m: RunMsg, pool: ExecutorPool): Promise<void> {
    // Fetching arguments from other peers holds no executor slot: a fetch may wait on a rebuild that needs one.
    const pulling = m.deps.some((d) => !d.inline && !this.store.has(d.id))
    if (pulling) this.grid(m.spec.id, { op: 'blocked', blocked: true })
    try {
      const deps = await Promise.all(m.deps.map(async (info) => [info.id, info.inline ?? await this.objects.fetch(info, m.job)] as [string, Uint8Array]))
      if (pulling) this.grid(m.spec.id, { op: 'blocked', blocked: false })
      const fn = m.spec.fn ? this.fnDefs.get(`${m.job}/${m.spec.fn}`) : undefined
      if (m.spec.fn && !fn) throw new Error(`function ${m.spec.fn} of job ${m.job} was never sent to this peer`)
      const bundleUrl = fn?.kind === 'bundle' && this.opts.bundleUrl ? await this.opts.bundleUrl(fn.bundle, m.job) : undefined
      if (!this.running.has(m.spec.id)) return // cancelled meanwhile
      pool.run({ spec: m.spec, job: m.job, attempt: m.attempt, peer: this.peerId, fn, bundleUrl, deps, restore: m.restore })
    } catch (err) {
      if (!this.running.delete(m.spec.id)) return
      this.say(`could not start task ${m.spec.name} (${m.spec.id}): ${(err as Error).message}`)
      // No room for an argument is the task's to report; anything else, another peer may manage.
      if (err instanceof LimitError) this.conn.send({ t: 'done', task: m.spec.id, attempt: m.attempt, error: serializeError(err) })
      else this.conn.send({ t: 'done', task: m.spec.id, attempt: m.attempt, lost: true })
    }
  }

  done(task: string, outcome: ExecOutcome): void {
    const r = this.running.get(task)
    if (!r) return
    if (FAULTS.slowWorker && !r.slowed && typeof outcome?.ms === 'number') {
      r.slowed = true
      setTimeout(() => this.done(task, outcome), 3 * outcome.ms)
      return
    }
    this.running.delete(task)
    this.blockedTasks.delete(task)
    // Job code can post a 'done' of its own on its executor's channel: whatever it says, the task ends with an outcome.
    if (!outcome || typeof outcome !== 'object') outcome = { error: serializeError(new ProtocolError(`task ${this.nameOf(task)} (${task}) ended with no outcome`)) }
    if (outcome.lost) { this.conn.send({ t: 'done', task, attempt: r.attempt, lost: true }); return }
    const ms = typeof outcome.ms === 'number' && outcome.ms >= 0 ? outcome.ms : undefined
    // What job code threw is cut to what the protocol carries: a long message fails this task only.
    if (outcome.error) {
      const e = outcome.error
      const error = typeof e === 'object' ? clipError(e) : serializeError(new ProtocolError(`task ${this.nameOf(task)} (${task}) failed with ${clip(String(e), 200)}`))
      this.sendDone({ t: 'done', task, attempt: r.attempt, error, ms })
      return
    }
    const results = Array.isArray(outcome.results) && outcome.results.every((b) => b instanceof Uint8Array) ? outcome.results : undefined
    if (!results) { this.sendDone({ t: 'done', task, attempt: r.attempt, error: serializeError(new ProtocolError(`task ${this.nameOf(task)} (${task}) ended with results that are not encoded values`)), ms }); return }
    void this.sendResults(task, r.job, r.attempt, results, ms, outcome.checkpoint instanceof Uint8Array ? outcome.checkpoint : undefined)
  }

  /** Small results travel inline; large ones stay here, reported with their size and hash. */
  private async sendResults(task: string, job: string, attempt: number, values: Uint8Array[], ms?: number, checkpoint?: Uint8Array): Promise<void> {
    let results: ResultOut[]
    try {
      results = await Promise.all(values.map(async (bytes, i) => {
        if (bytes.byteLength <= this.limits.inlineMaxBytes) return { size: bytes.byteLength, inline: bytes }
        const id = returnId(task, i)
        // A rebuild from lineage can land on a peer that was already pulling this very object.
        this.objects.hold(id, bytes, true, job)
        return { size: bytes.byteLength, hash: this.data ? await this.data.hashOf(id, bytes) : await sha256Hex(bytes) }
      }))
    } catch (err) {
      this.conn.send({ t: 'done', task, attempt, error: serializeError(err), ms })
      return
    }
    if (this.sendDone({ t: 'done', task, attempt, results, ms, ...(checkpoint ? { checkpoint } : {}) })) this.tasksDone++
  }

  /**
   * A task's outcome goes out only in a shape the coordinator accepts (job code can post anything to
   * its executor's channel); otherwise the task fails with the reason instead. False if it failed.
   */
  private sendDone(m: DoneMsg): boolean {
    const bytes = (m.results ?? []).reduce((n, r) => n + (r.inline?.byteLength ?? 0), m.checkpoint?.byteLength ?? 0)
    const checked = bytes > this.limits.maxFrameBytes / 2
      ? { ok: false as const, reason: `its inline results are ${bytes} bytes, over half the ${this.limits.maxFrameBytes}-byte frame limit (return fewer values, or larger ones, which stay on the peer)` }
      : parsePeerMessage(m)
    if (checked.ok) { this.conn.send(checked.msg); if (FAULTS.reportResultsTwice) this.conn.send(checked.msg); return true }
    const err = new ProtocolError(`task ${this.nameOf(m.task)} (${m.task}) ended with an outcome the coordinator would refuse: ${checked.reason}`)
    this.conn.send({ t: 'done', task: m.task, attempt: m.attempt, error: serializeError(err), ms: typeof m.ms === 'number' && m.ms >= 0 ? m.ms : undefined })
    return false
  }

  private nameOf(task: string): string { return clip(this.running.get(task)?.spec.name ?? '', 100) }

  log(task: string, lines: string[]): void {
    if (!this.running.has(task) || !Array.isArray(lines)) return
    const max = JOB_TEXT_LIMITS.logLineChars
    for (let i = 0; i < lines.length; i += 1000) this.conn.send({ t: 'log', task, lines: lines.slice(i, i + 1000).map((l) => clip(String(l), max)) })
  }

  /**
   * What a task asks of the grid goes out only if the coordinator would accept it: job code chooses
   * names, ids and sizes, and a message the coordinator refuses counts against this peer's connection.
   * A task that asks for something out of bounds fails, with the reason; the peer stays on the grid.
   */
  private sendFromTask(task: string, m: PeerToCoordinator): boolean {
    // A frame over the coordinator's limit would close this peer's connection, not just refuse the message.
    const args = m.t === 'submit' && m.spec?.args instanceof Uint8Array ? m.spec.args.byteLength : 0
    const checked = args > this.limits.maxFrameBytes / 2
      ? { ok: false as const, reason: `its arguments are ${args} bytes, over half the ${this.limits.maxFrameBytes}-byte frame limit (put large values as objects)` }
      : parsePeerMessage(m)
    // The parsed copy goes out: it holds only what the schema knows (nothing that could fail to encode).
    if (checked.ok) { this.conn.send(checked.msg); return true }
    this.failTask(task, new ProtocolError(`task ${this.nameOf(task)} (${task}) asked for something the coordinator would refuse: ${checked.reason}`))
    return false
  }

  /** Ends a running task with `err` (its executor stops it) and reports the error as its outcome. */
  private failTask(task: string, err: unknown): void {
    this.done(task, { error: serializeError(err) })
    this.opts.executors?.cancel(task)
  }

  grid(task: string, op: GridOp): void {
    const r = this.running.get(task)
    if (!r || !op || typeof op !== 'object') return // the task was cancelled or finished; what it still sends is dropped
    switch (op.op) {
      case 'fn': this.sendFromTask(task, { t: 'fn', job: r.job, def: op.def }); break
      case 'submit': this.sendFromTask(task, { t: 'submit', spec: { ...op.spec, parent: task, ...(FAULTS.poisonFloatArrays ? { args: poisoned(op.spec.args) } : {}) } }); break
      case 'put':
        // No room for it here: the task cannot go on correctly, so it fails with the reason.
        try { this.putBytes(op.id, FAULTS.poisonFloatArrays ? poisoned(op.bytes) : op.bytes, r.job, task, op.replicate) } catch (err) { this.failTask(task, err) }
        break
      case 'cancel': this.sendFromTask(task, { t: 'cancel', ids: op.ids, force: op.force, job: r.job }); break
      case 'free': this.sendFromTask(task, { t: 'free', ids: op.ids, job: r.job }); break
      case 'blocked':
        if (op.blocked) this.blockedTasks.add(task); else this.blockedTasks.delete(task)
        this.conn.send({ t: 'blocked', task, blocked: !!op.blocked })
        break
    }
  }

  request(task: string, op: GridRequest): Promise<unknown> {
    if (!this.running.has(task)) return Promise.reject(new Error(`task ${task} is not running here`))
    const job = this.running.get(task)!.job
    const id = op?.op === 'ready' ? op.id : op?.op === 'fetch' ? op.info?.id : undefined
    if (typeof id !== 'string' || id.length === 0 || id.length > 200) return Promise.reject(new ProtocolError('an object id is a string of 1 to 200 characters'))
    return op.op === 'ready' ? this.objects.ready(id, job) : this.objects.fetch(op.info, job)
  }

  actorLost(actor: string, reason: string): void { this.conn.send({ t: 'actorLost', actor, reason }) }

  // ------------------------------------------------------------ driver side

  private putBytes(id: string, bytes: Uint8Array, job: string, parent?: string, replicate?: number): void {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('put takes the value\'s encoded bytes')
    if (typeof id !== 'string' || id.length > 200 || !id.startsWith('o.')) throw new ProtocolError(`put ids start with 'o.' and have at most 200 characters (got ${clip(String(id), 60)})`)
    if (replicate !== undefined && !(Number.isInteger(replicate) && replicate >= 1 && replicate <= 3)) throw new ProtocolError(`put's replicate is 1, 2 or 3 copies (got ${clip(String(replicate), 40)})`)
    // Another job's bytes here are not overwritten by naming their id (the coordinator refuses the put too).
    const owner = this.objects.ownerOf(id)
    if (owner !== undefined && owner !== job) throw new ProtocolError(`object id ${id} is taken`)
    const small = bytes.byteLength <= this.limits.inlineMaxBytes
    if (!small) this.objects.hold(id, bytes, true, job)
    const info: ObjectInfo = { id, job, size: bytes.byteLength }
    if (small) info.inline = bytes
    this.objects.learned(info)
    // A put must go out now (tasks using it follow in order), so it is hashed synchronously: node:crypto in
    // Node, @noble/hashes in browsers (WebCrypto has no synchronous hash, and no hash at all outside a secure context).
    let hash: string | undefined
    if (!small) {
      const hasher = (this.opts.dataPlane?.sha256 ?? sha256Stream)()
      hasher.update(bytes)
      hash = hasher.digest()
      this.data?.knowHash(id, hash)
    }
    this.conn.send({ t: 'put', id, size: bytes.byteLength, inline: small ? bytes : undefined, hash, parent, ...(replicate && replicate > 1 && !small ? { replicate } : {}) })
  }

  /** The GridBackend of a driver: straight to the coordinator. */
  backend(): GridBackend {
    return {
      defineFn: (def) => this.conn.send({ t: 'fn', def }),
      submit: (spec) => {
        // The coordinator would refuse it, and the task's `get` would wait for ever: `.remote()` throws instead.
        const problem = taskOptionsProblem(spec)
        if (problem) throw new ProtocolError(`${spec.name}: ${problem}`)
        this.conn.send({ t: 'submit', spec })
      },
      put: (id, bytes, replicate) => this.putBytes(id, bytes, this.jobId ?? '', undefined, replicate),
      ready: (id) => this.fatal ? Promise.reject(this.fatal) : this.objects.ready(id, this.jobId ?? ''),
      fetch: (info) => this.objects.fetch(info, this.jobId ?? ''),
      cancel: (ids, force) => this.conn.send({ t: 'cancel', ids, force }),
      free: (ids) => { for (const id of ids) this.objects.forget(id, this.jobId ?? ''); this.conn.send({ t: 'free', ids }) },
      close: () => this.close(),
    }
  }

  async close(): Promise<void> {
    this.data?.close()
    await this.conn.close()
    await this.opts.executors?.close()
  }
}

