/**
 * Trial schedulers: which trials go on. Each says at which epochs a trial must wait for its decision
 * (the other reports answer at once, on the trial's peer), decides on those reports, and rebuilds its
 * state from the reports a resumed search kept. FIFO runs every trial to the end; ASHA (Li et al.,
 * "A System for Massively Parallel Hyperparameter Tuning") stops the weaker at each rung, without
 * waiting for a rung to fill; Hyperband is ASHA over several brackets of early-stopping rates (the
 * paper's asynchronous Hyperband); PBT (Jaderberg et al.) copies a stronger trial's checkpoint into a
 * weaker one and perturbs its config.
 */
import { rng } from '../random.js'
import { isDomain, sampleDomain, seedOf } from './space.js'
import type { AshaOptions, Domain, PbtOptions, Report, SchedulerOptions, SearchSpace, TrialConfig, TrialRecord } from './types.js'

export type SchedulerDecision =
  | { action: 'continue' }
  | { action: 'stop'; reason: string }
  | { action: 'exploit'; from: TrialRecord; config: TrialConfig }

export interface TrialScheduler {
  readonly name: string
  /** Epochs at which this trial waits for a decision (before it goes on to the next). */
  decisionEpochs(trial: TrialRecord): number[]
  /** A report at one of those epochs. `value` is the metric, higher is better (the search negates 'min'). */
  decide(trial: TrialRecord, report: Report, value: number): SchedulerDecision
  /** A resumed search replays what its trials reported, so rungs and scores are as they were. */
  replay(trial: TrialRecord, report: Report, value: number): void
}

export interface SchedulerContext {
  space: SearchSpace
  seed: number
  maxEpochs: number
  /** The trials, by id, as the search keeps them. */
  trials: ReadonlyMap<string, TrialRecord>
  /** The metric of a trial's last report, higher is better (undefined if it reported none yet). */
  score(trial: TrialRecord): number | undefined
  /** Whether the search holds a checkpoint of the trial (only those can be copied). */
  hasCheckpoint(trial: TrialRecord): boolean
}

export const SCHEDULERS = ['fifo', 'asha', 'hyperband', 'pbt'] as const

export function makeScheduler(opts: SchedulerOptions | undefined, ctx: SchedulerContext): TrialScheduler {
  const o = typeof opts === 'string' ? { name: opts } : opts ?? { name: 'fifo' }
  switch (o.name) {
    case 'fifo': return { name: 'fifo', decisionEpochs: () => [], decide: () => ({ action: 'continue' }), replay: () => undefined }
    case 'asha': case 'hyperband': return new Asha(o as AshaOptions, ctx)
    case 'pbt': return new Pbt(o as PbtOptions, ctx)
    default: throw new RangeError(`unknown scheduler '${String((o as { name?: unknown }).name)}': use one of ${SCHEDULERS.map((s) => `'${s}'`).join(', ')}`)
  }
}

function whole(v: number | undefined, dflt: number, min: number, what: string): number {
  const x = v ?? dflt
  if (!Number.isInteger(x) || x < min) throw new RangeError(`${what} must be a whole number of at least ${min} (got ${v})`)
  return x
}

/** The value at percentile p of `values` (linear interpolation, as numpy's default). */
function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b)
  const at = (p / 100) * (s.length - 1)
  const lo = Math.floor(at), hi = Math.ceil(at)
  return s[lo] + (s[hi] - s[lo]) * (at - lo)
}

interface Rung { milestone: number; recorded: Map<string, number> }

class Asha implements TrialScheduler {
  readonly name: string
  private readonly rf: number
  private readonly brackets: Rung[][]
  private readonly weights: number[]

  constructor(o: AshaOptions, private readonly ctx: SchedulerContext) {
    this.name = o.name
    const grace = whole(o.gracePeriod, 1, 1, `${o.name}.gracePeriod`)
    this.rf = o.reductionFactor ?? 4
    if (!(this.rf >= 2)) throw new RangeError(`${o.name}.reductionFactor must be 2 or more (got ${o.reductionFactor})`)
    if (grace >= ctx.maxEpochs) throw new RangeError(`${o.name}.gracePeriod (${grace}) must be below maxEpochs (${ctx.maxEpochs}): no trial could be stopped early`)
    const rates = Math.floor(Math.log(ctx.maxEpochs / grace) / Math.log(this.rf) + 1e-9) + 1
    const count = whole(o.brackets, o.name === 'hyperband' ? rates : 1, 1, `${o.name}.brackets`)
    // Bracket s's rungs start at grace·rf^s: the higher s, the later a trial can first be stopped.
    this.brackets = Array.from({ length: Math.min(count, rates) }, (_, s) => {
      const rungs: Rung[] = []
      for (let m = grace * this.rf ** s; m < ctx.maxEpochs; m *= this.rf) rungs.push({ milestone: Math.round(m), recorded: new Map() })
      return rungs
    })
    // Hyperband gives its aggressive brackets more configs (n_s = ceil((S+1)/(s'+1))·rf^s', s' = S - s).
    const S = this.brackets.length - 1
    this.weights = this.brackets.map((_, s) => Math.ceil((S + 1) / (S - s + 1)) * this.rf ** (S - s))
  }

