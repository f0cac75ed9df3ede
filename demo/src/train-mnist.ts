/**
 * Trains the demo's MNIST classifier with no model hub, from a fixed seed, on the digits
 * of the `mnist` package (the first 8,000 of `loadDigits()`, plus one shifted copy of each).
 *
 * The network is a small convnet: a 5×5 stride-2 convolution (32 filters), a 128-unit
 * dense layer and a softmax. The tfjs wasm backend has no convolution gradients, so
 * training feeds the convolution as a frozen patch extractor followed by a dense layer
 * (the same function); the exported models are plain Conv layers built from those weights.
 *
 * Writes demo/models/mnist/: model.json + weights.bin (tfjs LayersModel), mnist.onnx
 * (built with onnx-proto), meta.json. Then checks both formats agree and that held-out
 * accuracy is >= 97% (`--check` does only that, on the committed files).
 *
 *   node demo/dist/train-mnist.js [--epochs 8] [--check]
 */
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import * as tf from '@tensorflow/tfjs'
import { CONVNET, trainingDigits } from './convnet.js'
import { DIGITS_SEED, HELD_OUT_FROM, loadDigits } from './digits.js'
import { toModelInput } from './digits-file.js'
import { MODEL_DIR, evaluateOnnx, evaluateTfjs, startTfjsWasm, type Evaluation } from './mnist-model.js'
import { mnistOnnx } from './mnist-onnx.js'

const { kernel: KERNEL, stride: STRIDE, filters: FILTERS, hidden: HIDDEN } = CONVNET

/** The network as trained: the convolution is a frozen one-hot patch extractor, then a dense layer per position. */
function trainingModel(): tf.Sequential {
  const init = (k: number) => tf.initializers.glorotUniform({ seed: DIGITS_SEED + k })
  const patchKernel = tf.tensor4d(Array.from({ length: KERNEL * KERNEL * KERNEL * KERNEL }, (_, i) => (Math.floor(i / 25) === i % 25 ? 1 : 0)), [KERNEL, KERNEL, 1, KERNEL * KERNEL])
  const m = tf.sequential()
  m.add(tf.layers.reshape({ inputShape: [784], targetShape: [28, 28, 1] }))
  m.add(tf.layers.conv2d({ filters: KERNEL * KERNEL, kernelSize: KERNEL, strides: STRIDE, useBias: false, trainable: false, weights: [patchKernel] }))
  m.add(tf.layers.dense({ units: FILTERS, activation: 'relu', kernelInitializer: init(1) }))
  m.add(tf.layers.flatten())
  m.add(tf.layers.dropout({ rate: 0.3, seed: DIGITS_SEED + 4 }))
  m.add(tf.layers.dense({ units: HIDDEN, activation: 'relu', kernelInitializer: init(2) }))
  m.add(tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init(3) }))
  m.compile({ optimizer: tf.train.adam(0.001), loss: 'categoricalCrossentropy', metrics: ['accuracy'] })
  return m
}

/** The same function as an ordinary convnet: what is exported. */
function inferenceModel(trained: tf.Sequential): tf.Sequential {
  // Layers: reshape, patches (frozen), dense per position, flatten, dropout, dense, softmax.
  const [w1, b1] = trained.layers[2].getWeights()
  const [w2, b2] = trained.layers[5].getWeights()
  const [w3, b3] = trained.layers[6].getWeights()
  const m = tf.sequential()
  m.add(tf.layers.reshape({ inputShape: [784], targetShape: [28, 28, 1] }))
  m.add(tf.layers.conv2d({ filters: FILTERS, kernelSize: KERNEL, strides: STRIDE, activation: 'relu' }))
  m.add(tf.layers.flatten())
  m.add(tf.layers.dense({ units: HIDDEN, activation: 'relu' }))
  m.add(tf.layers.dense({ units: 10, activation: 'softmax' }))
  // Patch channel k is pixel (k / 5, k % 5) of the window, so the dense weights are the conv kernel in HWIO order.
  m.setWeights([w1.reshape([KERNEL, KERNEL, 1, FILTERS]), b1, w2, b2, w3, b3])
  return m
}

