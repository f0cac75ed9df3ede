/** The serving library's shapes: what a deployment serves and how, and what it answers. */
import type { ModelSource } from '../scoring/types.js'
import type { SelectionName } from './selection.js'

/** One model behind a deployment's name: an ONNX or tfjs model (as scoring takes it) and its version. */
export type ServedModel = ModelSource & { version: string }

export interface ServeOptions {
  /** One model or more; `selection` chooses between them. A version names each, and keys the cache. */
  models?: ServedModel[]
  /**
   * Or a pipeline: the names of deployments (one model version each) that a request goes through in
   * order, each stage's output the next one's input. Between stages the values pass as refs, from the
   * peer of one stage's replica to the next one's, never through the coordinator.
   */
  pipeline?: string[]
  /** One input row's shape, e.g. [784]. A tfjs model gives its own; an ONNX model needs it. */
  inputShape?: number[]
  /** Inputs are multiplied by this on the replica (e.g. 1 / 255 for grey levels). */
  inputScale?: number
  /** Replicas per model version: `min` stay loaded; up to `max` while the queue grows. Default 1 and 4. */
  replicas?: { min?: number; max?: number }
  /** The latency objective of one batch on a replica (ms), which AIMD keeps to. Default 50. */
  sloMs?: number
  /** 'aimd' (default), batches of at most `maxBatch`, or 'off' (one query at a time). */
  batching?: 'aimd' | 'off' | { maxBatch: number }
  /** Outputs kept by version and input; a hit never reaches a replica. Default 10,000 entries; false for none. */
  cache?: { entries: number } | false
  /** 'fixed' (the first model; the default with one), 'exp3' (one model a query, learnt from feedback; the default with more) or 'exp4' (an ensemble). */
  selection?: SelectionName
  /** Queries waiting at most; past it the endpoint answers 429 with Retry-After. Default 2,000. */
  queueCap?: number
  /** A query not answered in this long fails (504). Default 30,000 ms. */
  timeoutMs?: number
  /** A query still unanswered after this long on a busy replica is sent to a free one too. Default 4 × sloMs. */
  hedgeMs?: number
  /** Who may call POST /serve/<name>: holders of a submit token (default), or anyone. */
  access?: 'token' | 'public'
  /** The replicas' ML backend ('auto', or a named onnxruntime or tfjs one) and the capabilities their peers need. */
  backend?: string
  capabilities?: string[]
}

export interface Prediction {
  /** One output row for each input row. */
  outputs: number[][]
  /** The version that answered (Exp3, fixed), or 'ensemble' (Exp4). */
  version: string
  /** One id per row, for POST /serve/<name>/feedback. */
  ids: string[]
  /** Exp4: the weight of the versions that agree with each row's answer. */
  confidence?: number[]
  /** How many rows came from the cache. */
  cached: number
}

export interface DeploymentStats {
  name: string
  selection: SelectionName
  access: 'token' | 'public'
  sloMs: number
  /** A pipeline's stages, in order. */
  pipeline?: string[]
  versions: {
    version: string
    replicas: { peer: string; backend: string; served: number; batches: number; batchSize: number; busy: boolean }[]
    queued: number
    /** The sizes of the last 1,000 batches sent to its replicas, oldest first. */
    recentBatches: number[]
  }[]
  /** The share of queries (Exp3) or the weight in the answer (Exp4) of each version. */
  shares: Record<string, number>
  requests: number
  rows: number
  /** Rows waiting or being answered now. */
  pending: number
  rejected: { full: number; badInput: number; timedOut: number }
  cache: { entries: number; hits: number; misses: number; hitRatio: number }
  /** Over the last 4,096 requests, ms. */
  latency: { p50: number; p99: number; count: number }
  feedbacks: number
}
