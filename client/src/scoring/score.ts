/**
 * Distributed batch scoring: Ray Data's `map_batches` on an actor pool, across every peer.
 *
 * A `ScoringPool` is a configuration of the shared actor pool (../pool/actor-pool.ts): one
 * scoring actor (actor.ts) per free CPU slot, up to `concurrency`, each loading the model once
 * and staying warm for every run. A run keeps `prefetch` shards in flight per actor, so the
 * next shard travels while the current one scores, and re-runs the shards of a peer that
 * vanishes. Each shard's result is counted once, and results come back in dataset order.
 */
import { CancelledError, type ObjectRef } from '@colony-grid/shared'
import type { Grid } from '@colony-grid/worker-web'
import { ActorPool, peerVanished, type PoolMember } from '../pool/actor-pool.js'
import { ColonyScoringActor } from './actor.js'
import { shardRefs } from './dataset.js'
import { modelPayload } from './model.js'
import type {
  Dataset, ModelPayload, ModelSource, PeerContribution, PoolOptions, RunOptions, ScoreOptions, ScoringResult, ShardScore, Shard,
} from './types.js'

type PoolActor = PoolMember<ColonyScoringActor>

/** A scoring run: `await` it for ordered results, or `for await` its shards as they finish. */
export type ScoringRun = Promise<ScoringResult> & AsyncIterable<ShardScore> & {
  /** Stops the run; the promise rejects with CancelledError. */
  cancel(): void
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
  private readonly pool: ActorPool<ColonyScoringActor>
  private current?: PoolRun
  private queue: Promise<unknown> = Promise.resolve()

  /** Use `createScoringPool`. */
  constructor(private readonly grid: Grid, private readonly modelRef: ObjectRef<ModelPayload>, private readonly opts: PoolOptions) {
    // A named backend only exists on some peers: ask for those.
    const needs = opts.backend === 'webgpu' ? ['webgpu'] : opts.backend === 'native' ? ['ort-native'] : []
    const capabilities = [...new Set([...(opts.capabilities ?? []), ...needs])]
    const Actor = grid.remote(ColonyScoringActor).options({ resources: { cpu: 1 }, capabilities, maxRestarts: 0 })
    const actorOptions = { backend: opts.backend, batchSize: opts.batchSize ?? 256, inputScale: opts.inputScale, inputName: opts.inputName, outputName: opts.outputName }
    this.pool = new ActorPool(grid, {
      size: Math.max(1, opts.concurrency ?? 32), what: 'scoring actor', loads: 'the model',
      create: () => Actor.remote(modelRef, actorOptions),
      describe: (a) => a.describe.remote(),
      onReady: (a) => this.feed(a),
      onGone: () => { for (const other of this.pool.members()) this.feed(other) },
      onBroken: (e) => this.current?.fail(e),
    })
  }

  /** Actors loaded and scoring now. */
  get size(): number { return this.pool.size }

  /** Resolves once `actors` actors have loaded the model (say, one per peer before a timed run). */
  ready(actors: number, timeoutMs = 60_000): Promise<void> { return this.pool.ready(actors, timeoutMs) }

  /** Scores a dataset; runs on one pool take turns. */
  score(dataset: Dataset, opts: RunOptions = {}): ScoringRun {
    const stream: ShardScore[] = []
    let wake: (() => void) | undefined
    let finished = false
    let run: PoolRun | undefined
    let cancelled = false
    const result = this.queue.then(async () => {
      if (cancelled) throw new CancelledError('the scoring run was cancelled')
      if (this.pool.isClosed) throw new Error('this scoring pool is closed')
      if (this.pool.broken) throw this.pool.broken
      const { refs, rows, ours } = shardRefs(this.grid, dataset, opts.batchSize ?? this.opts.batchSize ?? 256)
      run = new PoolRun(refs, rows?.reduce((a, b) => a + b, 0), opts, (s) => { stream.push(s); wake?.() })
      this.current = run
      this.pool.forgiveLosses()
      try {
        for (const a of this.pool.members()) this.feed(a)
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
    if (this.pool.isClosed) return
    this.pool.close()
    this.current?.fail(new CancelledError('the scoring pool was closed'))
    this.grid.free(this.modelRef)
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
        if (!run.over) run.record(a, s, this.pool.size)
        this.feed(a) // the current run's, which may be a later one than this call's
      }, (e: unknown) => {
        a.inFlight--
        if (peerVanished(e)) {
          if (!run.over) { run.retries++; run.attempts[index]--; run.todo.unshift(index) }
          this.pool.retire(a)
          return
        }
        if (!run.over) {
          // A shard that cannot be read (lost, freed) or a model that throws on it: counted as an attempt.
          if (run.attempts[index] >= maxAttempts) run.fail(e as Error)
          else { run.retries++; run.todo.push(index) }
        }
        for (const other of this.pool.members()) this.feed(other)
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