  private bracketOf(trial: TrialRecord): Rung[] {
    if (this.brackets.length === 1) return this.brackets[0]
    const total = this.weights.reduce((a, b) => a + b, 0)
    let r = rng(seedOf(this.ctx.seed, trial.index, 1))() * total
    for (let s = 0; s < this.brackets.length; s++) if ((r -= this.weights[s]) < 0) return this.brackets[s]
    return this.brackets[this.brackets.length - 1]
  }

  decisionEpochs(trial: TrialRecord): number[] { return this.bracketOf(trial).map((r) => r.milestone) }

  decide(trial: TrialRecord, report: Report, value: number): SchedulerDecision {
    const rung = this.bracketOf(trial).filter((r) => r.milestone <= report.epoch && !r.recorded.has(trial.id)).pop()
    if (!rung) return { action: 'continue' }
    const others = [...rung.recorded.values()]
    rung.recorded.set(trial.id, value)
    if (others.length === 0) return { action: 'continue' }
    // The best 1/rf of those that reached this rung so far go on: a trial below that cut stops here.
    const cutoff = percentile(others, (1 - 1 / this.rf) * 100)
    return value < cutoff ? { action: 'stop', reason: `below the top 1/${this.rf} at epoch ${rung.milestone}` } : { action: 'continue' }
  }

  replay(trial: TrialRecord, report: Report, value: number): void {
    for (const rung of this.bracketOf(trial)) if (rung.milestone === report.epoch) rung.recorded.set(trial.id, value)
  }
}

class Pbt implements TrialScheduler {
  readonly name = 'pbt'
  private readonly interval: number
  private readonly quantile: number
  private readonly resample: number
  private readonly mutations: Record<string, Domain>
  private exploits = 0

  constructor(o: PbtOptions, private readonly ctx: SchedulerContext) {
    this.interval = whole(o.perturbationInterval, 2, 1, 'pbt.perturbationInterval')
    this.quantile = o.quantile ?? 0.25
    if (!(this.quantile > 0 && this.quantile <= 0.5)) throw new RangeError(`pbt.quantile must be over 0 and at most 0.5 (got ${o.quantile})`)
    this.resample = o.resampleProbability ?? 0.25
    if (!(this.resample >= 0 && this.resample <= 1)) throw new RangeError(`pbt.resampleProbability must be between 0 and 1 (got ${o.resampleProbability})`)
    this.mutations = o.mutations ?? Object.fromEntries(Object.entries(ctx.space).filter(([, d]) => isDomain(d) && d.kind !== 'grid')) as Record<string, Domain>
    for (const [k, d] of Object.entries(this.mutations)) if (!isDomain(d)) throw new TypeError(`pbt.mutations.${k} must be a domain (uniform, loguniform, choice, ...)`)
    if (Object.keys(this.mutations).length === 0) throw new RangeError('pbt has nothing to explore: give pbt.mutations, or a space with domains')
  }

  decisionEpochs(): number[] {
    const out: number[] = []
    for (let e = this.interval; e < this.ctx.maxEpochs; e += this.interval) out.push(e)
    return out
  }

  decide(trial: TrialRecord, report: Report): SchedulerDecision {
    if (report.epoch % this.interval !== 0) return { action: 'continue' }
    const scored = [...this.ctx.trials.values()].map((t) => ({ t, v: this.ctx.score(t) })).filter((x): x is { t: TrialRecord; v: number } => x.v !== undefined)
    if (scored.length < 2) return { action: 'continue' }
    scored.sort((a, b) => a.v - b.v)
    const n = Math.min(Math.ceil(scored.length * this.quantile), Math.floor(scored.length / 2))
    if (n === 0 || !scored.slice(0, n).some((x) => x.t.id === trial.id)) return { action: 'continue' }
    // Only a trial with a checkpoint can be copied (without one there is nothing to exploit), and one
    // taken at the last epoch leaves nothing to run.
    const donors = scored.slice(-n).map((x) => x.t).filter((t) => t.id !== trial.id && this.ctx.hasCheckpoint(t) && t.checkpointEpoch < this.ctx.maxEpochs)
    if (donors.length === 0) return { action: 'continue' }
    const r = rng(seedOf(this.ctx.seed, trial.index, 100 + this.exploits++))
    const from = donors[Math.floor(r() * donors.length)]
    return { action: 'exploit', from, config: this.explore(from.config, r) }
  }

  private explore(config: TrialConfig, r: () => number): TrialConfig {
    const out = { ...config }
    for (const [k, d] of Object.entries(this.mutations)) {
      const v = config[k]
      if (r() < this.resample || v === undefined) { out[k] = sampleDomain(d, r); continue }
      if (d.kind === 'choice' || d.kind === 'grid') {
        const i = d.values.indexOf(v)
        const j = Math.max(0, Math.min(d.values.length - 1, (i < 0 ? 0 : i) + (r() < 0.5 ? -1 : 1)))
        out[k] = d.values[j]
      } else if (typeof v === 'number') {
        const x = Math.min(d.high, Math.max(d.low, v * (r() < 0.5 ? 0.8 : 1.2)))
        out[k] = d.kind === 'randint' ? Math.min(d.high - 1, Math.round(x)) : x
      }
    }
    return out
  }

  replay(): void { /* PBT decides from the trials' last scores, which the search keeps */ }
}
