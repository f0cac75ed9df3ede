/** The tuning library's shapes: the search space, the options, trials, their reports and events. */
import type { Grid } from '@colony-grid/worker-web'
import type { TrainOptions, TrainingRun } from '../training/index.js'

/** One hyperparameter's distribution (space.ts makes them: `uniform`, `loguniform`, `choice`, ...). */
export type Domain =
  | { kind: 'uniform'; low: number; high: number; q?: number }
  | { kind: 'loguniform'; low: number; high: number }
  | { kind: 'randint'; low: number; high: number }
  | { kind: 'choice'; values: readonly unknown[] }
  | { kind: 'grid'; values: readonly unknown[] }

/** Names to domains; a plain value is a constant every trial gets. */
export type SearchSpace = Record<string, Domain | unknown>
export type TrialConfig = Record<string, unknown>

/** What a trainable reports: its epoch (1, 2, ...) and its metrics. */
export interface Report { epoch: number; [metric: string]: number }

/** What the scheduler answers a report with. */
export type Decision = 'continue' | 'stop'

/** What a trainable is given, besides its config. */
export interface TrialSession {
  readonly trialId: string
  /** The grid of the call the trial runs in: submit nested work with it. */
  readonly grid: Grid
  /** The checkpoint this run starts from (its own, after a restart, or a stronger trial's, after PBT exploited it), else undefined. */
  readonly checkpoint: unknown
  /** The epoch of the report that carried `checkpoint` (0 without one): go on from the epoch after it. */
  readonly epoch: number
  /** Values the search passed to every trial (`with`), fetched once per runner. */
  readonly with: Record<string, unknown>
  /** Set once the scheduler stopped the trial; nested runs it started with `train` are cancelled then. */
  readonly stopped: boolean
  /**
   * Reports one epoch's metrics (and, optionally, a checkpoint to restart or exploit from). The scheduler
   * may answer 'stop': return then. Reports it has nothing to decide on answer at once.
   */
  report(report: Report, opts?: { checkpoint?: unknown }): Promise<Decision>
  /** `train()` of the training library, on this trial's grid: the nested case. Stopping the trial cancels it. */
  train(opts: TrainOptions): TrainingRun
}

/**
 * A trainable: a function of a config and a session. It ships to the peers as source, like an inline
 * remote function: it must stand alone (no imports, no variables from around it). What it needs
 * besides its config comes through `with` and the session (`session.train` for nested training).
 */
export type Trainable = (config: TrialConfig, session: TrialSession) => unknown

export type SchedulerName = 'fifo' | 'asha' | 'hyperband' | 'pbt'

export interface AshaOptions {
  name: 'asha' | 'hyperband'
  /** Epochs before the first rung (the least a trial runs): default 1. */
  gracePeriod?: number
  /** Each rung keeps the best 1/reductionFactor of the trials that reached it: default 4. */
  reductionFactor?: number
  /** Brackets of ASHA (Hyperband's early-stopping rates): default 1 for 'asha', every rate for 'hyperband'. */
  brackets?: number
}

export interface PbtOptions {
  name: 'pbt'
  /** Epochs between exploit/explore decisions: default 2. */
  perturbationInterval?: number
  /** The share of the population at the bottom that copies from the top: default 0.25. */
  quantile?: number
  /** Which parameters explore, and how: a domain to resample from, else those of `space` that are domains. */
  mutations?: Record<string, Domain>
  /** The chance a parameter is resampled rather than perturbed (×0.8 or ×1.2, or a neighbouring choice): default 0.25. */
  resampleProbability?: number
}

export type SchedulerOptions = SchedulerName | { name: 'fifo' } | AshaOptions | PbtOptions