async function saveTfjs(model: tf.Sequential): Promise<void> {
  await model.save(tf.io.withSaveHandler(async (a) => {
    writeFileSync(join(MODEL_DIR, 'weights.bin'), new Uint8Array(a.weightData as ArrayBuffer))
    writeFileSync(join(MODEL_DIR, 'model.json'), JSON.stringify({
      modelTopology: a.modelTopology, format: a.format, generatedBy: a.generatedBy, convertedBy: a.convertedBy,
      weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
    }))
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }
  }))
}

/** Both formats give the same class for every held-out digit, probabilities within 1e-4, and >= 97% accuracy. */
function verdict(tfjs: Evaluation, onnx: Evaluation): string[] {
  const problems: string[] = []
  let maxDiff = 0, agree = 0
  for (let i = 0; i < tfjs.probs.length; i++) maxDiff = Math.max(maxDiff, Math.abs(tfjs.probs[i] - onnx.probs[i]))
  for (let i = 0; i < tfjs.predicted.length; i++) if (tfjs.predicted[i] === onnx.predicted[i]) agree++
  console.log(`held-out accuracy: tfjs ${tfjs.accuracy.toFixed(4)}, onnx ${onnx.accuracy.toFixed(4)}; classes agree on ${agree}/${tfjs.predicted.length}; max probability difference ${maxDiff.toExponential(2)}`)
  if (onnx.accuracy < 0.97 || tfjs.accuracy < 0.97) problems.push(`held-out accuracy is under 0.97`)
  if (agree !== tfjs.predicted.length || maxDiff > 1e-4) problems.push('the tfjs and ONNX models disagree')
  return problems
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { epochs: { type: 'string' }, check: { type: 'boolean' } } })
  await startTfjsWasm()
  const digits = loadDigits()
  if (!values.check) {
    const epochs = Number(values.epochs ?? 8)
    const digitsForTraining = trainingDigits(digits, DIGITS_SEED)
    const train = { x: toModelInput(digitsForTraining.pixels), y: digitsForTraining.labels, count: digitsForTraining.count }
    console.log(`training on ${train.count} digits (${HELD_OUT_FROM} and a shifted copy of each), ${digits.count - HELD_OUT_FROM} held out; seed ${DIGITS_SEED}`)
    const model = trainingModel()
    const xs = tf.tensor2d(train.x, [train.count, 784]), ys = tf.oneHot(tf.tensor1d(train.y, 'int32'), 10)
    const started = Date.now()
    await model.fit(xs, ys, {
      epochs, batchSize: 64, shuffle: false, verbose: 0,
      callbacks: { onEpochEnd: (e, l) => console.log(`epoch ${e + 1}/${epochs}: loss ${l!.loss.toFixed(4)}, accuracy ${(l!.acc as number).toFixed(4)} (${((Date.now() - started) / 1000).toFixed(0)} s)`) },
    })
    mkdirSync(MODEL_DIR, { recursive: true })
    const exported = inferenceModel(model)
    await saveTfjs(exported)
    const w = exported.getWeights()
    writeFileSync(join(MODEL_DIR, 'mnist.onnx'), mnistOnnx({
      conv: { kernel: await w[0].array() as number[][][][], bias: w[1].dataSync() as Float32Array },
      dense: [{ w: w[2].dataSync() as Float32Array, b: w[3].dataSync() as Float32Array, shape: w[2].shape as [number, number] },
        { w: w[4].dataSync() as Float32Array, b: w[5].dataSync() as Float32Array, shape: w[4].shape as [number, number] }],
    }))
    writeFileSync(join(MODEL_DIR, 'meta.json'), JSON.stringify({ seed: DIGITS_SEED, epochs, trainedOn: train.count, heldOutFrom: HELD_OUT_FROM, digits: digits.count }, null, 2) + '\n')
  }
  const heldOut = { pixels: digits.pixels.subarray(HELD_OUT_FROM * 784), labels: digits.labels.subarray(HELD_OUT_FROM) }
  const problems = verdict(await evaluateTfjs(heldOut), await evaluateOnnx(readFileSync(join(MODEL_DIR, 'mnist.onnx')), heldOut))
  if (problems.length) { console.error(`FAILED: ${problems.join('; ')}`); process.exit(1) }
  console.log(`ok: ${MODEL_DIR}`)
}

await main()
