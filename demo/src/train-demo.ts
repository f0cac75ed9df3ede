/**
 * `npm run demo -- --train --headless`: the training demo in a terminal. The demo's convnet is
 * trained across the local Node peers from a fixed seed (a progress bar per step), then the
 * held-out digits are scored with the model it just trained, through the scoring path.
 */
import cliProgress from 'cli-progress'
import { scoreDataset, train, type Grid, type TrainingStep } from '@colony-grid/client'
import { DEMO_TRAINING, convnetForTraining, heldOutDigits, trainingDigits } from './convnet.js'
import { DIGITS_SEED, type Digits } from './digits.js'
import { argmaxRows } from './report.js'

const rows = (d: Digits) => ({ x: { data: d.pixels, shape: [d.count, 784] }, y: d.labels })
const fmt = (n: number) => Math.round(n).toLocaleString('en-US')

/** Counts of steps by their staleness (updates applied between a step's pull and its push), as text bars. */
function stalenessHistogram(steps: TrainingStep[]): string {
  const counts = new Map<number, number>()
  for (const s of steps) counts.set(s.staleness, (counts.get(s.staleness) ?? 0) + 1)
  const most = Math.max(...counts.values())
  return [...counts.entries()].sort(([a], [b]) => a - b)
    .map(([k, n]) => `  ${String(k).padStart(3)}  ${'█'.repeat(Math.max(1, Math.round((40 * n) / most)))} ${n}`).join('\n')
}

export async function trainHeadless(grid: Grid, digits: Digits, workers: number): Promise<void> {
  const t = DEMO_TRAINING
  const data = trainingDigits(digits, DIGITS_SEED), heldOut = heldOutDigits(digits)
  const total = t.epochs * Math.ceil(data.count / t.batchSize)
  console.log(`Training the demo's convnet on ${fmt(data.count)} digits, ${t.epochs} epochs of batches of ${t.batchSize}, on ${workers} workers (SSP, staleness ${t.staleness}; ${t.wire} on the wire; seed ${t.seed})…`)
  const bar = new cliProgress.SingleBar({
    format: '  {bar} {percentage}% | step {value}/{total} | epoch {epoch} | loss {loss} | {rate} samples/s',
    hideCursor: true, noTTYOutput: true, notTTYSchedule: 5000,
  }, cliProgress.Presets.shades_classic)
  bar.start(total, 0, { epoch: 1, loss: '—', rate: '—' })
  const steps: TrainingStep[] = []
  const started = performance.now()
  let samples = 0, smoothLoss = NaN
  const run = train(grid, {
    model: convnetForTraining(DIGITS_SEED), data: rows(data), validation: rows(heldOut), inputScale: 1 / 255,
    optimizer: t.optimizer, batchSize: t.batchSize, epochs: t.epochs,
    workers: { min: workers, max: workers }, consistency: { mode: 'ssp', staleness: t.staleness }, ps: { shards: t.shards }, seed: t.seed, wire: t.wire,
    onProgress: (s) => {
      steps.push(s)
      samples += s.samples
      smoothLoss = Number.isNaN(smoothLoss) ? s.loss : 0.95 * smoothLoss + 0.05 * s.loss
      bar.update(s.step, { epoch: s.epoch, loss: smoothLoss.toFixed(3), rate: fmt(samples / ((performance.now() - started) / 1000)) })
    },
  })
  let result
  try { result = await run } finally { bar.stop() }
  console.log(`epochs:\n${result.history.map((h) => `  ${h.epoch}  loss ${h.loss.toFixed(4)}  at ${(h.ms / 1000).toFixed(1)} s${h.accuracy !== undefined ? `  held-out accuracy ${(h.accuracy * 100).toFixed(2)}%` : ''}`).join('\n')}`)
  console.log(`workers:\n${result.workers.map((w) => `  ${w.worker}  ${w.peer}  ${w.backend.padEnd(5)} ${String(w.steps).padStart(5)} steps  ${fmt(w.samplesPerSecond).padStart(6)} samples/s${w.gone ? '  (gone)' : ''}`).join('\n')}`)
  console.log(`staleness (updates between a step's pull and its push):\n${stalenessHistogram(steps)}`)
  console.log(`${fmt(result.samplesPerSecond)} samples/s over ${(result.elapsedMs / 1000).toFixed(1)} s; ${fmt(result.bytes / result.samples)} bytes of weights and gradients per sample; largest clock spread ${result.maxClockSpread}`)
  // The model it just trained, scored as any model is: through the scoring path, on the grid.
  const scored = await scoreDataset(grid, { data: heldOut.pixels, shape: [heldOut.count, 784] }, { tfjs: result.modelFiles }, { inputScale: 1 / 255, batchSize: 500 })
  const predicted = argmaxRows(scored.data, 10)
  let right = 0
  for (let i = 0; i < heldOut.count; i++) if (predicted[i] === heldOut.labels[i]) right++
  console.log(`trained model: held-out accuracy ${((100 * right) / heldOut.count).toFixed(2)}%`)
}
