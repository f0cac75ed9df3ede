/**
 * Distributed batch scoring: Ray Data's `map_batches` on an actor pool, across every peer.
 *
 * A `ScoringPool` keeps one actor (actor.ts) per free CPU slot of the grid, up to
 * `concurrency`; each loads the model once and stays warm for every run. The pool grows as
 * peers join (actor creations that find no free slot wait for one). A run keeps `prefetch`
 * shards in flight per actor, so the next shard travels while the current one scores, and
 * re-runs the shards of a peer that vanishes. Each shard's result is counted once, and
 * results come back in dataset order.
 */
import { CancelledError, PeerDiedError, TimeoutError, type ObjectRef } from '@colony-grid/shared'
import type { ActorHandle, Grid } from '@colony-grid/worker-web'
import { ColonyScoringActor } from './actor.js'
import { shardRefs } from './dataset.js'
import { modelPayload } from './model.js'
import type {
  Dataset, ModelPayload, ModelSource, PeerContribution, PoolOptions, RunOptions, ScoreOptions, ScoringResult, ShardScore, Shard,
} from './types.js'

interface PoolActor { handle: ActorHandle<ColonyScoringActor>; peer?: string; backend?: string; inFlight: number; dead: boolean }

/** A scoring run: `await` it for ordered results, or `for await` its shards as they finish. */
export type ScoringRun = Promise<ScoringResult> & AsyncIterable<ShardScore> & {
  /** Stops the run; the promise rejects with CancelledError. */
  cancel(): void
}

/** Errors that mean "the actor's peer went away", not "the model failed": the shard runs again elsewhere. */
function peerVanished(e: unknown): boolean {
  return e instanceof PeerDiedError || (e instanceof CancelledError && /actor .* ended/.test(e.message))
}

/** One pass over a dataset, on the pool's actors. */
class PoolRun {
  readonly scores: (ShardScore | undefined)[]
  readonly attempts: number[]
  readonly todo: number[]
  readonly peers = new Map<string, PeerContribution & { firstSent: number }>()
  readonly started = performance.now()
  done = 0
  rowsDone = 0
  retries = 0
  duplicates = 0
  failure?: Error
  private settle!: () => void
  readonly finished = new Promise<void>((r) => { this.settle = r })

  constructor(readonly refs: ObjectRef<Shard>[], readonly knownRows: number | undefined, readonly opts: RunOptions, readonly onShard: (s: ShardScore) => void) {
    this.scores = new Array(refs.length)
    this.attempts = new Array<number>(refs.length).fill(0)
    this.todo = refs.map((_, i) => i)
    if (refs.length === 0) this.settle()
  }

  get over(): boolean { return !!this.failure || this.done === this.refs.length }
  fail(e: Error): void { this.failure ??= e; this.settle() }

  contribution(a: PoolActor): PeerContribution & { firstSent: number } {
    let c = this.peers.get(a.peer!)
    if (!c) this.peers.set(a.peer!, c = { peer: a.peer!, backend: a.backend!, rows: 0, shards: 0, busyMs: 0, activeMs: 0, firstSent: performance.now() })
    return c
  }

  summary(): PeerContribution[] { return [...this.peers.values()].map(({ firstSent: _, ...c }) => c) }

  /** Records a shard's result, unless it was already scored (a duplicate, dropped). */
  record(a: PoolActor, s: ShardScore, liveActors: number): void {
    if (this.scores[s.index]) { this.duplicates++; return }
    this.scores[s.index] = s
    this.done++
    this.rowsDone += s.rows
    const c = this.contribution(a)
    c.rows += s.rows; c.shards++; c.busyMs += s.ms; c.activeMs = performance.now() - c.firstSent
    if (this.done === this.refs.length) this.settle()
    this.onShard(s)
    try {
      this.opts.onProgress?.({
        rowsDone: this.rowsDone, rows: this.knownRows ?? Math.round((this.rowsDone / this.done) * this.refs.length),
        shardsDone: this.done, shards: this.refs.length, elapsedMs: performance.now() - this.started, actors: liveActors,
        peers: this.summary(), last: { index: s.index, rows: s.rows, peer: s.peer },
      })
    } catch (e) {
      this.fail(Object.assign(new Error(`onProgress threw: ${(e as Error)?.message ?? e}`), { cause: e }))
    }
  }

