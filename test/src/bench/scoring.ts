/**
 * Scoring figures: the demo's ONNX model over its 10,000 digits (x3), in one process with
 * no Colony (onnxruntime-web wasm, and onnxruntime-node where installed; one thread, as
 * in an executor), then through Colony on 1 and on 2 Node peers (1 executor each,
 * separate processes, wasm). Best of 3 runs each.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect, createScoringPool, type Grid } from '@colony-grid/client'
import { MODEL_DIR, hasOrtNode, loadDigits, onnxInProcess } from '@colony-grid/demo'
import { startGrid } from '../harness.js'

const BATCH = 1000
const REPEAT = 3
/** Each figure is the best of this many timed runs, baseline and Colony alike. */
const RUNS = 3

export interface ScoringFigures { inproc: number; native?: number; onePeer: number; twoPeers: number }

function dataset(): Uint8Array {
  const d = loadDigits()
  const out = new Uint8Array(d.pixels.length * REPEAT)
  for (let i = 0; i < REPEAT; i++) out.set(d.pixels, i * d.pixels.length)
  return out
}

async function inProcess(model: Uint8Array, pixels: Uint8Array, backend: 'wasm' | 'native'): Promise<number> {
  const s = await onnxInProcess(model, backend)
  await s.score(pixels.subarray(0, BATCH * 784 * 4), BATCH) // warm
  let best = 0
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now()
    await s.score(pixels, BATCH)
    best = Math.max(best, (pixels.length / 784) / ((performance.now() - t0) / 1000))
  }
  await s.release()
  return best
}

/** Through Colony: a warm pool (each actor has loaded the model, as the in-process session has), then a timed run. */
async function throughGrid(peers: number, model: Uint8Array, pixels: Uint8Array): Promise<number> {
  const g = await startGrid({ workers: peers, executors: 1, memory: true })
  let grid: Grid | undefined
  try {
    grid = await connect(g.url, { token: g.submitToken, onLog: false })
    const pool = await createScoringPool(grid, { onnx: model }, { batchSize: BATCH, backend: 'wasm', inputScale: 1 / 255 })
    const rows = pixels.length / 784
    await pool.ready(peers)
    await pool.score({ data: pixels.subarray(0, BATCH * 784 * 4 * peers), shape: [BATCH * 4 * peers, 784] })
    let best = 0
    for (let i = 0; i < RUNS; i++) best = Math.max(best, (await pool.score({ data: pixels, shape: [rows, 784] })).rowsPerSecond)
    pool.close()
    return best
  } finally {
    await grid?.close()
    await g.stop()
  }
}

export async function scoringFigures(): Promise<ScoringFigures> {
  const model = new Uint8Array(readFileSync(join(MODEL_DIR, 'mnist.onnx')))
  const pixels = dataset()
  const inproc = await inProcess(model, pixels, 'wasm')
  const native = hasOrtNode() ? await inProcess(model, pixels, 'native') : undefined
  const onePeer = await throughGrid(1, model, pixels)
  const twoPeers = await throughGrid(2, model, pixels)
  return { inproc, native, onePeer, twoPeers }
}
