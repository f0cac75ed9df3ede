/** The IDE's runnable examples. Each is a job module: exported functions run on the grid, `main(grid)` runs in the page. */
export interface Example { file: string; title: string; about: string; source: string }

// The MNIST examples' shared lines: each example stays one file a person reads whole.
const MLP = `const dense = (name: string, units: number, activation: string, seed: number, inputs?: number) => ({
  class_name: 'Dense',
  config: {
    name, units, activation, use_bias: true, trainable: true, ...(inputs ? { batch_input_shape: [null, inputs], dtype: 'float32' } : {}),
    kernel_initializer: { class_name: 'GlorotUniform', config: { seed } }, bias_initializer: { class_name: 'Zeros', config: {} },
  },
})
const topology = { class_name: 'Sequential', config: { name: 'mlp', layers: [dense('hidden', 64, 'relu', 11, 784), dense('out', 10, 'softmax', 12)] } }`
const DIGITS = `  // The digits the coordinator serves for the /demo page: a u32 count, the labels, then 784 grey levels a digit.
  const digits = new Uint8Array(await (await fetch('/demo-files/digits.bin')).arrayBuffer())
  const total = new DataView(digits.buffer).getUint32(0, true)
  const rows = (from: number, to: number) => ({
    x: { data: digits.subarray(4 + total + from * 784, 4 + total + to * 784), shape: [to - from, 784] },
    y: digits.subarray(4 + from, 4 + to),
  })`

