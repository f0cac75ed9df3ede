/**
 * Tuning figures, on a coordinator and two Node peers (two executors each):
 * - overhead: 2,000 trials of a trainable that sleeps 20 ms, 2 at a time, FIFO, the search's state kept
 *   in the coordinator as usual; ideal = 2,000 × 20 ms / 2. Timed from `tune()` to its result (the
 *   runners' start included), and from the first trial's start;
 * - ASHA against the full search on the MNIST trainer (tuning-trainables.ts: 32 configs of learning rate
 *   and width, 16 epochs at most, the same seed): the trial-epochs ASHA spent until a trial it ran to the
 *   end came within 0.5 points of the full search's best, over the full search's trial-epochs;
 * - the same ASHA run's stops: from each decision to the trial's runner being free again.
 */
import { choice, connect, loguniform, tune, uniform, type TuneEvent, type TuneOptions } from '@colony-grid/client'
import { startGrid } from '../harness.js'
import { digitsWith, mnistTrainable, sleepTrainable } from '../tuning-trainables.js'

export interface TuningFigures {
  overhead: number
  /** The same against the trainable's own time, measured in one process (its timer fires late). */
  overheadVsMeasured: number
  overheadSteady: number
  trialsPerSecond: number
  ashaEpochFraction: number
  ashaTotalFraction: number
  ashaBestGap: number
  stopReleaseP50: number
  stopReleaseMax: number
}

const TRIALS = 2_000, TRIAL_MS = 20, CONCURRENT = 2

export async function tuningFigures(): Promise<TuningFigures> {
  const g = await startGrid({ workers: 2, executors: 2 })
  try {
    const grid = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
    try {
      const t0 = performance.now()
      let firstStart = 0
      const overheadRun = tune(grid, sleepTrainable, {
        space: { x: uniform(0, 1) }, numSamples: TRIALS, metric: 'score', mode: 'max', maxEpochs: 1, maxConcurrent: CONCURRENT, with: { ms: TRIAL_MS },
      })
      for await (const e of overheadRun) if (e.type === 'started' && !firstStart) firstStart = performance.now()
      const r = await overheadRun
      const wall = performance.now() - t0, steady = performance.now() - firstStart
      const ideal = (TRIALS * TRIAL_MS) / CONCURRENT
      // What the trainable itself takes here, in one process: a timer of 20 ms fires a little later.
      const session = { with: { ms: TRIAL_MS }, report: async () => 'continue' as const } as unknown as Parameters<typeof sleepTrainable>[1]
      const s0 = performance.now()
      for (let i = 0; i < 200; i++) await sleepTrainable({ x: 0 }, session)
      const measuredIdeal = (TRIALS * ((performance.now() - s0) / 200)) / CONCURRENT
      if (r.trials.filter((t) => t.state === 'finished').length !== TRIALS) throw new Error('not every overhead trial finished')

      const opts: TuneOptions = {
        space: { lr: loguniform(1e-4, 3e-2), hidden: choice([16, 32, 64]), batchSize: 32 },
        numSamples: 32, metric: 'accuracy', mode: 'max', maxEpochs: 16, maxConcurrent: 2, seed: 3, with: digitsWith(600, 1000),
      }
      const full = await tune(grid, mnistTrainable, { ...opts, scheduler: 'fifo' })
      const ashaRun = tune(grid, mnistTrainable, { ...opts, scheduler: { name: 'asha', reductionFactor: 4 } })
      const events: TuneEvent[] = []
      for await (const e of ashaRun) events.push(e)
      const asha = await ashaRun
      const goal = full.best.last! - 0.5
      let epochs = 0, found = Infinity
      for (const e of events) {
        if (e.type !== 'reported') continue
        epochs++
        if (e.report.epoch === opts.maxEpochs && e.report.accuracy >= goal) { found = epochs; break }
      }
      const release = [...asha.releaseMs].sort((a, b) => a - b)
      return {
        overhead: (wall - ideal) / ideal, overheadVsMeasured: (wall - measuredIdeal) / measuredIdeal, overheadSteady: (steady - ideal) / ideal, trialsPerSecond: TRIALS / (wall / 1000),
        ashaEpochFraction: found / full.trialEpochs, ashaTotalFraction: asha.trialEpochs / full.trialEpochs, ashaBestGap: full.best.last! - asha.best.last!,
        stopReleaseP50: release[Math.floor(release.length / 2)] ?? NaN, stopReleaseMax: release[release.length - 1] ?? NaN,
      }
    } finally { await grid.close() }
  } finally { await g.stop() }
}
