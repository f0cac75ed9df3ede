/**
 * Distributed batch scoring (client `scoreDataset`) with the demo's MNIST model, on a real
 * coordinator and Node peer processes. Tabs join in test/browser/scoring.spec.ts.
 */
import { before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CancelledError, ColonyScoringActor, createScoringPool, scoreDataset, TaskError, type ScoringProgress } from '@colony-grid/client'
import { HELD_OUT_FROM, MODEL_DIR, argmaxRows, loadDigits, onnxInProcess, type Digits } from '@colony-grid/demo'
import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'
import { ROOT, withGrid } from './harness.js'

const BATCH = 250
let digits: Digits
let onnx: Uint8Array
let reference: Float32Array

before(async () => {
  digits = loadDigits()
  onnx = new Uint8Array(readFileSync(join(MODEL_DIR, 'mnist.onnx')))
  const inproc = await onnxInProcess(onnx, 'wasm')
  reference = await inproc.score(digits.pixels, BATCH)
  await inproc.release()
})

const dataset = (d: Digits, rows = d.count) => ({ data: d.pixels.subarray(0, rows * 784), shape: [rows, 784] })

function accuracy(probs: Float32Array, labels: Uint8Array, from = 0): number {
  const predicted = argmaxRows(probs, 10)
  let right = 0
  for (let i = from; i < labels.length; i++) if (predicted[i] === labels[i]) right++
  return right / (labels.length - from)
}

