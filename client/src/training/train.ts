/**
 * Data-parallel training on the grid, with a parameter server (the survey in shared/seeds:
 * the parameter server won, with Petuum's Stale Synchronous Parallel consistency).
 *
 * The workers are the shared actor pool (../pool/actor-pool.ts) configured with training
 * workers (worker.ts): one per free CPU slot, up to `workers.max`, growing as peers join and
 * replaced when a peer vanishes (its batch goes back to the queue; nothing restarts). The
 * parameter server is `ps.shards` actors (parameter-shard.ts), with restarts from their
 * checkpoints. This driver hands out batches and keeps the clocks: a worker at clock c starts
 * its next step only while c - (the slowest live worker's clock) <= staleness (0 for BSP).
 */
import { CancelledError, type ObjectRef } from '@colony-grid/shared'
import type { ActorHandle, Grid } from '@colony-grid/worker-web'
import { EventLog } from '../event-log.js'
import { rng } from '../random.js'
import { ActorPool, peerVanished, type PoolMember } from '../pool/actor-pool.js'
import { splitRows } from '../scoring/dataset.js'
import type { Shard } from '../scoring/types.js'
import { ColonyParameterShard } from './parameter-shard.js'
import type { BatchRef, EpochRecord, ModelPlan, TrainOptions, TrainingData, TrainingResult, TrainingStep, WorkerRecord } from './types.js'
import { ColonyTrainingWorker } from './worker.js'

/** A training run: `await` it for the trained weights, or `for await` its steps as they finish. */
export type TrainingRun = Promise<TrainingResult> & AsyncIterable<TrainingStep> & {
  /** Stops the run; the promise rejects with CancelledError. */
  cancel(): void
}

interface WorkerState { id: string; clock: number; busy: boolean; steps: number; samples: number; busyMs: number; gone: boolean }

/** The labels or targets as a shard of `rows` rows. */
function targets(y: TrainingData['y'], rows: number): Shard {
  const t: Shard = ArrayBuffer.isView(y) ? { data: y, shape: [y.length] } : Array.isArray(y) ? { data: Float32Array.from(y), shape: [y.length] } : y as Shard
  if (!t || !ArrayBuffer.isView(t.data) || !Array.isArray(t.shape)) throw new TypeError('data.y must be labels (an array) or a { data, shape } shard of targets')
  if (t.shape[0] !== rows) throw new RangeError(`data.x has ${rows} rows and data.y ${t.shape[0]}: they must match, row for row`)
  return t
}

function checkData(d: TrainingData, what: string): { x: Shard; y: Shard } {
  const x = d?.x
  if (!x || !ArrayBuffer.isView(x.data) || !Array.isArray(x.shape) || x.shape.length < 2) throw new TypeError(`${what}.x must be a { data, shape } shard of rows`)
  const rowSize = x.shape.slice(1).reduce((a, b) => a * b, 1)
  if (x.data.length !== x.shape[0] * rowSize) throw new RangeError(`${what}.x: shape [${x.shape.join(', ')}] does not match its ${x.data.length} values`)
  return { x, y: targets(d.y, x.shape[0]) }
}

/** A seeded order (mulberry32), so a run's batches come in the same order each time. */
function shuffled(n: number, seed: number): number[] {
  const rand = rng(seed)
  const out = Array.from({ length: n }, (_, i) => i)
  for (let i = n - 1; i > 0; i--) { const j = Math.floor(rand() * (i + 1)); [out[i], out[j]] = [out[j], out[i]] }
  return out
}

/** How long the probe, the shards and the first workers may wait for free CPU slots. */
const SLOT_WAIT_MS = 120_000