export interface TuneOptions {
  space: SearchSpace
  /** Trials to sample (each grid point counts once per sample). */
  numSamples?: number
  /** The reported metric that ranks trials, and whether more ('max') or less ('min') is better. */
  metric: string
  mode: 'max' | 'min'
  /** Epochs a trial may run at most (the scheduler's budget R); a trial that reports it is done. */
  maxEpochs: number
  scheduler?: SchedulerOptions
  /** Trials that run at once (each holds `resourcesPerTrial` on a peer): default 4. */
  maxConcurrent?: number
  /** What one trial holds while it runs: default { cpu: 1 }. A trial that trains nested workers may ask for { cpu: 0 }. */
  resourcesPerTrial?: Record<string, number>
  /** Peers must have these, e.g. ['tfjs-wasm']. */
  capabilities?: string[]
  /** Values every trial gets as `session.with` (put in the grid once, e.g. the training data). */
  with?: Record<string, unknown>
  /** Makes the search repeatable: the configs sampled, and PBT's perturbations. Default 1. */
  seed?: number
  /** A name for the search (shown in the IDE). */
  name?: string
  /** How long a stopped trial may take to return before its runner is killed: default 1,000 ms. */
  stopGraceMs?: number
  /**
   * Keep the search's state in the coordinator (`/api/state/tune/<id>`), so `tune.resume` can go on
   * after the driver or the coordinator died. Default true.
   */
  persist?: boolean
}

export type TrialState = 'pending' | 'running' | 'stopped' | 'finished' | 'failed'

export interface TrialRecord {
  id: string
  /** Its place in the search's sampling order (configs are a function of the seed and this). */
  index: number
  config: TrialConfig
  state: TrialState
  reports: Report[]
  /** The metric's value in the last report that had it. */
  last?: number
  /** Epochs run, counting re-runs after a restart or an exploit. */
  epochsRun: number
  /** The epoch of its latest checkpoint (0: none). */
  checkpointEpoch: number
  /** Why it stopped or failed. */
  reason?: string
  /** The scheduler (or the driver) stopped it, and it has not returned yet: a resumed search does not run it again. */
  stopping?: boolean
  error?: { name: string; message: string; stack?: string }
  /** Times it was started (a restart after its peer went, or PBT's exploit, starts it again). */
  runs: number
  /** PBT: the trials it copied checkpoints from, in order. */
  exploited: { from: string; epoch: number }[]
  /** The peer it last ran on. */
  peer?: string
}

/** `started`: handed to a runner (it may wait there behind the runner's current trial). */
export type TuneEvent =
  | { type: 'started'; trial: string; config: TrialConfig; peer?: string; run: number }
  | { type: 'reported'; trial: string; report: Report }
  | { type: 'stopped'; trial: string; reason: string; decidedAt: number }
  | { type: 'exploited'; trial: string; from: string; epoch: number; config: TrialConfig }
  | { type: 'finished'; trial: string; last?: number }
  | { type: 'failed'; trial: string; error: string }
  | { type: 'released'; trial: string; ms: number }

export interface TuneResult {
  searchId: string
  metric: string
  mode: 'max' | 'min'
  /** The trial with the best last value of the metric. */
  best: TrialRecord
  trials: TrialRecord[]
  /** Epochs run over all trials (the search's cost). */
  trialEpochs: number
  elapsedMs: number
  /** For each trial stopped while it ran: ms from the stop decision to its runner being free (its trainable returned, its nested runs ended). */
  releaseMs: number[]
}

/** A running search: `await` it for the result, `for await` its events. */
export type Search = Promise<TuneResult> & AsyncIterable<TuneEvent> & {
  readonly id: string
  /** The search's metric, mode, budget and name (a resumed search knows them once it has read its state). */
  readonly metric?: string
  readonly mode?: 'max' | 'min'
  readonly maxEpochs?: number
  readonly name?: string
  /** The scheduler's name ('fifo', 'asha', 'hyperband', 'pbt'). */
  readonly scheduler?: string
  /** The trials as they are now. */
  trials(): TrialRecord[]
  /** Stops one trial (or, without an id, the whole search: the promise then resolves with what finished). */
  stop(trialId?: string): void
}