describe('scoreDataset', () => {
  it('scores 10,000 digits on 2 peers: in order, equal to one process exactly, each shard once', async () => {
    await withGrid({ workers: 2, executors: 1 }, async (g, grid) => {
      const progress: ScoringProgress[] = []
      // Both actors load the model first: an actor that loads while the other is already scoring
      // may find every shard taken (10,000 rows take about a second), and 'both peers scored' is the point here.
      const pool = await createScoringPool(grid, { onnx }, { batchSize: BATCH, backend: 'wasm', inputScale: 1 / 255 })
      await pool.ready(2)
      const result = await pool.score(dataset(digits), { onProgress: (p) => progress.push(p) })
      pool.close()
      assert.deepEqual(result.shape, [10_000, 10])
      assert.ok(Buffer.from(result.data.buffer).equals(Buffer.from(reference.buffer)), 'grid results differ from the in-process ones')
      assert.equal(result.duplicates, 0)
      assert.equal(progress.length, 40)
      assert.equal(progress.at(-1)!.rowsDone, 10_000)
      assert.equal(result.peers.length, 2, 'both peers scored')
      assert.deepEqual(new Set(result.peers.map((p) => p.peer)), new Set(g.workerIds))
      assert.equal(result.peers.reduce((n, p) => n + p.rows, 0), 10_000)
      assert.ok(result.peers.every((p) => p.backend === 'wasm'))
      assert.ok(accuracy(result.data, digits.labels, HELD_OUT_FROM) >= 0.97)
    })
  })

  it('streams shards as they finish, and scores a tfjs model the same as the ONNX one', async () => {
    await withGrid({ workers: 2, executors: 1 }, async (_g, grid) => {
      const model = join(MODEL_DIR, 'model.json')
      const files = { modelJson: JSON.parse(readFileSync(model, 'utf8')), weights: new Uint8Array(readFileSync(join(MODEL_DIR, 'weights.bin'))) }
      const seen = new Set<number>()
      const run = scoreDataset(grid, dataset(digits, 2000), { tfjs: files }, { batchSize: BATCH, inputScale: 1 / 255 })
      for await (const shard of run) {
        assert.ok(!seen.has(shard.index))
        seen.add(shard.index)
        assert.equal(shard.data.length, shard.rows * 10)
      }
      assert.equal(seen.size, 8)
      const result = await run
      const ours = argmaxRows(result.data, 10), theirs = argmaxRows(reference.subarray(0, 20_000), 10)
      let maxDiff = 0
      for (let i = 0; i < result.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(result.data[i] - reference[i]))
      assert.deepEqual(ours, theirs)
      assert.ok(maxDiff < 1e-4, `tfjs and ONNX differ by ${maxDiff}`)
    })
  })

  it('re-runs a killed peer\'s shards elsewhere: every result, once, still exact', async () => {
    await withGrid({ workers: 3, executors: 1 }, async (g, grid) => {
      const victim = g.workerIds[2]
      let killed = false
      // Every actor loaded first, so the victim is sure to be scoring when it dies.
      const pool = await createScoringPool(grid, { onnx }, { batchSize: BATCH, backend: 'wasm', inputScale: 1 / 255 })
      await pool.ready(3)
      const result = await pool.score(dataset(digits), {
        onProgress: (p) => {
          if (!killed && p.last.peer === victim) { killed = true; void g.workers[2].kill('SIGKILL') }
        },
      })
      pool.close()
      assert.ok(killed, 'the victim scored a shard before it was killed')
      assert.ok(Buffer.from(result.data.buffer).equals(Buffer.from(reference.buffer)))
      assert.ok(result.retries >= 1, 'the killed peer had shards in flight that ran again')
      assert.equal(result.peers.reduce((n, p) => n + p.rows, 0), 10_000, 'each row counted once')
    })
  })

  it('grows its actor pool as peers join mid-run', async () => {
    await withGrid({ workers: 1, executors: 1 }, async (g, grid) => {
      let added: Promise<unknown> | undefined
      // Three passes over the digits: ~4 s on one peer, time enough for a second one to start and load the model.
      const pixels = new Uint8Array(digits.pixels.length * 3)
      for (let i = 0; i < 3; i++) pixels.set(digits.pixels, i * digits.pixels.length)
      const result = await scoreDataset(grid, { data: pixels, shape: [30_000, 784] }, { onnx }, {
        batchSize: 250, backend: 'wasm', inputScale: 1 / 255,
        onProgress: (p) => { if (p.shardsDone === 5) added = g.addWorker() },
      })
      await added
      assert.equal(result.peers.length, 2, 'the peer that joined mid-run took shards')
    })
  })

  it('a pool goes on after a run that failed or was cancelled, queued or mid-way', async () => {
    await withGrid({ workers: 2, executors: 1 }, async (_g, grid) => {
      const pool = await createScoringPool(grid, { onnx }, { batchSize: BATCH, backend: 'wasm', inputScale: 1 / 255 })
      await pool.ready(2)
      const part = dataset(digits, 2000)
      await assert.rejects(pool.score(part, { onProgress: () => { throw new Error('my callback broke') } }), /onProgress threw: my callback broke/)
      const midway = pool.score(part, { onProgress: (p) => { if (p.shardsDone === 1) midway.cancel() } })
      await assert.rejects(midway, CancelledError)
      const next = pool.score(part)
      const queued = pool.score(part)
      queued.cancel()
      await assert.rejects(queued, CancelledError)
      const r = await next
      assert.ok(Buffer.from(r.data.buffer).equals(Buffer.from(reference.buffer, 0, 2000 * 10 * 4)))
      pool.close()
      await assert.rejects(pool.ready(1), CancelledError)
    })
  })

  it('ships its actor as source that stands alone, whatever the target it was compiled for', async () => {
    for (const target of ['es2022', 'es2019']) {
      // In a process of its own: esbuild's service, once started here, can outlive this test file's end.
      const code = execFileSync(process.execPath, ['--input-type=module', '-e',
        `import { transform } from 'esbuild'; const r = await transform(process.argv[1], { target: '${target}', loader: 'js' }); process.stdout.write(r.code)`,
        `(${String(ColonyScoringActor)})`], { cwd: join(ROOT, 'test'), encoding: 'utf8' })
      const Cls = new Function(`return ${code.trim().replace(/;$/, '')}`)() as new (m: unknown, o: unknown) => { backend(): string }
      assert.equal(new Cls({ format: 'onnx' }, { backend: 'wasm' }).backend(), 'wasm', target)
    }
  })

  it('reports bad models and bad data clearly, and the grid keeps serving', async () => {
    await withGrid({ workers: 1, executors: 1 }, async (_g, grid) => {
      await assert.rejects(scoreDataset(grid, dataset(digits, 500), { onnx: new Uint8Array([1, 2, 3, 4]) }, { backend: 'wasm' }),
        (e: Error) => /could not load the model/.test(e.message) && e.cause instanceof TaskError)
      await assert.rejects(async () => scoreDataset(grid, { data: new Float32Array(10), shape: [3, 4] }, { onnx }),
        /does not match its 10 values/)
      const wrongWidth = { data: new Float32Array(2 * 100), shape: [2, 100] }
      await assert.rejects(scoreDataset(grid, wrongWidth, { onnx }, { backend: 'wasm', maxAttempts: 1 }), (e: Error) => e instanceof TaskError && /shape|dimension|size/i.test(e.message))
      const ok = await scoreDataset(grid, dataset(digits, 500), { onnx }, { batchSize: BATCH, backend: 'wasm', inputScale: 1 / 255 })
      assert.ok(Buffer.from(ok.data.buffer).equals(Buffer.from(reference.buffer, 0, 500 * 10 * 4)))
    })
  })

  it('runs the whole demo headless: `npm run demo -- --headless` prints accuracy, throughput and speed-up', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [join(ROOT, 'demo', 'dist', 'demo.js'), '--headless', '--peers', '2'], { timeout: 120_000 })
    const heldOut = Number(/held-out accuracy:\s+([\d.]+)%/.exec(stdout)?.[1])
    assert.ok(heldOut >= 97, stdout)
    assert.match(stdout, /2 peers\s+[\d,]+ digits\/s/)
    assert.match(stdout, /speed-up\s+[\d.]+×/)
    assert.equal(stdout.match(/^\s+p_\w+\s+\w+\s+[\d,]+ digits in \d+ shards$/gm)?.length, 2, stdout)
  })
})
