/**
 * Training figures, on the demo's convnet with batches of 128 and Adam at 0.002 (the demo trains with
 * batches of 64, which double the bytes a sample; see DEMO_TRAINING):
 * - in one process with no Colony: tfjs on the wasm backend (the Node peers' backend), trainOnBatch;
 * - through Colony on 2 Node peers (a worker and a parameter-server shard on each), steady state;
 * - time to 95% held-out accuracy on 4 workers, one of them slowed 4x (fault slow-worker), SSP
 *   (s = 3) against BSP. The parameter server sits on a fifth peer, so the slow one only computes.
 *   Held-out accuracy over time comes from weight snapshots the driver takes every 8 steps while
 *   training, evaluated here as they come; a run stops at the first that reaches 95%.
 */
import * as tf from '@tensorflow/tfjs'
import { CancelledError, connect, train, type Grid, type WeightsSnapshot } from '@colony-grid/client'
import { DEMO_TRAINING, DIGITS_SEED, convnetForTraining, heldOutDigits, loadDigits, startTfjsWasm, trainingDigits, type Digits } from '@colony-grid/demo'
import { startGrid, type GridProcs } from '../harness.js'

export interface TrainingFigures {
  inproc: number
  twoWorkers: number
  bytesPerSample: number
  /** Seconds to 95% held out; Infinity where a run never got there. */
  sspSeconds: number
  bspSeconds: number
}

/** The batch and learning rate of every run here. */
const RUN = { batchSize: 128, lr: 0.002 }

const rows = (d: Digits) => ({ x: { data: d.pixels, shape: [d.count, 784] }, y: d.labels })
const scaled = (pixels: Uint8Array) => Float32Array.from(pixels, (v) => v / 255)

async function inProcessModel(): Promise<tf.LayersModel> {
  const m = convnetForTraining(DIGITS_SEED)
  const w = m.weights!
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: m.topology as never, weightSpecs: w.specs as never, weightData: w.data.slice().buffer }))
}

/** tfjs alone: the convnet, trainOnBatch on batches of the demo's size, after a few warm-up batches. */
async function inProcess(data: Digits): Promise<number> {
  const model = await inProcessModel()
  model.compile({ optimizer: tf.train.adam(RUN.lr), loss: 'categoricalCrossentropy' })
  const b = RUN.batchSize, steps = 40, warm = 5
  const batch = (i: number) => {
    const from = (i * b) % (data.count - b)
    return { x: tf.tensor2d(scaled(data.pixels.subarray(from * 784, (from + b) * 784)), [b, 784]), y: tf.oneHot(tf.tensor1d(data.labels.subarray(from, from + b), 'int32'), 10) }
  }
  let t0 = 0
  for (let i = 0; i < warm + steps; i++) {
    if (i === warm) t0 = performance.now()
    const { x, y } = batch(i)
    await model.trainOnBatch(x, y)
    tf.dispose([x, y])
  }
  const rate = (steps * b) / ((performance.now() - t0) / 1000)
  model.dispose()
  return rate
}

/** Samples per second between the 10th step and the last (the model built and the weights pulled once). */
function steadyRate(times: { at: number; samples: number }[]): number {
  const from = Math.min(10, times.length - 2)
  const samples = times.slice(from + 1).reduce((n, t) => n + t.samples, 0)
  return samples / ((times[times.length - 1].at - times[from].at) / 1000)
}

async function twoWorkers(data: Digits): Promise<{ rate: number; bytesPerSample: number }> {
  const g = await startGrid({ workers: 2, executors: 2, memory: true })
  let grid: Grid | undefined
  try {
    grid = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
    const t = { ...DEMO_TRAINING, ...RUN }
    const times: { at: number; samples: number }[] = []
    const r = await train(grid, {
      model: convnetForTraining(DIGITS_SEED), data: rows(data), inputScale: 1 / 255, optimizer: { name: 'adam', lr: t.lr }, batchSize: t.batchSize, epochs: 1,
      workers: { min: 2, max: 2 }, consistency: { mode: 'ssp', staleness: t.staleness }, ps: { shards: t.shards }, seed: t.seed,
      onProgress: (s) => times.push({ at: performance.now(), samples: s.samples }),
    })
    return { rate: steadyRate(times), bytesPerSample: r.bytes / r.samples }
  } finally {
    await grid?.close()
    await g.stop()
  }
}

