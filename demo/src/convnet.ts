/**
 * The demo's convnet, as the training library takes it: a tfjs topology and its starting
 * weights, built from a seed without tfjs (so a page and a Node driver build the same one).
 *
 * A 5×5 stride-2 convolution (32 filters), a 128-unit dense layer and a softmax. The tfjs wasm
 * backend has no convolution gradients (no Conv2DBackpropFilter kernel), so the convolution is
 * trained as a frozen one-hot patch extractor followed by a dense layer applied at each of the
 * 12×12 positions: the same function, whose gradients are a dense layer's and exist on every
 * backend (wasm, webgpu, cpu). The trained model scores as it is; `train-mnist.ts` also folds
 * it into a plain Conv2D for the ONNX file.
 */
import type { TrainableModel } from '@colony-grid/client'
import { DIGIT_PIXELS, HELD_OUT_FROM, type Digits } from './digits-file.js'
import { seededRandom, shuffle } from './seeded.js'

export const CONVNET = { kernel: 5, stride: 2, filters: 32, hidden: 128, classes: 10 } as const
/** Positions of the convolution per axis: 12. */
export const CONVNET_GRID = Math.floor((28 - CONVNET.kernel) / CONVNET.stride) + 1

/**
 * The demo's training run, which the /demo page, the headless demo and the tests share. Batches of
 * 64 and a learning rate halved each epoch: on 3 Node workers (SSP, staleness 2, each push applied
 * as it comes) it reached 97.4% held out in 117 s on 2 cores, where batches of 128 at a constant rate
 * reached 97.0-97.3% (97.5-97.9% on 2 workers, whose pushes are less stale). Weights and gradients
 * travel as bfloat16: a tab's step is mostly its data channel's time, and half the bytes took it from
 * 1,000 to 720 ms (held out: 97.05-97.3% in our runs, 97.25-97.5% in float32).
 */
export const DEMO_TRAINING = { batchSize: 64, epochs: 3, optimizer: { name: 'adam', lr: 0.0015, decay: 0.5 }, staleness: 2, shards: 2, seed: 7, wire: 'bfloat16' } as const

const dense = (name: string, units: number, activation: string) => ({
  class_name: 'Dense',
  config: { name, units, activation, use_bias: true, trainable: true, kernel_initializer: { class_name: 'Zeros', config: {} }, bias_initializer: { class_name: 'Zeros', config: {} } },
})

/** The Keras topology tfjs builds: reshape, frozen patches, dense per position, flatten, dropout, dense, softmax. */
function topology(): unknown {
  const { kernel, stride, filters, hidden, classes } = CONVNET
  return {
    class_name: 'Sequential',
    config: {
      name: 'colony_convnet',
      layers: [
        { class_name: 'Reshape', config: { name: 'image', target_shape: [28, 28, 1], batch_input_shape: [null, DIGIT_PIXELS], dtype: 'float32' } },
        {
          class_name: 'Conv2D',
          config: { name: 'patches', filters: kernel * kernel, kernel_size: [kernel, kernel], strides: [stride, stride], padding: 'valid', use_bias: false, activation: 'linear', trainable: false, kernel_initializer: { class_name: 'Zeros', config: {} } },
        },
        dense('conv', filters, 'relu'),
        { class_name: 'Flatten', config: { name: 'flatten' } },
        { class_name: 'Dropout', config: { name: 'dropout', rate: 0.3 } },
        dense('hidden', hidden, 'relu'),
        dense('output', classes, 'softmax'),
      ],
    },
  }
}

/** Glorot-uniform values for a [fanIn, fanOut] kernel. */
function glorot(fanIn: number, fanOut: number, rand: () => number): Float32Array {
  const limit = Math.sqrt(6 / (fanIn + fanOut))
  return Float32Array.from({ length: fanIn * fanOut }, () => (rand() * 2 - 1) * limit)
}

/** The convnet with every weight set from `seed`: the patch kernel (one-hot), Glorot kernels, zero biases. */
export function convnetForTraining(seed: number): TrainableModel {
  const { kernel, filters, hidden, classes } = CONVNET
  const k2 = kernel * kernel
  const rand = seededRandom(seed)
  // Patch channel c is pixel (c / 5, c % 5) of the window, in HWIO order.
  const patches = new Float32Array(k2 * k2)
  for (let c = 0; c < k2; c++) patches[c * k2 + c] = 1
  const flat = CONVNET_GRID * CONVNET_GRID * filters
  const weights: [string, number[], Float32Array][] = [
    ['patches/kernel', [kernel, kernel, 1, k2], patches],
    ['conv/kernel', [k2, filters], glorot(k2, filters, rand)],
    ['conv/bias', [filters], new Float32Array(filters)],
    ['hidden/kernel', [flat, hidden], glorot(flat, hidden, rand)],
    ['hidden/bias', [hidden], new Float32Array(hidden)],
    ['output/kernel', [hidden, classes], glorot(hidden, classes, rand)],
    ['output/bias', [classes], new Float32Array(classes)],
  ]
  const data = new Uint8Array(weights.reduce((n, [, , v]) => n + v.byteLength, 0))
  let o = 0
  for (const [, , v] of weights) { data.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), o); o += v.byteLength }
  return { topology: topology(), weights: { specs: weights.map(([name, shape]) => ({ name, shape, dtype: 'float32' })), data } }
}

/** One digit moved by (dx, dy) pixels. */
function shifted(pixels: Uint8Array, dx: number, dy: number): Uint8Array {
  const out = new Uint8Array(DIGIT_PIXELS)
  for (let r = 0; r < 28; r++) for (let c = 0; c < 28; c++) {
    const rr = r - dy, cc = c - dx
    if (rr >= 0 && rr < 28 && cc >= 0 && cc < 28) out[r * 28 + c] = pixels[rr * 28 + cc]
  }
  return out
}

/** The training digits (those before HELD_OUT_FROM) and one copy of each shifted by up to 2 pixels, in a seeded order. */
export function trainingDigits(d: Digits, seed: number): Digits {
  const rand = seededRandom(seed + 7)
  const rows: { p: Uint8Array; y: number }[] = []
  for (let i = 0; i < HELD_OUT_FROM; i++) rows.push({ p: d.pixels.subarray(i * DIGIT_PIXELS, (i + 1) * DIGIT_PIXELS), y: d.labels[i] })
  for (let i = 0; i < HELD_OUT_FROM; i++) {
    const dx = Math.floor(rand() * 5) - 2, dy = Math.floor(rand() * 5) - 2
    rows.push({ p: shifted(rows[i].p, dx, dy), y: rows[i].y })
  }
  shuffle(rows, rand)
  const pixels = new Uint8Array(rows.length * DIGIT_PIXELS)
  rows.forEach((r, i) => pixels.set(r.p, i * DIGIT_PIXELS))
  return { count: rows.length, pixels, labels: Uint8Array.from(rows, (r) => r.y) }
}

/** The digits after HELD_OUT_FROM, which training never sees. */
export function heldOutDigits(d: Digits): Digits {
  return { count: d.count - HELD_OUT_FROM, pixels: d.pixels.subarray(HELD_OUT_FROM * DIGIT_PIXELS), labels: d.labels.subarray(HELD_OUT_FROM) }
}
