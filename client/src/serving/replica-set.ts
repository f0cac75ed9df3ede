/**
 * One model version's replicas: scoring actors from the shared pool (the model loaded once and
 * kept warm), fed from one queue. Each replica takes what is queued when it is free, up to its
 * batch sizer's size (AIMD), one batch at a time. A replica whose peer vanishes has its batch put
 * back at the head of the queue; one that misses a query's deadline while another is free has that
 * query sent to the other too, and the first answer wins. The set grows towards `max` while the
 * queue outgrows what the replicas take at once, and shrinks towards `min` when they sit idle.
 */
import type { ObjectRef } from '@colony-grid/shared'
import type { Grid } from '@colony-grid/worker-web'
import { ActorPool, peerVanished, type PoolMember } from '../pool/actor-pool.js'
import { ColonyScoringActor } from '../scoring/actor.js'
import type { ModelPayload, ScoringActorOptions } from '../scoring/types.js'
import type { BatchSizer } from './aimd.js'
import { Histogram } from './histogram.js'

/** One input row waiting for its output. `settled` once answered or failed, by whichever replica first. */
export interface Query {
  row: Float32Array
  /** When a straggling replica's query may be sent to another (ms, performance.now()). */
  hedgeAt: number
  settled: boolean
  /** Times it was sent again after a replica's peer went (a pipeline gives up after a few). */
  retries?: number
  resolve(output: Float32Array): void
  reject(e: Error): void
}

export interface ReplicaStats { peer: string; backend: string; served: number; batches: number; batchSize: number; busy: boolean }

/** Where a deployment's queries go: one version's replicas (ReplicaSet), or a pipeline of other deployments (pipeline.ts). */
export interface QueryTarget {
  readonly queued: number
  readonly live: number
  /** Sizes of the batches sent, newest last. */
  readonly batchSizes: number[]
  submit(q: Query): void
  stats(): ReplicaStats[]
  ready(n: number, timeoutMs?: number): Promise<void>
  close(): void
}

interface Replica { member: PoolMember<ColonyScoringActor>; sizer: BatchSizer; busy: boolean; inFlight: Query[]; chained: number; served: number; batches: number; idleSince: number; latency: Histogram }

export interface ReplicaSetOptions {
  version: string
  model: ObjectRef<ModelPayload>
  rowShape: number[]
  replicas: { min: number; max: number }
  sizer: () => BatchSizer
  actor: ScoringActorOptions
  capabilities: string[]
  /** A batch finished on a replica: its size and how long it took (for the deployment's metrics). */
  onBatch?: (size: number, ms: number) => void
  /** The replicas cannot load the model: every query fails with this. */
  onBroken?: (e: Error) => void
}

/** Idle this long, a replica above `min` is ended. */
const IDLE_MS = 10_000
/** Recorded batch sizes kept, newest last. */
const SIZES_KEPT = 10_000

export class ReplicaSet implements QueryTarget {
  private readonly pool: ActorPool<ColonyScoringActor>
  private readonly replicas = new Map<PoolMember<ColonyScoringActor>, Replica>()
  private readonly queue: Query[] = []
  private readonly rowSize: number
  private readonly timer: ReturnType<typeof setInterval>
  /** Sizes of the batches sent, newest last (at most SIZES_KEPT). */
  readonly batchSizes: number[] = []
  private starting: number

  constructor(private readonly grid: Grid, private readonly opts: ReplicaSetOptions) {
    this.rowSize = opts.rowShape.reduce((a, b) => a * b, 1)
    const Actor = grid.remote(ColonyScoringActor).options({ resources: { cpu: 1 }, capabilities: opts.capabilities, maxRestarts: 0 })
    this.starting = Math.max(1, opts.replicas.min)
    this.pool = new ActorPool(grid, {
      size: this.starting,
      create: () => Actor.remote(opts.model, opts.actor),
      describe: (h) => h.describe.remote(),
      what: 'serving replica',
      loads: `model ${opts.version}`,
      onReady: (m) => {
        this.starting = Math.max(0, this.starting - 1)
        this.replicas.set(m, { member: m, sizer: opts.sizer(), busy: false, inFlight: [], chained: 0, served: 0, batches: 0, idleSince: performance.now(), latency: new Histogram() })
        this.pump()
      },
      onGone: (m) => { this.replicas.delete(m) },
      onBroken: (e) => {
        for (const q of this.queue.splice(0)) this.fail(q, e)
        opts.onBroken?.(e)
      },
    })
    this.timer = setInterval(() => this.scale(), 250)
    ;(this.timer as { unref?: () => void }).unref?.()
  }

  get broken(): Error | undefined { return this.pool.broken }
  get rowShape(): number[] { return this.opts.rowShape }

  /** A live replica for a pipeline's call, the one with the fewest such calls in flight; undefined while none has loaded. */
  pick(): PoolMember<ColonyScoringActor> | undefined {
    let best: Replica | undefined
    for (const r of this.replicas.values()) if (!r.member.dead && (!best || r.chained < best.chained)) best = r
    if (best) best.chained++
    return best?.member
  }

  /** A pipeline's call on `m` ended; `vanished`: its peer went, so the replica is replaced. */
  release(m: PoolMember<ColonyScoringActor>, vanished: boolean): void {
    const r = this.replicas.get(m)
    if (r) r.chained = Math.max(0, r.chained - 1)
    if (vanished) this.pool.retire(m)
  }
  get queued(): number { return this.queue.length }
  get live(): number { return this.replicas.size }

