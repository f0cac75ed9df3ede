/**
 * `npm run demo`: the scoring demo.
 *   npm run demo                 a grid with local Node peers; open the printed /demo link
 *   npm run demo -- --headless   the whole demo here: score the 10,000 digits on local Node
 *                                peers and print accuracy, throughput and the speed-up
 *   npm run demo -- --train --headless
 *                                train the convnet on local Node peers, then score the held-out
 *                                digits with it (train-demo.ts)
 * Options: --peers N (default 2), --format onnx|tfjs, --backend auto|wasm|native, --batch N
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { connect, createScoringPool, type ModelSource, type ScoringResult } from '@colony-grid/client'
import { startCoordinator } from '@colony-grid/coordinator'
import { startNodeWorker } from '@colony-grid/worker-web/node'
import { HELD_OUT_FROM, loadDigits } from './digits.js'
import { MODEL_DIR } from './mnist-model.js'
import { digitsReport } from './report.js'
import { trainHeadless } from './train-demo.js'

const { values } = parseArgs({ options: {
  headless: { type: 'boolean' }, train: { type: 'boolean' }, peers: { type: 'string' }, format: { type: 'string' }, backend: { type: 'string' }, batch: { type: 'string' },
} })

const fmt = (n: number) => Math.round(n).toLocaleString('en-US')

async function headless(): Promise<void> {
  const peers = Number(values.peers ?? 2)
  const format = values.format ?? 'onnx'
  const batchSize = Number(values.batch ?? 250)
  if (!(peers >= 1) || !['onnx', 'tfjs'].includes(format) || !(batchSize >= 1)) throw new TypeError('usage: npm run demo -- [--train] --headless [--peers N] [--format onnx|tfjs] [--backend auto|wasm|native] [--batch N]')
  const dataDir = mkdtempSync(join(tmpdir(), 'colony-demo-'))
  const coord = await startCoordinator({ port: 0, store: 'memory', dataDir, log: () => {} })
  const workers = []
  try {
    // Training takes a slot per worker and one per parameter-server shard: two executors a peer.
    for (let i = 0; i < peers; i++) workers.push(await startNodeWorker({ url: coord.url, token: coord.tokens.join, executors: values.train ? 2 : 1, rtcBindAddress: '127.0.0.1', nativeMl: values.backend === 'native', log: () => {} }))
    const grid = await connect(coord.url, { token: coord.tokens.submit, onLog: false, log: () => {} })
    const digits = loadDigits()
    if (values.train) {
      await trainHeadless(grid, digits, peers)
      await grid.close()
      return
    }
    const model: ModelSource = format === 'onnx'
      ? { onnx: new Uint8Array(readFileSync(join(MODEL_DIR, 'mnist.onnx'))) }
      : { tfjs: { modelJson: JSON.parse(readFileSync(join(MODEL_DIR, 'model.json'), 'utf8')), weights: new Uint8Array(readFileSync(join(MODEL_DIR, 'weights.bin'))) } }
    const dataset = { data: digits.pixels, shape: [digits.count, 784] }
    const opts = { batchSize, backend: values.backend ?? 'auto', inputScale: 1 / 255 }
    console.log(`Scoring ${fmt(digits.count)} digits with the ${format} model on ${peers} Node peer${peers > 1 ? 's' : ''}…`)
    // A warm pool of `actors` actors (the model loaded, a first batch scored), then the timed run.
    const measure = async (actors: number): Promise<ScoringResult> => {
      const pool = await createScoringPool(grid, model, { ...opts, concurrency: actors })
      try {
        await pool.ready(actors)
        await pool.score({ data: digits.pixels.subarray(0, 784 * batchSize * actors * 2), shape: [batchSize * actors * 2, 784] })
        return await pool.score(dataset)
      } finally { pool.close() }
    }
    const one = await measure(1)
    const all = await measure(peers)
    const r = digitsReport(all, digits.labels, HELD_OUT_FROM)
    const line = (label: string, res: ScoringResult) => `  ${label.padEnd(10)} ${fmt(res.rowsPerSecond).padStart(8)} digits/s  (${(res.elapsedMs / 1000).toFixed(2)} s)`
    console.log(`
accuracy:           ${(r.accuracy * 100).toFixed(2)}% of ${fmt(digits.count)} digits
held-out accuracy:  ${(r.heldOutAccuracy * 100).toFixed(2)}% of the ${fmt(digits.count - HELD_OUT_FROM)} digits training never saw
throughput:
${line('1 peer', one)}
${line(`${peers} peers`, all)}
  speed-up   ${(all.rowsPerSecond / one.rowsPerSecond).toFixed(2)}×
by peer:
${all.peers.map((p) => `  ${p.peer}  ${p.backend.padEnd(6)} ${fmt(p.rows).padStart(6)} digits in ${p.shards} shards`).join('\n')}
confusion matrix (rows: true digit, columns: predicted):
${r.confusion.map((row, t) => `  ${t} ${row.map((n) => String(n).padStart(5)).join('')}`).join('\n')}`)
    await grid.close()
  } finally {
    await Promise.all(workers.map((w) => w.close()))
    await coord.close()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

if (values.headless) {
  await headless()
} else {
  // The interactive demo is `colony up`, which prints the /demo link.
  const cli = fileURLToPath(import.meta.resolve('@colony-grid/client/cli'))
  const args = ['up', ...(values.peers ? ['--peers', values.peers] : [])]
  spawn(process.execPath, [cli, ...args], { stdio: 'inherit' }).on('exit', (code) => process.exit(code ?? 0))
}