export const EXAMPLES: Example[] = [
  {
    file: 'hello.ts',
    title: 'Hello tasks',
    about: 'Ten remote calls that return futures, gathered with get.',
    source: `import type { Grid } from '@colony-grid/client'

// An exported function runs on the grid's peers.
export function greet(i: number): string {
  console.log(\`hello from task \${i}\`)
  return \`task \${i} says hi\`
}

// main runs here, in the page: it is the driver.
export default async function main(grid: Grid) {
  const refs = Array.from({ length: 10 }, (_, i) => grid.remote(greet).remote(i))
  return grid.get(refs)
}
`,
  },
  {
    file: 'dag.ts',
    title: 'A DAG of refs',
    about: 'Refs passed as arguments chain tasks; nothing comes back to the page until the end.',
    source: `import type { Grid } from '@colony-grid/client'

export function square(x: number) { return x * x }
export function add(a: number, b: number) { return a + b }

export default async function main(grid: Grid) {
  const sq = grid.remote(square), plus = grid.remote(add)
  // Squares of 1..16, then summed pairwise in a tree: 15 adds that wait on refs.
  let level = Array.from({ length: 16 }, (_, i) => sq.remote(i + 1))
  while (level.length > 1) {
    const next = []
    for (let i = 0; i < level.length; i += 2) next.push(plus.remote(level[i], level[i + 1]))
    level = next
  }
  return grid.get(level[0]) // 1² + 2² + … + 16² = 1496
}
`,
  },
  {
    file: 'monte-carlo-pi.ts',
    title: 'Nested Monte Carlo π',
    about: 'A task that submits tasks of its own: 4 batches of 8 samplers each.',
    source: `import { current, type Grid } from '@colony-grid/client'

/** Throws darts at the unit square; returns how many land in the quarter circle. */
export function sample(n: number, seed: number) {
  let s = seed >>> 0, inside = 0
  const rand = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 4294967296 }
  for (let i = 0; i < n; i++) { const x = rand(), y = rand(); if (x * x + y * y <= 1) inside++ }
  return inside
}

/** Runs on a peer, and fans out again from there: nesting. */
export async function batch(samplers: number, n: number, seed: number) {
  const grid = current()
  const hits = await grid.get(Array.from({ length: samplers }, (_, i) => grid.remote(sample).remote(n, seed * 100 + i)))
  return hits.reduce((a, b) => a + b, 0)
}

export default async function main(grid: Grid) {
  const n = 200_000
  const batches = Array.from({ length: 4 }, (_, b) => grid.remote(batch).remote(8, n, b + 1))
  const inside = (await grid.get(batches)).reduce((a, b) => a + b, 0)
  const pi = (4 * inside) / (4 * 8 * n)
  console.log(\`π ≈ \${pi}\`)
  return { pi, samples: 4 * 8 * n }
}
`,
  },
  {
    file: 'counter.ts',
    title: 'An actor counter',
    about: 'A stateful actor: its calls run one at a time, in order.',
    source: `import type { Grid } from '@colony-grid/client'

export class Counter {
  count = 0
  add(n: number) { this.count += n; return this.count }
  value() { return this.count }
}

export default async function main(grid: Grid) {
  const counter = grid.remote(Counter).remote()
  const steps = await grid.get(Array.from({ length: 10 }, (_, i) => counter.add.remote(i + 1)))
  return { steps, final: await grid.get(counter.value.remote()) } // final: 55
}
`,
  },
  {
    file: 'mnist-scoring.ts',
    title: 'MNIST scoring',
    about: "The demo's convnet scores the 2,000 digits it was never trained on, across every peer, with scoreDataset.",
    source: `import { scoreDataset, type Grid } from '@colony-grid/client'

export default async function main(grid: Grid) {
  // The model and digits the coordinator serves for the /demo page: a u32 count, the labels, then 784 grey levels a digit.
  const digits = new Uint8Array(await (await fetch('/demo-files/digits.bin')).arrayBuffer())
  const total = new DataView(digits.buffer).getUint32(0, true)
  // The model was trained on digits 0-7999 only: score the held-out 8000-9999, which it never saw.
  const from = 8000, count = total - from
  const labels = digits.subarray(4 + from, 4 + total)
  const pixels = digits.subarray(4 + total + from * 784, 4 + total + total * 784)
  const result = await scoreDataset(grid, { data: pixels, shape: [count, 784] }, { onnx: '/demo-files/mnist.onnx' }, {
    batchSize: 250, inputScale: 1 / 255,
    onProgress: (p) => console.log(\`\${p.rowsDone} of \${p.rows} held-out digits scored\`),
  })
  let right = 0
  for (let i = 0; i < count; i++) {
    const row = result.data.subarray(i * 10, i * 10 + 10)
    if (row.indexOf(Math.max(...row)) === labels[i]) right++
  }
  return { heldOutAccuracy: right / count, digits: count, digitsPerSecond: Math.round(result.rowsPerSecond), peers: result.peers.map((p) => p.peer) }
}
`,
  },
  {
    file: 'mnist-training.ts',
    title: 'Train MNIST on the grid',
    about: 'A small perceptron trained from scratch with train: data-parallel workers, a parameter server, then its held-out accuracy.',
    source: `import { train, type Grid } from '@colony-grid/client'

// A 784-64-10 perceptron, as tfjs writes a Sequential model's topology. Seeded initializers: every run starts from the same weights.
${MLP}

export default async function main(grid: Grid) {
${DIGITS}
  const batchSize = 64, epochs = 2, stepsPerEpoch = Math.ceil(8000 / batchSize)
  const lossOf = new Array(epochs + 1).fill(0), stepsOf = new Array(epochs + 1).fill(0)
  // Train on digits 0-7999; 8000-9999 are held out, and scored after the last epoch.
  const result = await train(grid, {
    model: { topology }, data: rows(0, 8000), validation: rows(8000, total),
    inputScale: 1 / 255, // the grey levels travel as bytes and are scaled on the workers
    optimizer: { name: 'adam', lr: 0.003 }, batchSize, epochs, seed: 7,
    consistency: { mode: 'ssp', staleness: 2 }, ps: { shards: 1 },
    // The shard takes a CPU slot first; the workers then take every free slot left, up to max.
    workers: { min: 1, max: 16 },
    onProgress: (s) => {
      lossOf[s.epoch] += s.loss
      if (++stepsOf[s.epoch] === stepsPerEpoch) console.log(\`epoch \${s.epoch} of \${epochs}: mean loss \${(lossOf[s.epoch] / stepsPerEpoch).toFixed(3)}, step \${s.step} by \${s.worker} on \${s.peer} (\${s.backend})\`)
    },
  })
  return {
    heldOutAccuracy: result.accuracy,
    // Held-out accuracy is in the history where the run measured it.
    history: result.history.map((h) => ({ epoch: h.epoch, loss: Number(h.loss.toFixed(3)), ...(h.accuracy === undefined ? {} : { accuracy: h.accuracy }), seconds: Number((h.ms / 1000).toFixed(1)) })),
    samplesPerSecond: Math.round(result.samplesPerSecond),
    workers: result.workers.map((w) => \`\${w.worker} on \${w.peer} (\${w.backend}): \${w.steps} steps\`),
  }
}
`,
  },
  {
    file: 'mnist-tuning.ts',
    title: 'Tune the MNIST trainer with ASHA',
    about: 'A hyperparameter search (tune): 8 learning rates and batch sizes for the perceptron, ASHA stopping the weaker early. Watch the Trials panel.',
    source: `import { tune, loguniform, choice, type Grid, type Trainable, type TrainableModel, type TrainingData } from '@colony-grid/client'

// The 784-64-10 perceptron of 'Train MNIST on the grid'.
${MLP}
type Weights = NonNullable<TrainableModel['weights']>

export default async function main(grid: Grid) {
${DIGITS}

  // A trial: one epoch of nested data-parallel training at a time, reported to the scheduler.
  // It ships to the peers as source, so it uses only its arguments: no imports, nothing from this module.
  const trial: Trainable = async (config, session) => {
    const { lr, batchSize } = config as { lr: number; batchSize: number }
    const { topology, train, heldOut } = session.with as { topology: unknown; train: TrainingData; heldOut: TrainingData }
    // A trial started again (its peer went) goes on from its last checkpoint.
    let weights = session.checkpoint as Weights | undefined
    for (let epoch = session.epoch + 1; ; epoch++) {
      const r = await session.train({
        model: { topology, weights }, data: train, validation: heldOut, inputScale: 1 / 255,
        optimizer: { name: 'adam', lr }, batchSize, epochs: 1, workers: { min: 1, max: 2 }, seed: epoch,
      })
      weights = { specs: r.modelFiles.modelJson.weightsManifest[0].weights as Weights['specs'], data: r.modelFiles.weights }
      // At epochs 1 and 2 (ASHA's rungs) a trial outside the best half of those that got there is told 'stop'; at maxEpochs, every trial.
      if (await session.report({ epoch, accuracy: r.accuracy! }, { checkpoint: weights }) === 'stop') return
    }
  }

  const result = await tune(grid, trial, {
    name: 'mnist-asha',
    space: { lr: loguniform(1e-4, 1e-1), batchSize: choice([32, 64, 128]) },
    numSamples: 8, metric: 'accuracy', mode: 'max', maxEpochs: 4,
    scheduler: { name: 'asha', gracePeriod: 1, reductionFactor: 2 },
    // One trial at a time. A trial holds no CPU slot itself; its training takes one for its parameter
    // server, then one a worker (two with a third slot). With 3 free slots (the peers panel) for each
    // trial, raise maxConcurrent: trials that cannot all get theirs wait, then fail after 120 s.
    maxConcurrent: 1, resourcesPerTrial: { cpu: 0 },
    // Put in the grid once: 2,000 digits to train on, 1,000 held out to score each epoch.
    with: { topology, train: rows(0, 2000), heldOut: rows(8000, 9000) },
  })
  return {
    best: { ...result.best.config, accuracy: result.best.last },
    // A line a trial: its config, its last accuracy, and how far it got.
    trials: result.trials.map((t) => \`\${t.id}: lr \${Number(t.config.lr).toExponential(1)}, batch \${t.config.batchSize}: \${t.last?.toFixed(3) ?? '—'}, \${t.state} at epoch \${t.reports.length}\`),
  }
}
`,
  },
]