  /** Resolves once `n` replicas have loaded the model. */
  ready(n: number, timeoutMs?: number): Promise<void> { return this.pool.ready(n, timeoutMs) }

  submit(q: Query): void {
    if (this.pool.broken) { this.fail(q, this.pool.broken); return }
    this.queue.push(q)
    this.pump()
  }

  stats(): ReplicaStats[] {
    return [...this.replicas.values()].map((r) => ({
      peer: r.member.peer ?? '', backend: r.member.backend ?? '', served: r.served, batches: r.batches, batchSize: r.sizer.size, busy: r.busy,
    }))
  }

  /** Each live replica's batch latencies (ms, dispatch to result), by peer. */
  latencies(): { peer: string; histogram: Histogram }[] {
    return [...this.replicas.values()].map((r) => ({ peer: r.member.peer ?? '', histogram: r.latency }))
  }

  /** Ends the replicas; queries queued or on a replica fail at once, rather than at their timeout. */
  close(): void {
    clearInterval(this.timer)
    const gone = new Error(`model ${this.opts.version}'s deployment was deleted or replaced while the row waited`)
    for (const q of this.queue.splice(0)) this.fail(q, gone)
    for (const r of this.replicas.values()) for (const q of r.inFlight) this.fail(q, gone)
    this.pool.close()
  }

  private pump(): void {
    for (const r of this.replicas.values()) {
      if (this.queue.length === 0) return
      if (r.busy || r.member.dead) continue
      const batch: Query[] = []
      while (batch.length < r.sizer.size && this.queue.length > 0) {
        const q = this.queue.shift()!
        if (!q.settled) batch.push(q)
      }
      if (batch.length > 0) this.dispatch(r, batch)
    }
  }

  private dispatch(r: Replica, batch: Query[]): void {
    r.busy = true
    r.inFlight = batch
    r.batches++
    this.batchSizes.push(batch.length)
    if (this.batchSizes.length > SIZES_KEPT) this.batchSizes.splice(0, this.batchSizes.length - SIZES_KEPT)
    const x = new Float32Array(batch.length * this.rowSize)
    batch.forEach((q, i) => x.set(q.row, i * this.rowSize))
    const started = performance.now()
    const ref = r.member.handle.score.remote({ data: x, shape: [batch.length, ...this.opts.rowShape] }, 0)
    this.grid.get(ref).then((score) => {
      const ms = performance.now() - started
      r.sizer.observe(batch.length, ms)
      r.latency.observe(ms)
      this.opts.onBatch?.(batch.length, ms)
      r.served += batch.length
      batch.forEach((q, i) => {
        if (q.settled) return
        q.settled = true
        q.resolve(score.data.slice(i * score.width, (i + 1) * score.width))
      })
    }, (e: unknown) => {
      if (peerVanished(e)) {
        // Its peer went: the queries go first to whichever replica is free next (back in the queue before
        // retire, which may find the pool broken and fail everything queued with the reason).
        this.queue.unshift(...batch.filter((q) => !q.settled))
        this.pool.retire(r.member)
        return
      }
      const err = Object.assign(new Error(`model ${this.opts.version} failed on replica ${r.member.peer}: ${(e as Error)?.message ?? e}`), { cause: e })
      for (const q of batch) this.fail(q, err)
    }).finally(() => {
      this.grid.free([ref])
      r.busy = false
      r.inFlight = []
      r.idleSince = performance.now()
      this.pump()
    })
  }

  private fail(q: Query, e: Error): void {
    if (q.settled) return
    q.settled = true
    q.reject(e)
  }

  /** Hedges stragglers, and grows or shrinks the set with its queue. */
  private scale(): void {
    const now = performance.now()
    // A query past its hedge time on a busy replica goes to a free one too (the first answer wins).
    const free = [...this.replicas.values()].some((r) => !r.busy)
    if (free) {
      const late: Query[] = []
      for (const r of this.replicas.values()) if (r.busy) late.push(...r.inFlight.filter((q) => !q.settled && q.hedgeAt <= now))
      for (const q of late) { q.hedgeAt = Infinity; this.queue.unshift(q) }
      if (late.length) this.pump()
    }
    // Rows that timed out meanwhile (deployment.ts) leave the queue, so it counts only live ones.
    if (this.queue.some((q) => q.settled)) this.queue.splice(0, this.queue.length, ...this.queue.filter((q) => !q.settled))
    // A deployment lives for weeks: a lost replica is always replaced while its set is whole.
    if (this.replicas.size >= this.opts.replicas.min) this.pool.forgiveLosses()
    const capacity = [...this.replicas.values()].reduce((n, r) => n + r.sizer.size, 0)
    const total = this.replicas.size + this.starting
    if (this.queue.length > 2 * Math.max(1, capacity) && total < this.opts.replicas.max) {
      this.starting++
      this.pool.grow()
    } else if (this.queue.length === 0 && this.replicas.size > this.opts.replicas.min) {
      const idle = [...this.replicas.values()].find((r) => !r.busy && r.chained === 0 && now - r.idleSince > IDLE_MS)
      if (idle) { this.replicas.delete(idle.member); this.pool.shrink(idle.member) }
    }
  }
}
