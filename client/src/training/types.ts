/** The training library's shapes: the model, the data, the options, each step's record and the result. */
import type { ObjectRef } from '@colony-grid/shared'
import type { Shard } from '../scoring/types.js'

/**
 * A tfjs LayersModel to train: its topology (model.json's `modelTopology`, or `model.toJSON()`),
 * and, optionally, its starting weights (every weight, trainable or not, in the topology's
 * order, as model.json's manifest lists them). Without weights it starts from its
 * initializers (give them seeds for a run that can be repeated).
 */
export interface TrainableModel {
  topology: unknown
  weights?: { specs: { name: string; shape: number[]; dtype?: string }[]; data: Uint8Array }
}

/** Examples and their targets, row for row: `y` as class indices (sparse) or as rows of targets. */
export interface TrainingData { x: Shard; y: Shard | Uint8Array | Int32Array | readonly number[] }

export type Consistency =
  /** Every worker waits for the slowest at each step: Bulk Synchronous Parallel (staleness 0). */
  | { mode: 'bsp' }
  /** Stale Synchronous Parallel (Petuum): the fastest worker runs at most `staleness` steps ahead of the slowest. */
  | { mode: 'ssp'; staleness: number }
  /** No bound: each worker runs as fast as it can. */
  | { mode: 'async' }

/** How the gradients of one window are combined: the mean, or robustly against poisoned ones. */
export type Aggregation = 'mean' | 'trimmed-mean' | 'median'

export interface OptimizerSpec {
  name: 'sgd' | 'momentum' | 'adam'; lr: number; momentum?: number; beta1?: number; beta2?: number; epsilon?: number
  /** The learning rate is multiplied by this at the start of each epoch after the first (e.g. 0.5). */
  decay?: number
}

export interface TrainOptions {
  model: TrainableModel
  data: TrainingData
  /** Examples held out: accuracy on them is measured after each epoch (and at the end). */
  validation?: TrainingData
  loss?: 'sparseCategoricalCrossentropy' | 'categoricalCrossentropy' | 'meanSquaredError'
  /** Each input value is multiplied by this on the worker (e.g. 1 / 255 for grey levels sent as bytes). */
  inputScale?: number
  optimizer?: OptimizerSpec
  batchSize?: number
  epochs?: number
  /** At least `min` workers before the first step; at most `max` (each holds one CPU slot of its peer). */
  workers?: { min?: number; max?: number }
  consistency?: Consistency
  /**
   * The parameter server's shards: actors, each holding a slice of the weights and of the optimizer's
   * state; on peers with `capabilities` (by default the workers'), say those an operator trusts to stay.
   */
  ps?: { shards?: number; capabilities?: string[] }
  aggregate?: Aggregation
  /** Each gradient is scaled down to at most this L2 norm before it is combined. */
  clipNorm?: number
  /**
   * How weights and gradients travel between the workers and the parameter server: 'float32' (the
   * default), or 'bfloat16', which halves the bytes of every step (each value keeps float32's range and
   * 8 bits of its precision, about 0.4%; the server keeps its weights and the optimizer's state in float32).
   */
  wire?: Wire
  /** Every this many updates, each shard puts its state in the grid (two copies), from which it restarts if its peer dies. */
  checkpointEvery?: number
  /** Peers must have these, e.g. ['webgpu']. */
  capabilities?: string[]
  /**
   * The tfjs backend the workers use: 'auto' (each peer's best, or 'cpu' where the best lacks a
   * gradient the model needs, as wasm lacks the convolutions') or a named one.
   */
  backend?: string
  /** Order of the batches in each epoch. */
  seed?: number
  onProgress?: (step: TrainingStep) => void
  /**
   * Every `every` steps, the weights as the parameter server holds them then (all trainable weights, flat,
   * in `layout` order), e.g. to chart held-out accuracy over time without stopping the workers.
   */
  snapshots?: { every: number; on: (s: WeightsSnapshot) => void }
}

export interface WeightsSnapshot { step: number; epoch: number; ms: number; weights: Float32Array }

/** One worker's step: a batch's gradient computed and pushed. */
export interface TrainingStep {
  step: number
  epoch: number
  worker: string
  peer: string
  backend: string
  /** The worker's clock: the steps it has done, this one included. */
  clock: number
  /** The slowest live worker's clock when this step was started. */
  minClock: number
  /** Updates the parameter server applied between this step's pull and its push. */
  staleness: number
  loss: number
  samples: number
  ms: number
  /** Where `ms` went: pulling the weights, computing the gradient, pushing it. */
  phases: StepPhases
  /** Bytes of weights pulled and gradients pushed for this step. */
  bytes: number
}

export interface StepPhases { pullMs: number; computeMs: number; pushMs: number }

export interface EpochRecord { epoch: number; loss: number; accuracy?: number; ms: number }

export interface WorkerRecord { worker: string; peer: string; backend: string; steps: number; samples: number; busyMs: number; samplesPerSecond: number; gone: boolean }

export interface TrainingResult {
  /** The trainable weights, flat, in the model's order (`layout` says where each is). */
  weights: Float32Array
  layout: { name: string; shape: number[] }[]
  /** The whole model as files tfjs loads (and `scoreDataset` takes as `{ tfjs }`). */
  modelFiles: { modelJson: { modelTopology: unknown; weightsManifest: { paths: string[]; weights: unknown[] }[] }; weights: Uint8Array }
  history: EpochRecord[]
  steps: number
  samples: number
  elapsedMs: number
  samplesPerSecond: number
  /** Held-out accuracy at the end, where `validation` was given. */
  accuracy?: number
  workers: WorkerRecord[]
  /** The most steps any step started ahead of the slowest live worker (its worker's clock less the slowest's): at most the staleness. */
  maxClockSpread: number
  /** Steps run again because their worker vanished. */
  retries: number
  /** Gradients the trimmed mean dropped whole as outliers (the most any parameter-server shard dropped). */
  droppedGradients: number
  bytes: number
}

/** What the parameter server's shards and the workers are given (put once; each peer fetches it once). */
export interface ModelPlan {
  topology: unknown
  weights?: TrainableModel['weights']
  loss: NonNullable<TrainOptions['loss']>
  inputScale: number
  wire: Wire
}

export type Wire = 'float32' | 'bfloat16'

export type BatchRef = ObjectRef<{ x: Shard; y: Shard }>