  result(): ScoringResult {
    const width = this.scores[0]?.width ?? 0
    const data = new Float32Array(this.rowsDone * width)
    let o = 0
    for (const s of this.scores) { data.set(s!.data, o); o += s!.data.length }
    const elapsedMs = performance.now() - this.started
    return {
      data, shape: [this.rowsDone, width], elapsedMs, rowsPerSecond: this.rowsDone / (elapsedMs / 1000),
      peers: this.summary(), retries: this.retries, duplicates: this.duplicates,
    }
  }
}

export class ScoringPool {
  private readonly actors: PoolActor[] = []
  private readonly Actor
  private readonly actorOptions
  private current?: PoolRun
  private queue: Promise<unknown> = Promise.resolve()
  /** Actors started this run to replace ones whose peer went away. */
  private replacements = 0
  private closed = false
  private broken?: Error
  private readonly sizeWaiters = new Set<() => void>()

  /** Use `createScoringPool`. */
  constructor(private readonly grid: Grid, private readonly modelRef: ObjectRef<ModelPayload>, private readonly opts: PoolOptions) {
    // A named backend only exists on some peers: ask for those.
    const needs = opts.backend === 'webgpu' ? ['webgpu'] : opts.backend === 'native' ? ['ort-native'] : []
    const capabilities = [...new Set([...(opts.capabilities ?? []), ...needs])]
    this.Actor = grid.remote(ColonyScoringActor).options({ resources: { cpu: 1 }, capabilities, maxRestarts: 0 })
    this.actorOptions = { backend: opts.backend, batchSize: opts.batchSize ?? 256, inputScale: opts.inputScale, inputName: opts.inputName, outputName: opts.outputName }
    for (let i = 0; i < this.concurrency; i++) this.start()
  }

  private get concurrency(): number { return Math.max(1, this.opts.concurrency ?? 32) }

  /** Actors loaded and scoring now. */
  get size(): number { return this.actors.filter((a) => !a.dead && a.peer).length }

  /** Resolves once `actors` actors have loaded the model (say, one per peer before a timed run). */
  async ready(actors: number, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (this.size < actors) {
      if (this.broken) throw this.broken
      const left = deadline - Date.now()
      if (left <= 0) throw new TimeoutError(`the scoring pool has ${this.size} of ${actors} actors after ${timeoutMs} ms: are there enough free CPU slots?`)
      await new Promise<void>((r) => {
        const t = setTimeout(done, left)
        function done() { clearTimeout(t); waiters.delete(done); r() }
        const waiters = this.sizeWaiters
        waiters.add(done)
      })
    }
  }

  /** Scores a dataset; runs on one pool take turns. */
  score(dataset: Dataset, opts: RunOptions = {}): ScoringRun {
    const stream: ShardScore[] = []
    let wake: (() => void) | undefined
    let finished = false
    let run: PoolRun | undefined
    let cancelled = false
    const result = this.queue.then(async () => {
      if (cancelled) throw new CancelledError('the scoring run was cancelled')
      if (this.closed) throw new Error('this scoring pool is closed')
      if (this.broken) throw this.broken
      const { refs, rows, ours } = shardRefs(this.grid, dataset, opts.batchSize ?? this.opts.batchSize ?? 256)
      run = new PoolRun(refs, rows?.reduce((a, b) => a + b, 0), opts, (s) => { stream.push(s); wake?.() })
      this.current = run
      this.replacements = 0
      try {
        for (const a of this.actors) this.feed(a)
        await run.finished
        if (run.failure) throw run.failure
        return run.result()
      } finally {
        this.current = undefined
        if (ours) this.grid.free(refs)
      }
    }).finally(() => { finished = true; wake?.() })
    this.queue = result.catch(() => undefined)
    const cancel = () => { cancelled = true; run?.fail(new CancelledError('the scoring run was cancelled')) }
    return withStream(result, cancel, async function* () {
      let i = 0
      try {
        for (;;) {
          while (i < stream.length) yield stream[i++]
          if (finished) { await result; if (i >= stream.length) return; continue }
          await new Promise<void>((r) => { wake = r })
        }
      } finally {
        if (!finished) cancel() // the loop was left early: the rest is not wanted
      }
    })
  }

  /** Ends the pool's actors (their CPU slots free up) and lets go of the model. */
  close(): void {
    if (this.closed) return
    this.closed = true
    for (const a of this.actors) if (!a.dead) { a.dead = true; this.grid.kill(a.handle) }
    this.current?.fail(new CancelledError('the scoring pool was closed'))
    this.grid.free(this.modelRef)
    this.broken ??= new CancelledError('the scoring pool was closed')
    for (const w of [...this.sizeWaiters]) w()
  }

