/**
 * A pipeline deployment's queue (composition): batches are formed as a replica set forms them (its
 * own AIMD sizer), then sent through the stages in order, each stage's call given the previous
 * call's result as a ref. So an intermediate value moves from the peer of one stage's replica to
 * the next one's, and only the last stage's output comes back here. A batch whose stage replica's
 * peer went is sent again, through a replacement, up to MAX_RETRIES times.
 */
import { ObjectLostError, type ObjectRef } from '@colony-grid/shared'
import type { Grid } from '@colony-grid/worker-web'
import { peerVanished, type PoolMember } from '../pool/actor-pool.js'
import type { ColonyScoringActor } from '../scoring/actor.js'
import type { ShardScore } from '../scoring/types.js'
import type { BatchSizer } from './aimd.js'
import type { Query, QueryTarget, ReplicaSet, ReplicaStats } from './replica-set.js'

const MAX_RETRIES = 3
const SIZES_KEPT = 10_000

export class PipelineSet implements QueryTarget {
  private readonly queue: Query[] = []
  private readonly sizer: BatchSizer
  private readonly rowSize: number
  private inFlight = 0
  private served = 0
  private batches = 0
  readonly batchSizes: number[] = []

  constructor(private readonly grid: Grid, private readonly stages: ReplicaSet[], sizer: () => BatchSizer) {
    this.sizer = sizer()
    this.rowSize = stages[0].rowShape.reduce((a, b) => a * b, 1)
  }

  get queued(): number { return this.queue.length }
  /** As many batches at once as the first stage has replicas. */
  get live(): number { return this.stages[0].live }

  submit(q: Query): void {
    this.queue.push(q)
    this.pump()
  }

  async ready(n: number, timeoutMs?: number): Promise<void> { await Promise.all(this.stages.map((s) => s.ready(n, timeoutMs))) }

  stats(): ReplicaStats[] {
    return [{ peer: 'pipeline', backend: this.stages.length + ' stages', served: this.served, batches: this.batches, batchSize: this.sizer.size, busy: this.inFlight > 0 }]
  }

  /** The stages belong to their own deployments: nothing of theirs is ended here. */
  close(): void {
    for (const q of this.queue.splice(0)) if (!q.settled) { q.settled = true; q.reject(new Error('the pipeline was deleted')) }
  }

  private pump(): void {
    while (this.queue.length > 0 && this.inFlight < Math.max(1, this.live)) {
      const batch: Query[] = []
      while (batch.length < this.sizer.size && this.queue.length > 0) {
        const q = this.queue.shift()!
        if (!q.settled) batch.push(q)
      }
      if (batch.length === 0) return
      void this.dispatch(batch)
    }
  }

  private async dispatch(batch: Query[]): Promise<void> {
    this.inFlight++
    this.batches++
    this.batchSizes.push(batch.length)
    if (this.batchSizes.length > SIZES_KEPT) this.batchSizes.splice(0, this.batchSizes.length - SIZES_KEPT)
    const x = new Float32Array(batch.length * this.rowSize)
    batch.forEach((q, i) => x.set(q.row, i * this.rowSize))
    const used: [ReplicaSet, PoolMember<ColonyScoringActor>][] = []
    const refs: ObjectRef<ShardScore>[] = []
    const started = performance.now()
    try {
      let input: { data: Float32Array; shape: number[] } | ObjectRef<ShardScore> = { data: x, shape: [batch.length, ...this.stages[0].rowShape] }
      for (const stage of this.stages) {
        const m = stage.pick()
        if (!m) throw new ObjectLostError('a stage of the pipeline has no replica loaded')
        used.push([stage, m])
        const ref: ObjectRef<ShardScore> = m.handle.score.remote(input as never, 0)
        refs.push(ref)
        input = ref
      }
      const out = await this.grid.get(refs[refs.length - 1])
      this.sizer.observe(batch.length, performance.now() - started)
      this.served += batch.length
      for (const u of used) u[0].release(u[1], false)
      batch.forEach((q, i) => {
        if (q.settled) return
        q.settled = true
        q.resolve(out.data.slice(i * out.width, (i + 1) * out.width))
      })
    } catch (e) {
      await this.settleFailure(batch, used, e)
    } finally {
      this.grid.free(refs)
      this.inFlight--
      this.pump()
    }
  }

  /** A stage's peer went: its replica is replaced and the batch sent again. Any other error is the queries'. */
  private async settleFailure(batch: Query[], used: [ReplicaSet, PoolMember<ColonyScoringActor>][], e: unknown): Promise<void> {
    const lost = peerVanished(e) || e instanceof ObjectLostError
    // Which stage's peer went: ask each replica the batch went through where it is.
    await Promise.all(used.map(async ([stage, m]) => {
      const gone = lost && await this.grid.get(m.handle.describe.remote(), { timeoutMs: 5000 }).then(() => false, (err: unknown) => peerVanished(err))
      stage.release(m, gone)
    }))
    for (const q of batch) {
      if (q.settled) continue
      if (lost && (q.retries ?? 0) < MAX_RETRIES) { q.retries = (q.retries ?? 0) + 1; this.queue.unshift(q); continue }
      q.settled = true
      q.reject(Object.assign(new Error(`the pipeline failed: ${(e as Error)?.message ?? e}`), { cause: e }))
    }
  }
}
