/**
 * What a trial runner actor does on its peer (runner-class.ts wraps it into the actor; it ships inside
 * the peer library, so it runs with the training library at hand). A runner runs its trials one after
 * another, each a call of `run`; the driver keeps the next trial queued behind the current, so the
 * runner never waits on a round trip between trials. Reports queue for `poll`; a report at an epoch
 * the scheduler decides on waits for `decide`. The actor is created with maxConcurrency, so `poll`
 * and `decide` get through while `run` is busy.
 */
import type { Grid } from '@colony-grid/worker-web'
import { train } from '../training/train.js'
import type { TrainingRun } from '../training/train.js'
import type { Report, TrialConfig, TrialSession } from './types.js'

export interface TrialSpec {
  id: string
  /** Which start of the trial this is (1, 2, ...): a restart after its peer went, or after an exploit, is another. */
  run: number
  config: TrialConfig
  checkpoint?: unknown
  /** The epoch `checkpoint` was reported at (0: none). */
  epoch: number
  /** Epochs whose reports wait for the scheduler's decision. */
  decideAt: number[]
  maxEpochs: number
}

export interface ReportEvent { trial: string; run: number; seq: number; report: Report; checkpoint?: unknown; hasCheckpoint: boolean; waits: boolean }

/** What `decide` sends: go on, stop, or (PBT) start again from another trial's checkpoint with a new config. */
export type RunnerDecision = 'continue' | 'stop' | { exploit: { config: TrialConfig; checkpoint: unknown; epoch: number; from: string } }

export interface RunOutcome {
  trial: string
  run: number
  /** Every report of this call, in order (the driver skips those a poll brought already). */
  reports: ReportEvent[]
  /** The config it ended with (PBT changes it). */
  config: TrialConfig
  stopped: boolean
  error?: { name: string; message: string; stack?: string }
  /** From the stop reaching the runner to the trainable having returned and its nested runs ended. */
  releaseMs?: number
  peer?: string
}

interface Active {
  spec: TrialSpec
  stopped: boolean
  stoppedAt?: number
  waiting?: (d: RunnerDecision) => void
  exploit?: Extract<RunnerDecision, object>['exploit']
  nested: Set<TrainingRun>
  reports: ReportEvent[]
}

const REPORT_KEYS_MAX = 64

function errorOf(e: unknown): { name: string; message: string; stack?: string } {
  const err = e as Error
  return { name: err?.name ?? 'Error', message: err?.message ?? String(e), stack: err?.stack }
}

function checkReport(r: Report, maxEpochs: number): void {
  if (typeof r !== 'object' || r === null) throw new TypeError('report() takes an object: { epoch, ...metrics }')
  if (!Number.isInteger(r.epoch) || r.epoch < 1) throw new RangeError(`report(): epoch must be a whole number from 1 (got ${String(r.epoch)})`)
  if (r.epoch > maxEpochs) throw new RangeError(`report(): epoch ${r.epoch} is past the search's maxEpochs (${maxEpochs}); stop when report() answers 'stop'`)
  const keys = Object.keys(r)
  if (keys.length > REPORT_KEYS_MAX) throw new RangeError(`report(): at most ${REPORT_KEYS_MAX} metrics`)
  for (const k of keys) if (typeof r[k] !== 'number') throw new TypeError(`report(): metric '${k}' must be a number (got ${typeof r[k]})`)
}

export class TrialRunnerCore {
  private trainable?: (config: TrialConfig, session: TrialSession) => unknown
  private compileError?: Error
  private readonly queued: ReportEvent[] = []
  private pollWaiter?: () => void
  private turn: Promise<void> = Promise.resolve()
  private readonly active = new Map<string, Active>()
  /** Stops for trials queued here that have not started: they end at once when their turn comes. */
  private readonly stopBeforeStart = new Set<string>()

