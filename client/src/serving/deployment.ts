/**
 * A deployment: one name in front of one or more model versions, each with its replicas
 * (replica-set.ts). A request's rows are answered from the cache where it can, the rest queued
 * to the version(s) the selection policy chooses; Exp4's answer is formed from the versions that
 * answered by the hedge time, once at least one has. Feedback (a row's true label) teaches the
 * policy. Past `queueCap` waiting rows, requests are refused with the time the queue needs to drain.
 */
import { TimeoutError, type ObjectRef } from '@colony-grid/shared'
import type { Grid } from '@colony-grid/worker-web'
import { modelPayload } from '../scoring/model.js'
import type { ModelPayload } from '../scoring/types.js'
import { AimdBatchSizer, FixedBatchSizer, type BatchSizer } from './aimd.js'
import { PredictionCache } from './cache.js'
import { Histogram } from './histogram.js'
import { BadInputError, QueueFullError } from './errors.js'
import { PipelineSet } from './pipeline.js'
import { ReplicaSet, type Query, type QueryTarget } from './replica-set.js'
import { argmax, selectionPolicy, type SelectionPolicy } from './selection.js'
import type { DeploymentStats, Prediction, ServeOptions } from './types.js'

const LATENCIES_KEPT = 4096
/** Queries whose answers feedback may still name. */
const ANSWERS_KEPT = 100_000

interface Answer { output: Float32Array; confidence?: number; predicted: Map<string, number>; cached: boolean }

/** What a deployment serves: model versions of its own, or a pipeline through other deployments' replicas. */
type Plan = { kind: 'models'; versions: string[]; payloads: ModelPayload[] } | { kind: 'pipeline'; stages: ReplicaSet[] }

/** The one "version" of a pipeline deployment (it names the cache's keys, and answers' `version`). */
const PIPELINE = 'pipeline'

/** One row's shape, from the option or a tfjs model's first layer. */
function rowShapeOf(opts: ServeOptions, payloads: ModelPayload[]): number[] {
  if (opts.inputShape) {
    if (!opts.inputShape.every((d) => Number.isInteger(d) && d > 0)) throw new BadInputError(`inputShape must be whole numbers over 0 (got [${opts.inputShape.join(', ')}])`)
    return opts.inputShape.slice()
  }
  for (const p of payloads) {
    if (p.format !== 'tfjs') continue
    const t = p.topology as { config?: { layers?: { config?: { batch_input_shape?: (number | null)[] } }[] }; model_config?: unknown }
    const shape = t.config?.layers?.[0]?.config?.batch_input_shape
    if (shape && shape.slice(1).every((d) => typeof d === 'number')) return shape.slice(1) as number[]
  }
  throw new BadInputError('give inputShape, one input row\'s shape (e.g. [784]): an ONNX model does not say it here')
}

export class Deployment {
  private readonly sets = new Map<string, QueryTarget>()
  private readonly cache: PredictionCache
  private readonly policy: SelectionPolicy
  private readonly latencies = new Float64Array(LATENCIES_KEPT)
  private readonly answers = new Map<string, Map<string, number>>()
  private readonly models: ObjectRef<ModelPayload>[] = []
  private readonly rowSize: number
  private latencyCount = 0
  private readonly latency = new Histogram()
  private nextId = 0
  private pending = 0
  private requests = 0
  private rows = 0
  private feedbacks = 0
  private readonly rejected = { full: 0, badInput: 0, timedOut: 0 }
  /** Rows answered per second, smoothed: how long a full queue takes to drain. */
  private rate = 0
  private rateAt = performance.now()
  private rateRows = 0
  private closed = false
  private sloMs: number

  private constructor(private readonly grid: Grid, readonly name: string, readonly opts: ServeOptions, readonly rowShape: number[], plan: Plan) {
    this.rowSize = rowShape.reduce((a, b) => a * b, 1)
    const versions = plan.kind === 'models' ? plan.versions : [PIPELINE]
    this.policy = selectionPolicy(opts.selection ?? (versions.length > 1 ? 'exp3' : 'fixed'), versions)
    this.cache = new PredictionCache(opts.cache === false ? 0 : (opts.cache?.entries ?? 10_000))
    this.sloMs = opts.sloMs ?? 50
    const batching = opts.batching ?? 'aimd'
    const sizer = (): BatchSizer => batching === 'aimd' ? new AimdBatchSizer({ sloMs: () => this.sloMs }) : new FixedBatchSizer(batching === 'off' ? 1 : batching.maxBatch)
    const min = Math.max(1, opts.replicas?.min ?? 1), max = Math.max(min, opts.replicas?.max ?? 4)
    if (plan.kind === 'pipeline') this.sets.set(PIPELINE, new PipelineSet(grid, plan.stages, sizer))
    else plan.payloads.forEach((payload, i) => {
      const model = grid.put(payload)
      this.models.push(model)
      this.sets.set(versions[i], new ReplicaSet(grid, {
        version: versions[i], model, rowShape, replicas: { min, max }, sizer,
        actor: { backend: opts.backend ?? 'auto', inputScale: opts.inputScale ?? 1 }, capabilities: opts.capabilities ?? [],
      }))
    })
  }

