/**
 * Trainables the tuning tests and the bench share. Each ships to the peers as its source, so each
 * stands alone: what it needs comes through its config, `session.with` and the `colony` global.
 */
import type { TrialConfig, TrialSession } from '@colony-grid/client'
import { HELD_OUT_FROM, loadDigits } from '@colony-grid/demo'

declare const colony: { ml: { tf(): Promise<typeof import('@tensorflow/tfjs')> } }

/** The demo's digits, as `with` values: `rows` to train on, `heldOut` to measure accuracy on. */
export function digitsWith(rows: number, heldOut: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const d = loadDigits()
  return {
    x: d.pixels.slice(0, rows * 784), y: d.labels.slice(0, rows),
    vx: d.pixels.slice(HELD_OUT_FROM * 784, (HELD_OUT_FROM + heldOut) * 784), vy: d.labels.slice(HELD_OUT_FROM, HELD_OUT_FROM + heldOut),
    ...extra,
  }
}

/**
 * The MNIST trainer: a 784-hidden-10 perceptron in tfjs on the peer, Adam at the config's
 * learning rate and batch size, one epoch a report; held-out accuracy in percent. Seeded initializers
 * and no shuffling: a config gives the same curve on every run, so ASHA's trials can be compared with
 * the same configs run to the end. With `with.checkpoint`, each report carries the weights.
 */
export async function mnistTrainable(config: TrialConfig, session: TrialSession): Promise<void> {
  const tf = await colony.ml.tf()
  const w = session.with as { x: Uint8Array; y: Uint8Array; vx: Uint8Array; vy: Uint8Array; checkpoint?: boolean }
  const hidden = (config.hidden as number | undefined) ?? 32
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [784], units: hidden, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
    ],
  })
  model.compile({ optimizer: tf.train.adam(config.lr as number), loss: 'sparseCategoricalCrossentropy' })
  const start = session.checkpoint as { shape: number[]; data: Float32Array }[] | undefined
  if (start) model.setWeights(start.map((t) => tf.tensor(t.data, t.shape)))
  const scaled = (b: Uint8Array) => Float32Array.from(b, (v) => v / 255)
  const xs = tf.tensor2d(scaled(w.x), [w.y.length, 784]), ys = tf.tensor1d(Float32Array.from(w.y))
  const vx = tf.tensor2d(scaled(w.vx), [w.vy.length, 784])
  try {
    for (let epoch = session.epoch + 1; ; epoch++) {
      await model.fit(xs, ys, { batchSize: config.batchSize as number, epochs: 1, shuffle: false, verbose: 0 })
      const predicted = (model.predict(vx) as import('@tensorflow/tfjs').Tensor).argMax(-1).dataSync()
      let right = 0
      for (let i = 0; i < w.vy.length; i++) if (predicted[i] === w.vy[i]) right++
      const checkpoint = w.checkpoint ? model.getWeights().map((t) => ({ shape: t.shape, data: t.dataSync() as Float32Array })) : undefined
      if (await session.report({ epoch, accuracy: (100 * right) / w.vy.length }, { checkpoint }) === 'stop') return
    }
  } finally {
    tf.dispose([xs, ys, vx])
    model.dispose()
  }
}

/** Sleeps `with.ms` and reports once: the bench's trial of fixed length. */
export async function sleepTrainable(config: TrialConfig, session: TrialSession): Promise<void> {
  await new Promise((r) => setTimeout(r, (session.with as { ms: number }).ms))
  await session.report({ epoch: 1, score: config.x as number })
}