/** Held-out accuracy of flat trainable weights, here (tfjs wasm), on a model built once. */
async function heldOutAccuracy(heldOut: Digits): Promise<{ of(weights: Float32Array): Promise<number>; dispose(): void }> {
  const model = await inProcessModel()
  const x = tf.tensor2d(scaled(heldOut.pixels), [heldOut.count, 784])
  return {
    async of(weights) {
      let o = 0
      for (const v of model.trainableWeights) {
        const shape = v.read().shape, size = shape.reduce((a, b) => a * b, 1)
        v.write(tf.tensor(weights.subarray(o, o + size), shape))
        o += size
      }
      const predicted = tf.tidy(() => (model.predict(x) as tf.Tensor).argMax(-1).dataSync())
      let right = 0
      for (let i = 0; i < heldOut.count; i++) if (predicted[i] === heldOut.labels[i]) right++
      return right / heldOut.count
    },
    dispose() { x.dispose(); model.dispose() },
  }
}

/** 4 workers, one slowed 4x, the parameter server on a fifth peer: seconds to 95% held out under SSP (s = 3) and BSP. */
async function straggler(data: Digits, heldOut: Digits): Promise<{ ssp: number; bsp: number }> {
  const g: GridProcs = await startGrid({ workers: 0, memory: true })
  let grid: Grid | undefined
  try {
    for (let i = 0; i < 3; i++) await g.addWorker(1, ['--capabilities', 'trainer'])
    await g.addWorker(1, ['--capabilities', 'trainer'], { env: { COLONY_INJECT_FAULTS: 'slow-worker' } })
    await g.addWorker(1, ['--capabilities', 'ps-host'])
    grid = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
    const accuracy = await heldOutAccuracy(heldOut)
    // Snapshots are evaluated here as they come, one at a time; the run stops once one reaches 95%.
    const run = async (consistency: { mode: 'ssp'; staleness: number } | { mode: 'bsp' }, epochs: number): Promise<number> => {
      const t = { ...DEMO_TRAINING, ...RUN }
      let reached = Infinity, chain = Promise.resolve()
      const training = train(grid!, {
        model: convnetForTraining(DIGITS_SEED), data: rows(data), inputScale: 1 / 255, optimizer: { name: 'adam', lr: t.lr }, batchSize: t.batchSize, epochs,
        workers: { min: 4, max: 4 }, consistency, capabilities: ['trainer'], ps: { shards: 1, capabilities: ['ps-host'] }, seed: t.seed,
        snapshots: {
          every: 8,
          on: (s: WeightsSnapshot) => {
            chain = chain.then(async () => {
              if (reached < Infinity || (await accuracy.of(s.weights)) < 0.95) return
              reached = s.ms / 1000
              training.cancel()
            })
          },
        },
      })
      await training.catch((e: Error) => { if (!(e instanceof CancelledError)) throw e })
      await chain
      return reached
    }
    const ssp = await run({ mode: 'ssp', staleness: 3 }, 2)
    const bsp = await run({ mode: 'bsp' }, 4)
    accuracy.dispose()
    return { ssp, bsp }
  } finally {
    await grid?.close()
    await g.stop()
  }
}

export async function trainingFigures(): Promise<TrainingFigures> {
  await startTfjsWasm()
  const digits = loadDigits()
  const data = trainingDigits(digits, DIGITS_SEED), heldOut = heldOutDigits(digits)
  const inproc = await inProcess(data)
  const two = await twoWorkers(data)
  const { ssp, bsp } = await straggler(data, heldOut)
  return { inproc, twoWorkers: two.rate, bytesPerSample: two.bytesPerSample, sspSeconds: ssp, bspSeconds: bsp }
}