  /**
   * Checks the options, puts each model in the grid once, and starts `replicas.min` replicas of each
   * version; or, for a pipeline, finds its stages' replicas through `stage` (their deployments' own).
   */
  static async create(grid: Grid, name: string, opts: ServeOptions, stage?: (name: string) => ReplicaSet): Promise<Deployment> {
    if (!/^[a-z0-9][a-z0-9._-]{0,63}$/i.test(name)) throw new BadInputError(`a deployment's name is 1-64 letters, digits, '.', '_' or '-' (got '${name}')`)
    if (opts?.pipeline !== undefined) {
      if (opts.models !== undefined) throw new BadInputError('give models or pipeline, not both')
      if (!Array.isArray(opts.pipeline) || opts.pipeline.length < 2 || !opts.pipeline.every((s) => typeof s === 'string')) throw new BadInputError('pipeline: the names of 2 deployments or more, in the order a request goes through them')
      if (!stage) throw new BadInputError('a pipeline is made on the coordinator, whose deployments it goes through')
      if (opts.pipeline.includes(name)) throw new BadInputError(`the pipeline '${name}' cannot go through itself`)
      const stages = opts.pipeline.map(stage)
      return new Deployment(grid, name, opts, stages[0].rowShape, { kind: 'pipeline', stages })
    }
    if (!Array.isArray(opts?.models) || opts.models.length === 0) throw new BadInputError('models: give at least one { version, onnx } or { version, tfjs } (or a pipeline of deployments)')
    const versions = opts.models.map((m) => m.version)
    if (versions.some((v) => typeof v !== 'string' || v.length === 0) || new Set(versions).size !== versions.length) throw new BadInputError(`each model needs a version of its own (got ${JSON.stringify(versions)})`)
    if (opts.sloMs !== undefined && !(opts.sloMs > 0)) throw new BadInputError(`sloMs must be over 0 (got ${opts.sloMs})`)
    if (typeof opts.batching === 'object' && opts.batching !== null && !(Number.isInteger(opts.batching.maxBatch) && opts.batching.maxBatch > 0)) throw new BadInputError(`batching.maxBatch must be a whole number over 0 (got ${opts.batching.maxBatch})`)
    if (opts.batching !== undefined && opts.batching !== 'aimd' && opts.batching !== 'off' && (typeof opts.batching !== 'object' || opts.batching === null)) throw new BadInputError(`batching must be 'aimd', 'off' or { maxBatch } (got ${JSON.stringify(opts.batching)})`)
    if (opts.selection !== undefined && !['fixed', 'exp3', 'exp4'].includes(opts.selection)) throw new BadInputError(`selection must be 'fixed', 'exp3' or 'exp4' (got ${JSON.stringify(opts.selection)})`)
    const r = opts.replicas
    const whole = (v: unknown) => v === undefined || (Number.isInteger(v) && (v as number) >= 1)
    if (r !== undefined && (typeof r !== 'object' || r === null || !whole(r.min) || !whole(r.max) || (r.min ?? 1) > (r.max ?? Infinity))) {
      throw new BadInputError(`replicas must be { min?, max? }, whole numbers with 1 <= min <= max (got ${JSON.stringify(r)})`)
    }
    for (const key of ['queueCap', 'timeoutMs', 'hedgeMs'] as const) {
      const v = opts[key]
      if (v !== undefined && !(typeof v === 'number' && v > 0)) throw new BadInputError(`${key} must be a number over 0 (got ${JSON.stringify(v)})`)
    }
    let payloads: ModelPayload[]
    try { payloads = await Promise.all(opts.models.map((m) => modelPayload(m))) } catch (e) { throw new BadInputError(`a model of '${name}': ${(e as Error).message}`) }
    return new Deployment(grid, name, opts, rowShapeOf(opts, payloads), { kind: 'models', versions, payloads })
  }

  /** Resolves once every version has a replica loaded. */
  async ready(timeoutMs = 60_000): Promise<void> {
    await Promise.all([...this.sets.values()].map((s) => s.ready(1, timeoutMs)))
  }

  get access(): 'token' | 'public' { return this.opts.access ?? 'token' }

  /** The versions it serves (for a pipeline, 'pipeline'). */
  get versions(): string[] { return [...this.sets.keys()] }