  constructor(trainableSource: string, private readonly values: Record<string, unknown>) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-implied-eval
      this.trainable = new Function(`return (${trainableSource}\n)`)() as typeof this.trainable
      if (typeof this.trainable !== 'function') throw new TypeError('it is not a function')
    } catch (e) {
      this.compileError = new SyntaxError(`the trainable could not be compiled on this peer: ${(e as Error).message}. It ships as source: it must stand alone (no imports, no variables from around it; use session.with and session.train).`)
    }
  }

  async run(spec: TrialSpec, grid: Grid, peer?: string): Promise<RunOutcome> {
    const prev = this.turn
    let release!: () => void
    this.turn = new Promise((r) => { release = r })
    await prev
    // A turn of the event loop first: the previous trial's outcome leaves before this one's first
    // synchronous stretch (building a model, say) holds the thread.
    await new Promise<void>((r) => { if (typeof setImmediate === 'function') setImmediate(r); else setTimeout(r, 0) })
    const t: Active = { spec, stopped: false, nested: new Set(), reports: [] }
    try {
      if (this.stopBeforeStart.delete(spec.id)) return { trial: spec.id, run: spec.run, reports: [], config: spec.config, stopped: true, peer }
      this.active.set(spec.id, t)
      return await this.runTrial(t, grid, peer)
    } finally {
      this.active.delete(spec.id)
      release()
    }
  }

  private async runTrial(t: Active, grid: Grid, peer?: string): Promise<RunOutcome> {
    let { config, checkpoint, epoch } = t.spec
    const outcome = (o: Partial<RunOutcome>): RunOutcome => ({
      trial: t.spec.id, run: t.spec.run, reports: t.reports, config, stopped: t.stopped, peer,
      releaseMs: t.stoppedAt !== undefined ? performance.now() - t.stoppedAt : undefined, ...o,
    })
    if (this.compileError) return outcome({ error: errorOf(this.compileError) })
    for (;;) {
      try {
        await this.trainable!(config, this.session(t, grid, config, checkpoint, epoch))
      } catch (e) {
        await this.endNested(t)
        // Stopped, its nested runs were cancelled under it: what they threw is the stop, not a failure.
        if (!t.exploit && !t.stopped) return outcome({ error: errorOf(e) })
      }
      await this.endNested(t)
      if (!t.exploit) return outcome({})
      // PBT: the same trial goes on from the stronger one's checkpoint, with its perturbed config.
      ;({ config, checkpoint, epoch } = t.exploit)
      t.exploit = undefined
      t.stopped = false
      t.stoppedAt = undefined
    }
  }

  private session(t: Active, grid: Grid, config: TrialConfig, checkpoint: unknown, epoch: number): TrialSession {
    const decideAt = new Set(t.spec.decideAt)
    return {
      trialId: t.spec.id, grid, checkpoint, epoch, with: this.values,
      get stopped() { return t.stopped },
      report: async (report, opts) => {
        checkReport(report, t.spec.maxEpochs)
        if (t.stopped) return 'stop'
        const waits = decideAt.has(report.epoch) && report.epoch < t.spec.maxEpochs
        const hasCheckpoint = opts?.checkpoint !== undefined
        const ev: ReportEvent = { trial: t.spec.id, run: t.spec.run, seq: t.reports.length, report: { ...report }, hasCheckpoint, waits }
        // The run's outcome lists every report; only the poll carries the checkpoint itself.
        t.reports.push(ev)
        this.push({ ...ev, checkpoint: opts?.checkpoint })
        if (report.epoch >= t.spec.maxEpochs) return 'stop'
        if (!waits) return 'continue'
        const d = await new Promise<RunnerDecision>((resolve) => { t.waiting = resolve })
        t.waiting = undefined
        if (d === 'continue') return 'continue'
        if (d !== 'stop') t.exploit = d.exploit
        this.stop(t)
        return 'stop'
      },
      train: (opts) => {
        const run = train(grid, opts)
        t.nested.add(run)
        if (t.stopped) run.cancel()
        void run.then(() => t.nested.delete(run), () => t.nested.delete(run))
        return run
      },
    } satisfies TrialSession
  }

  private stop(t: Active): void {
    if (t.stopped) return
    t.stopped = true
    t.stoppedAt = performance.now()
    for (const r of t.nested) r.cancel()
  }

  /** The nested runs end (their pools closed, their actors killed) before the trial's slot counts as free. */
  private async endNested(t: Active): Promise<void> {
    for (const r of t.nested) r.cancel()
    await Promise.allSettled([...t.nested])
  }

  decide(trial: string, d: RunnerDecision): boolean {
    const t = this.active.get(trial)
    if (!t) {
      if (d === 'stop') this.stopBeforeStart.add(trial)
      return false
    }
    if (t.waiting) { t.waiting(d); return true }
    if (d === 'stop') this.stop(t)
    return true
  }

  private push(ev: ReportEvent): void {
    this.queued.push(ev)
    this.pollWaiter?.()
  }

  /** The reports since the last poll; waits up to `waitMs` for one. */
  async poll(waitMs: number): Promise<ReportEvent[]> {
    if (this.queued.length === 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.max(0, Math.min(waitMs, 30_000)))
        const self = this
        function done() { clearTimeout(timer); if (self.pollWaiter === done) self.pollWaiter = undefined; resolve() }
        this.pollWaiter = done
      })
    }
    return this.queued.splice(0)
  }
}