export function train(grid: Grid, opts: TrainOptions): TrainingRun {
  const stream = new EventLog<TrainingStep>()
  let cancel: (e: Error) => void = () => {}
  const result = (async (): Promise<TrainingResult> => {
    const batchSize = opts.batchSize ?? 64, epochs = opts.epochs ?? 1
    if (!(Number.isInteger(batchSize) && batchSize > 0)) throw new RangeError(`batchSize must be a whole number over 0 (got ${opts.batchSize})`)
    if (!(Number.isInteger(epochs) && epochs > 0)) throw new RangeError(`epochs must be a whole number over 0 (got ${opts.epochs})`)
    if (!opts.model?.topology) throw new TypeError('model.topology is required: a tfjs LayersModel\'s topology (model.json\'s modelTopology, or model.toJSON())')
    const data = checkData(opts.data, 'data')
    const rows = data.x.shape[0]
    if (rows < batchSize) throw new RangeError(`the dataset has ${rows} rows, fewer than one batch of ${batchSize}: give more rows or a smaller batchSize`)
    const consistency = opts.consistency ?? { mode: 'ssp', staleness: 3 }
    const staleness = consistency.mode === 'bsp' ? 0 : consistency.mode === 'async' ? Infinity : consistency.staleness
    const decay = opts.optimizer?.decay
    if (decay !== undefined && !(decay > 0 && decay <= 1)) throw new RangeError(`optimizer.decay must be over 0 and at most 1 (got ${decay})`)
    if (opts.snapshots && !(Number.isInteger(opts.snapshots.every) && opts.snapshots.every > 0)) throw new RangeError(`snapshots.every must be a whole number of steps over 0 (got ${opts.snapshots.every})`)
    if (!(staleness >= 0)) throw new RangeError(`consistency.staleness must be 0 or more (got ${staleness})`)
    const aggregate = opts.aggregate ?? 'mean'
    const loss = opts.loss ?? 'sparseCategoricalCrossentropy'
    const inputScale = opts.inputScale ?? 1
    if (!Number.isFinite(inputScale)) throw new RangeError(`inputScale must be a finite number (got ${opts.inputScale})`)
    const wire = opts.wire ?? 'float32'
    if (wire !== 'float32' && wire !== 'bfloat16') throw new RangeError(`wire must be 'float32' or 'bfloat16' (got ${String(opts.wire)})`)

    // The data, as batches put once and reused every epoch.
    const xs = splitRows(data.x, batchSize), ys = splitRows(data.y, batchSize)
    const batches: BatchRef[] = xs.map((x, i) => grid.put({ x, y: ys[i] }))
    const validation = opts.validation ? (({ x, y }) => ({ x: grid.put(x), y: grid.put(y) }))(checkData(opts.validation, 'validation')) : undefined
    const evaluations: Promise<void>[] = []
    const plan = grid.put<ModelPlan>({ topology: opts.model.topology, weights: opts.model.weights, loss, inputScale, wire })
    const owned: ObjectRef<unknown>[] = [...batches, plan, ...(validation ? [validation.x, validation.y] : [])]
    const workersMax = Math.max(1, opts.workers?.max ?? 16), workersMin = Math.max(1, Math.min(workersMax, opts.workers?.min ?? 1))
    const Worker = grid.remote(ColonyTrainingWorker).options({ resources: { cpu: 1 }, capabilities: opts.capabilities ?? [], maxRestarts: 0 })
    const Shard = grid.remote(ColonyParameterShard).options({ resources: { cpu: 1 }, capabilities: opts.ps?.capabilities ?? opts.capabilities ?? [], maxRestarts: 3 })

    const started = performance.now()
    const states = new Map<PoolMember<ColonyTrainingWorker>, WorkerState>()
    let failure: Error | undefined, settle!: () => void
    const over = new Promise<void>((r) => { settle = r })
    const fail = (e: Error) => { failure ??= e; settle() }
    cancel = fail
    let ps: ActorHandle<ColonyParameterShard>[] = []
    let bounds: number[] = []
    let window = 0
    let begun = false
    /** The epoch the shards' learning rate is at. */
    let lrEpoch = 0
    let nextWorker = 1
    const total = epochs * batches.length
    const order = Array.from({ length: epochs }, (_, e) => shuffled(batches.length, (opts.seed ?? 1) + e))
    const queue: { epoch: number; batch: number }[] = order.flatMap((o, e) => o.map((batch) => ({ epoch: e, batch })))
    const epochLoss = new Array<number>(epochs).fill(0), epochSteps = new Array<number>(epochs).fill(0)
    const history: EpochRecord[] = []
    let done = 0, samples = 0, bytes = 0, retries = 0, maxClockSpread = 0, psLosses = 0

    const live = () => [...states.entries()].filter(([m, s]) => !m.dead && !s.gone)
    const minClock = () => Math.min(...live().map(([, s]) => s.clock))
    // How many pushes one update combines. BSP combines every live worker's gradient of a clock, and a
    // robust aggregate needs several to compare; under SSP and async a plain mean applies each push as it
    // comes, as Petuum's parameter server does (twice the updates per epoch of 2 workers, each on one batch).
    const windowOf = (k: number) => (aggregate === 'mean' && consistency.mode !== 'bsp' ? 1 : k)
    const resize = () => {
      const k = live().length
      if (k === 0 || k === window || ps.length === 0) return
      window = k
      for (const p of ps) grid.get(p.setWindow.options({ maxRetries: 3 }).remote(windowOf(k))).catch(() => undefined)
    }

    const feed = (m: PoolMember<ColonyTrainingWorker>) => {
      const s = states.get(m)
      if (!begun || !s || s.busy || s.gone || m.dead || failure || queue.length === 0) return
      const slowest = minClock()
      if (s.clock - slowest > staleness) return
      maxClockSpread = Math.max(maxClockSpread, s.clock - slowest)
      const item = queue.shift()!
      if (item.epoch > lrEpoch) {
        lrEpoch = item.epoch
        if (opts.optimizer?.decay !== undefined) for (const p of ps) grid.get(p.setEpoch.options({ maxRetries: 3 }).remote(item.epoch)).catch(() => undefined)
      }
      s.busy = true
      const t0 = performance.now()
      grid.get(m.handle.step.remote(batches[item.batch], ps, bounds)).then((o) => {
        s.busy = false
        if (failure) return
        s.clock++; s.steps++; s.samples += o.samples; s.busyMs += performance.now() - t0
        done++; samples += o.samples; bytes += o.bytes
        epochLoss[item.epoch] += o.loss; epochSteps[item.epoch]++
        if (epochSteps[item.epoch] === batches.length) {
          const record: EpochRecord = { epoch: item.epoch + 1, loss: epochLoss[item.epoch] / batches.length, ms: performance.now() - started }
          history.push(record)
          // Held out, on the worker that ended the epoch (between two of its steps); the last epoch's is the result's.
          if (validation && item.epoch + 1 < epochs) {
            evaluations.push(gather().then(({ weights }) => withWeights(weights, (w) => m.handle.evaluate.remote(w, validation.x, validation.y)))
              .then((a) => { record.accuracy = a }, () => { /* its worker went: that epoch has no accuracy */ }))
          }
        }
        const step: TrainingStep = {
          step: done, epoch: item.epoch + 1, worker: s.id, peer: m.peer!, backend: m.backend!, clock: s.clock, minClock: slowest,
          staleness: o.staleness, loss: o.loss, samples: o.samples, ms: o.ms, phases: o.phases, bytes: o.bytes,
        }
        stream.push(step)
        try { opts.onProgress?.(step) } catch (e) { fail(Object.assign(new Error(`onProgress threw: ${(e as Error)?.message ?? e}`), { cause: e })); return }
        if (opts.snapshots && done % opts.snapshots.every === 0) snapshot(done, item.epoch + 1)
        if (done === total) { settle(); return }
        for (const other of states.keys()) feed(other)
      }, (e: unknown) => {
        s.busy = false
        if (failure) return
        if (peerVanished(e)) {
          // Its batch goes back to the front; the others go on, and a replacement may join.
          queue.unshift(item)
          retries++
          s.gone = true
          pool?.retire(m)
          return
        }
        // A parameter-server shard lost with its peer (being re-created from its checkpoint), or the weights
        // it had just sent lost with it: the step is run again, by the same worker, a few times at most.
        if (/\b(PeerDiedError|ObjectLostError)\b/.test(String((e as Error)?.message)) && ++psLosses <= 8 * Math.max(1, ps.length)) {
          queue.unshift(item)
          retries++
          setTimeout(() => feed(m), 200)
          return
        }
        fail(Object.assign(new Error(`training worker ${s.id} on peer ${m.peer} failed a step: ${(e as Error)?.message ?? e}`), { cause: e }))
      })
    }

    // The shards' slices as they are now (a shard's calls run in order: each slice is whole).
    const gather = async (): Promise<{ weights: Float32Array; dropped: number }> => {
      const parts = await Promise.all(ps.map((p) => grid.get(p.weights.options({ maxRetries: 3 }).remote())))
      const weights = new Float32Array(bounds[bounds.length - 1])
      parts.forEach((p, i) => weights.set(p.weights, bounds[i]))
      return { weights, dropped: Math.max(...parts.map((p) => p.dropped)) }
    }
    // Weights sent to a worker are put here and freed after the call (an argument the call put itself would stay until the job ends).
    const withWeights = async <T>(weights: Float32Array, call: (w: ObjectRef<Float32Array>) => ObjectRef<T>): Promise<T> => {
      const w = grid.put(weights)
      try { return await grid.get(call(w)) } finally { grid.free(w) }
    }
    const snapshot = (step: number, epoch: number) => {
      const ms = performance.now() - started
      gather().then(({ weights }) => opts.snapshots!.on({ step, epoch, ms, weights }))
        .catch((e: unknown) => fail(Object.assign(new Error(`a weights snapshot at step ${step} failed: ${(e as Error)?.message ?? e}`), { cause: e })))
    }

    const placed = async <T>(p: Promise<T>, what: string): Promise<T> => {
      try { return await p } catch (e) {
        if ((e as { code?: string })?.code !== 'TIMEOUT') throw e
        throw Object.assign(new Error(`${what} found no free CPU slot within ${SLOT_WAIT_MS / 1000} s: free some (other jobs hold them), or add peers`), { code: 'TIMEOUT', cause: e })
      }
    }
    let pool: ActorPool<ColonyTrainingWorker> | undefined
    const startPool = () => new ActorPool(grid, {
      size: workersMax, what: 'training worker', loads: 'the model',
      create: () => Worker.remote(plan, opts.backend ?? 'auto'),
      describe: (h) => h.describe.remote(),
      onReady: (m) => {
        // A worker that joins mid-run starts at the slowest's clock, and counts in every update from now on.
        const clock = live().length ? minClock() : 0
        states.set(m, { id: `w${nextWorker++}`, clock, busy: false, steps: 0, samples: 0, busyMs: 0, gone: false })
        resize()
        feed(m)
      },
      onGone: (m) => {
        const s = states.get(m)
        if (s) s.gone = true
        resize()
        if (live().length === 0 && pool?.broken) fail(pool.broken)
        for (const other of states.keys()) feed(other)
      },
      onBroken: (e) => fail(e),
    })

    try {
      // The layout and starting weights, from a probe worker that builds the model (and says so if it
      // cannot). Its slot is given back, then the shards take theirs, then the workers all that is left:
      // workers created first could take every slot, and the shards would wait for ever.
      const probe = Worker.remote(plan, opts.backend ?? 'auto')
      let layout: { name: string; shape: number[] }[], start: Float32Array
      try {
        await placed(grid.get(probe.describe.remote(), { timeoutMs: SLOT_WAIT_MS }), 'a training worker').catch((e: Error & { code?: string }) => {
          throw e.code === 'TIMEOUT' ? e : Object.assign(new Error(`a training worker could not load the model: ${e.message}`), { cause: e })
        })
        layout = await grid.get(probe.layout.remote())
        start = await grid.get(probe.initial.remote())
      } finally { grid.kill(probe) }
      // Through the driver once, and kept in two copies: a shard re-created after its peer died is
      // constructed from it again (then restored).
      const initial = grid.put(start, { replicate: 2 })
      owned.push(initial)
      const n = layout.reduce((a, w) => a + w.shape.reduce((x, y) => x * y, 1), 0)
      const k = Math.max(1, Math.min(opts.ps?.shards ?? 1, n))
      bounds = Array.from({ length: k + 1 }, (_, i) => Math.round((i * n) / k))
      ps = bounds.slice(0, -1).map((from, i) => Shard.remote(initial, from, bounds[i + 1], {
        shard: i, optimizer: opts.optimizer ?? { name: 'adam', lr: 1e-3 }, aggregate, clipNorm: opts.clipNorm,
        window: windowOf(workersMin), checkpointEvery: Math.max(1, opts.checkpointEvery ?? 50), wire,
      }))
      await placed(Promise.all(ps.map((p) => grid.get(p.describe.remote(), { timeoutMs: SLOT_WAIT_MS }))), `the parameter server's ${k} shard${k === 1 ? '' : 's'}`)
      pool = startPool()
      await Promise.race([pool.ready(workersMin, SLOT_WAIT_MS), over])
      if (failure) throw failure
      // Steps start once `min` workers are there: fewer would make the first updates without them (and a
      // robust aggregate needs several gradients to compare).
      begun = true
      resize()
      for (const m of states.keys()) feed(m)
      await over
      if (failure) throw failure
      const { weights, dropped: droppedGradients } = await gather()
      const evaluator = live()[0]?.[0]
      if (!evaluator) throw pool.broken ?? new Error('every training worker is gone')
      const modelFiles = await withWeights(weights, (w) => evaluator.handle.export.remote(w))
      let accuracy: number | undefined
      if (validation) {
        accuracy = await withWeights(weights, (w) => evaluator.handle.evaluate.remote(w, validation.x, validation.y))
        if (history.length) history[history.length - 1].accuracy = accuracy
      }
      await Promise.all(evaluations)
      const elapsedMs = performance.now() - started
      const workers: WorkerRecord[] = [...states.entries()].map(([m, s]) => ({
        worker: s.id, peer: m.peer!, backend: m.backend!, steps: s.steps, samples: s.samples, busyMs: s.busyMs,
        samplesPerSecond: s.busyMs > 0 ? s.samples / (s.busyMs / 1000) : 0, gone: s.gone || m.dead,
      }))
      return { weights, layout, modelFiles, history, steps: done, samples, elapsedMs, samplesPerSecond: samples / (elapsedMs / 1000), accuracy, workers, maxClockSpread, retries, bytes, droppedGradients }
    } finally {
      pool?.close()
      await Promise.all(ps.map((p) => grid.get(p.release.remote(), { timeoutMs: 10_000 }).catch(() => undefined)))
      for (const p of ps) grid.kill(p)
      grid.free(owned)
    }
  })().finally(() => stream.end())
  result.catch(() => undefined)
  return Object.assign(result, {
    cancel: () => cancel(new CancelledError('the training run was cancelled')),
    [Symbol.asyncIterator]: () => stream.read(result),
  })
}