  /** Its one version's replicas, for a pipeline to go through. */
  replicaSet(): ReplicaSet {
    const sets = [...this.sets.values()]
    if (sets.length !== 1 || !(sets[0] instanceof ReplicaSet)) throw new BadInputError(`'${this.name}' serves ${sets.length === 1 ? 'a pipeline' : `${sets.length} versions`}: a pipeline's stage must serve one model version`)
    return sets[0]
  }

  /** The latency objective AIMD keeps each batch to, from the next batch on. */
  get objectiveMs(): number { return this.sloMs }
  set objectiveMs(ms: number) {
    if (!(typeof ms === 'number' && ms > 0 && Number.isFinite(ms))) throw new BadInputError(`sloMs must be a number of ms over 0 (got ${JSON.stringify(ms)})`)
    this.sloMs = ms
  }

  /** Rows, each `rowShape`'s values: as numbers (JSON) or a Float32Array of rows × rowSize. */
  toRows(inputs: unknown): Float32Array[] {
    const shape = `[N, ${this.rowShape.join(', ')}]`
    const bad = (why: string) => { this.rejected.badInput++; return new BadInputError(`'${this.name}' takes inputs of shape ${shape} (rows of ${this.rowSize} numbers): ${why}`) }
    if (inputs instanceof Float32Array) {
      if (inputs.length === 0 || inputs.length % this.rowSize !== 0) throw bad(`${inputs.length} values are not whole rows`)
      return Array.from({ length: inputs.length / this.rowSize }, (_, i) => inputs.subarray(i * this.rowSize, (i + 1) * this.rowSize))
    }
    if (!Array.isArray(inputs) || inputs.length === 0) throw bad('inputs must be a non-empty array of rows')
    return inputs.map((row, i) => {
      const flat = Array.isArray(row) ? (row as unknown[]).flat(this.rowShape.length) : undefined
      if (!flat || flat.length !== this.rowSize) throw bad(`row ${i} has ${flat ? flat.length : 'no'} values`)
      const out = new Float32Array(this.rowSize)
      for (let j = 0; j < flat.length; j++) {
        const v = flat[j]
        if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`row ${i}, value ${j} is ${JSON.stringify(v)}, not a finite number`)
        out[j] = v
      }
      return out
    })
  }

  async predict(rows: Float32Array[]): Promise<Prediction> {
    if (this.closed) throw new Error(`deployment '${this.name}' was deleted`)
    for (const [i, r] of rows.entries()) {
      if (r.length !== this.rowSize) throw new BadInputError(`row ${i} has ${r.length} values; '${this.name}' takes ${this.rowSize}`)
      for (let j = 0; j < r.length; j++) if (!Number.isFinite(r[j])) throw new BadInputError(`row ${i} has ${r[j]} at ${j}: every value must be a finite number`)
    }
    const cap = this.opts.queueCap ?? 2000
    if (rows.length > cap) throw new BadInputError(`the request has ${rows.length} rows; '${this.name}' queues at most ${cap} (queueCap): send them in smaller requests`)
    if (this.pending + rows.length > cap) {
      this.rejected.full++
      const retryAfterS = Math.max(1, Math.ceil(this.pending / Math.max(1, this.rate)))
      throw new QueueFullError(`'${this.name}' has ${this.pending} rows waiting, its cap is ${this.opts.queueCap ?? 2000}: try again in ${retryAfterS} s`, retryAfterS)
    }
    const started = performance.now()
    this.pending += rows.length
    this.requests++
    try {
      const versions = this.policy.choose()
      const answers = await Promise.all(rows.map((row) => this.answer(row, versions)))
      const ids = answers.map((a) => this.remember(a.predicted))
      const versionOf = versions.length === 1 ? versions[0] : 'ensemble'
      return {
        outputs: answers.map((a) => Array.from(a.output)), version: versionOf, ids,
        ...(versions.length > 1 ? { confidence: answers.map((a) => a.confidence ?? 1) } : {}),
        cached: answers.filter((a) => a.cached).length,
      }
    } catch (e) {
      if (e instanceof TimeoutError) this.rejected.timedOut++
      throw e
    } finally {
      this.pending -= rows.length
      this.rows += rows.length
      const ms = performance.now() - started
      this.latencies[this.latencyCount++ % LATENCIES_KEPT] = ms
      this.latency.observe(ms)
      this.countRate(rows.length)
    }
  }

  /** A row's true label: the policy learns which versions got it right. Returns false for an id it no longer knows. */
  feedback(id: string, label: number): boolean {
    if (!Number.isInteger(label) || label < 0) throw new BadInputError(`label must be a class index, a whole number from 0 (got ${JSON.stringify(label)})`)
    const predicted = this.answers.get(id)
    if (!predicted) return false
    this.answers.delete(id)
    this.feedbacks++
    this.policy.feedback(predicted, label)
    return true
  }

  stats(): DeploymentStats {
    const n = Math.min(this.latencyCount, LATENCIES_KEPT)
    const sorted = Float64Array.from(this.latencies.subarray(0, n)).sort()
    const at = (q: number) => (n ? sorted[Math.min(n - 1, Math.floor(q * n))] : 0)
    return {
      name: this.name, selection: this.policy.name, access: this.access, sloMs: this.sloMs, ...(this.opts.pipeline ? { pipeline: this.opts.pipeline } : {}),
      versions: [...this.sets.entries()].map(([version, s]) => ({ version, replicas: s.stats(), queued: s.queued, recentBatches: s.batchSizes.slice(-1000) })),
      shares: this.policy.shares(), requests: this.requests, rows: this.rows, pending: this.pending, rejected: { ...this.rejected },
      cache: { entries: this.cache.size, hits: this.cache.hits, misses: this.cache.misses, hitRatio: this.cache.hitRatio },
      latency: { p50: at(0.5), p99: at(0.99), count: n }, feedbacks: this.feedbacks,
    }
  }


  /** For /metrics: the requests' latency histogram, and each replica's batches' (ms; http.ts gives them in seconds). */
  latencyHistograms(): { requests: Histogram; batches: { version: string; peer: string; histogram: Histogram }[] } {
    const batches: { version: string; peer: string; histogram: Histogram }[] = []
    for (const [version, s] of this.sets) {
      if (s instanceof ReplicaSet) for (const r of s.latencies()) batches.push({ version, peer: r.peer, histogram: r.histogram })
    }
    return { requests: this.latency, batches }
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    for (const s of this.sets.values()) s.close()
    this.grid.free(this.models)
  }

  private async answer(row: Float32Array, versions: string[]): Promise<Answer> {
    const outputs = new Map<string, Float32Array>()
    const asked: Promise<void>[] = []
    let cached = true
    for (const v of versions) {
      const key = this.cache.key(v, row)
      const hit = this.cache.get(key)
      if (hit) { outputs.set(v, hit); continue }
      cached = false
      asked.push(this.query(v, row).then((o) => { this.cache.set(key, o); outputs.set(v, o) }))
    }
    if (asked.length === 1 && outputs.size === 0) await asked[0]
    else if (asked.length > 0) await this.enough(asked, outputs)
    const { output, confidence } = this.policy.combine(outputs)
    return { output, confidence, predicted: new Map([...outputs].map(([v, o]) => [v, argmax(o)])), cached }
  }

  /** An ensemble's row: every version's output, or by the hedge time those that came (at least one). */
  private async enough(asked: Promise<void>[], outputs: Map<string, Float32Array>): Promise<void> {
    const all = Promise.allSettled(asked)
    let timer: ReturnType<typeof setTimeout> | undefined
    const cut = new Promise<void>((r) => { timer = setTimeout(r, this.hedgeMs) })
    await Promise.race([all, cut])
    clearTimeout(timer)
    if (outputs.size > 0) return
    // None in time: the first that answers, or every one's error.
    await Promise.any(asked).catch((e: AggregateError) => { throw e.errors[0] })
  }

  private get hedgeMs(): number { return this.opts.hedgeMs ?? 4 * this.sloMs }

  private query(version: string, row: Float32Array): Promise<Float32Array> {
    const set = this.sets.get(version)!
    const timeoutMs = this.opts.timeoutMs ?? 30_000
    return new Promise<Float32Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (q.settled) return
        q.settled = true
        reject(new TimeoutError(`'${this.name}' (model ${version}) did not answer within ${timeoutMs} ms: ${set.live} replicas, ${set.queued} rows queued`))
      }, timeoutMs)
      const q: Query = {
        row, hedgeAt: performance.now() + this.hedgeMs, settled: false,
        resolve: (o) => { clearTimeout(timer); resolve(o) },
        reject: (e) => { clearTimeout(timer); reject(e) },
      }
      set.submit(q)
    })
  }

  private remember(predicted: Map<string, number>): string {
    const id = `${this.name}-${(this.nextId++).toString(36)}`
    this.answers.set(id, predicted)
    if (this.answers.size > ANSWERS_KEPT) this.answers.delete(this.answers.keys().next().value!)
    return id
  }

  private countRate(rows: number): void {
    this.rateRows += rows
    const now = performance.now(), dt = (now - this.rateAt) / 1000
    if (dt < 1) return
    this.rate = this.rate ? 0.7 * this.rate + 0.3 * (this.rateRows / dt) : this.rateRows / dt
    this.rateAt = now
    this.rateRows = 0
  }
}
