/** The scoring library's shapes: datasets, models, options, events and results. */
import type { ObjectRef } from '@colony-grid/shared'

export type NumericArray = Float32Array | Float64Array | Uint8Array | Uint8ClampedArray | Int8Array | Uint16Array | Int16Array | Int32Array | Uint32Array

/** A block of rows: `shape[0]` rows of `shape[1..]` values each, row-major. */
export interface Shard { data: NumericArray; shape: number[] }

/**
 * What to score: refs to shards already in the grid, shards, one big tensor (split into
 * shards of `batchSize` rows), or plain rows.
 */
export type Dataset = readonly ObjectRef<Shard>[] | readonly Shard[] | Shard | readonly (readonly number[])[]

/** A tfjs LayersModel as files: model.json's content and the weights' bytes (concatenated in manifest order). */
export interface TfjsModelFiles {
  modelJson: { modelTopology: unknown; weightsManifest: { paths: string[]; weights: unknown[] }[] }
  weights: Uint8Array
}

/** An ONNX model or a tfjs LayersModel, by URL (of the .onnx, or of model.json) or by bytes. */
export type ModelSource = { onnx: string | Uint8Array } | { tfjs: string | TfjsModelFiles }

/** What scoring actors receive (put once; each peer fetches it once). */
export type ModelPayload =
  | { format: 'onnx'; bytes: Uint8Array }
  | { format: 'tfjs'; topology: unknown; weightSpecs: unknown[]; weights: Uint8Array }

export interface ScoringActorOptions {
  /** 'auto' (the peer's best), or an onnxruntime backend ('wasm', 'webgpu', 'native') or a tfjs one ('wasm', 'webgpu', 'webgl', 'cpu'). */
  backend?: string
  batchSize?: number
  /** Integer inputs are multiplied by this on the way in (e.g. 1/255 for grey levels). */
  inputScale?: number
  /** ONNX only: which input and output (the model's first by default). */
  inputName?: string
  outputName?: string
}

/** How a pool's actors are made. */
export interface PoolOptions extends ScoringActorOptions {
  /** Rows per shard made from values, and per model call. Default 256. */
  batchSize?: number
  /** At most this many scoring actors (each holds one CPU slot of its peer). Default 32. */
  concurrency?: number
  /** Peers must have these, e.g. ['webgpu']. */
  capabilities?: string[]
  /** Defaults for runs (see RunOptions). */
  prefetch?: number
  maxAttempts?: number
}

/** One run over a dataset. */
export interface RunOptions {
  /** Rows per shard made from values. Default: the pool's. */
  batchSize?: number
  /** Shards in flight per actor: the next is fetched while the current one scores. Default 2. */
  prefetch?: number
  /** Tries per shard when scoring it throws (peers that vanish do not count). Default 2. */
  maxAttempts?: number
  onProgress?: (p: ScoringProgress) => void
}

export type ScoreOptions = PoolOptions & RunOptions

/** One shard's outputs, from the actor that scored it. */
export interface ShardScore { index: number; rows: number; width: number; data: Float32Array; ms: number; peer: string }

export interface PeerContribution {
  peer: string
  backend: string
  rows: number
  shards: number
  /** Time its actors spent scoring (ms). */
  busyMs: number
  /** From its first shard sent to its last result back (ms). */
  activeMs: number
}

export interface ScoringProgress {
  rowsDone: number
  rows: number
  shardsDone: number
  shards: number
  elapsedMs: number
  actors: number
  peers: PeerContribution[]
  /** The shard that just finished. */
  last: { index: number; rows: number; peer: string }
}

export interface ScoringResult {
  /** All outputs, row by row in dataset order: rows × width. */
  data: Float32Array
  shape: [number, number]
  elapsedMs: number
  rowsPerSecond: number
  peers: PeerContribution[]
  /** Shards scored again because their peer vanished or their call threw. */
  retries: number
  /** Results that arrived for a shard already scored, and were dropped. */
  duplicates: number
}