  private start(): void {
    const a: PoolActor = { handle: this.Actor.remote(this.modelRef, this.actorOptions), inFlight: 0, dead: false }
    this.actors.push(a)
    this.grid.get(a.handle.describe.remote()).then(({ peer, backend }) => {
      a.peer = peer
      a.backend = backend
      for (const w of [...this.sizeWaiters]) w()
      this.feed(a)
    }, (e: unknown) => {
      if (a.dead || this.closed) return
      if (peerVanished(e)) { this.retire(a); return }
      // The model does not load: every actor would fail the same way.
      a.dead = true
      this.grid.kill(a.handle)
      this.broken = Object.assign(new Error(`a scoring actor could not load the model: ${(e as Error)?.message ?? e}`), { cause: e })
      this.current?.fail(this.broken)
      for (const w of [...this.sizeWaiters]) w()
    })
  }

  /** The actor's peer is gone: others pick up its work, and a new actor may take its place (where a slot is free). */
  private retire(a: PoolActor): void {
    if (!a.dead) {
      a.dead = true
      this.grid.kill(a.handle)
      if (!this.closed && ++this.replacements <= 4 * this.concurrency) this.start()
      else if (this.actors.every((x) => x.dead)) {
        this.broken = new PeerDiedError(`every scoring actor's peer has gone, ${this.replacements} times over: giving up (are peers crashing while they score?)`)
        this.current?.fail(this.broken)
      }
    }
    for (const other of this.actors) this.feed(other)
  }

  private feed(a: PoolActor): void {
    const run = this.current
    if (!run || !a.peer) return
    const prefetch = Math.max(1, run.opts.prefetch ?? this.opts.prefetch ?? 2)
    const maxAttempts = Math.max(1, run.opts.maxAttempts ?? this.opts.maxAttempts ?? 2)
    while (!run.over && !a.dead && a.inFlight < prefetch && run.todo.length > 0) {
      const index = run.todo.shift()!
      run.attempts[index]++
      a.inFlight++
      run.contribution(a)
      this.grid.get(a.handle.score.remote(run.refs[index], index)).then((s) => {
        a.inFlight--
        if (!run.over) run.record(a, s, this.size)
        this.feed(a) // the current run's, which may be a later one than this call's
      }, (e: unknown) => {
        a.inFlight--
        if (peerVanished(e)) {
          if (!run.over) { run.retries++; run.attempts[index]--; run.todo.unshift(index) }
          this.retire(a)
          return
        }
        if (!run.over) {
          // A shard that cannot be read (lost, freed) or a model that throws on it: counted as an attempt.
          if (run.attempts[index] >= maxAttempts) run.fail(e as Error)
          else { run.retries++; run.todo.push(index) }
        }
        for (const other of this.actors) this.feed(other)
      })
    }
  }
}

/** A pool of warm scoring actors for one model, for many runs. `close()` it when done. */
export async function createScoringPool(grid: Grid, model: ModelSource, opts: PoolOptions = {}): Promise<ScoringPool> {
  return new ScoringPool(grid, grid.put(await modelPayload(model)), opts)
}

/** Scores one dataset on a pool made for it, then closes the pool. */
export function scoreDataset(grid: Grid, dataset: Dataset, model: ModelSource, opts: ScoreOptions = {}): ScoringRun {
  let pool: ScoringPool | undefined
  let cancelled = false
  // Wrapped: a ScoringRun is itself a promise, and an async function would flatten it.
  const started = (async () => {
    pool = await createScoringPool(grid, model, opts)
    if (cancelled) throw new CancelledError('the scoring run was cancelled')
    return { run: pool.score(dataset, opts) }
  })()
  const result = started.then(({ run }) => run).finally(() => pool?.close())
  const cancel = () => { cancelled = true; void started.then(({ run }) => run.cancel(), () => undefined) }
  return withStream(result, cancel, async function* () { yield* (await started).run })
}

/**
 * A run as a promise that can also be iterated. Its rejection is marked handled, so a caller
 * who only iterates (and gets the error from the loop) does not also get an unhandled rejection.
 */
function withStream(result: Promise<ScoringResult>, cancel: () => void, stream: () => AsyncGenerator<ShardScore>): ScoringRun {
  result.catch(() => undefined)
  return Object.assign(result, { cancel, [Symbol.asyncIterator]: stream })
}
