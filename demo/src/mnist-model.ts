/** The demo model's files, and evaluating them in this process (tfjs wasm, onnxruntime-web wasm). */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as tf from '@tensorflow/tfjs'
import { toModelInput } from './digits-file.js'
import { argmaxRows } from './report.js'
import { onnxInProcess } from './inproc.js'

export const MODEL_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'models', 'mnist')
const require = createRequire(import.meta.url)

export async function startTfjsWasm(): Promise<void> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm')
  wasm.setWasmPaths(join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), '/'))
  if (!(await tf.setBackend('wasm'))) throw new Error('the tfjs wasm backend did not start')
}

export interface Evaluation { probs: Float32Array; predicted: Uint8Array; accuracy: number }

function evaluation(probs: Float32Array, labels: Uint8Array): Evaluation {
  const predicted = argmaxRows(probs, 10)
  let right = 0
  for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) right++
  return { probs, predicted, accuracy: right / labels.length }
}

/** The tfjs files as tfjs loads them from memory. */
export function tfjsArtifacts(dir = MODEL_DIR): tf.io.ModelArtifacts {
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as { modelTopology: object; weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[] }
  const weights = readFileSync(join(dir, 'weights.bin'))
  return {
    modelTopology: json.modelTopology, weightSpecs: json.weightsManifest[0].weights,
    weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
  }
}

export async function evaluateTfjs(d: { pixels: Uint8Array; labels: Uint8Array }): Promise<Evaluation> {
  const model = await tf.loadLayersModel(tf.io.fromMemory(tfjsArtifacts()))
  const x = tf.tensor2d(toModelInput(d.pixels), [d.labels.length, 784])
  const y = model.predict(x) as tf.Tensor
  const probs = await y.data() as Float32Array
  tf.dispose([x, y])
  return evaluation(probs, d.labels)
}

export async function evaluateOnnx(modelBytes: Uint8Array, d: { pixels: Uint8Array; labels: Uint8Array }): Promise<Evaluation> {
  const scorer = await onnxInProcess(modelBytes, 'wasm')
  try { return evaluation(await scorer.score(d.pixels, d.labels.length), d.labels) } finally { await scorer.release() }
}
