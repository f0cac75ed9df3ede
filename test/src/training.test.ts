/**
 * Training on the grid (issue 12): real Node peers train a small model on the demo's digits
 * through a parameter server while workers and the parameter server's peer are killed, a peer
 * joins, a worker poisons its gradients; BSP's bound; bad input gets a clear error.
 * The demo's convnet is in training-convnet.test.ts.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { train } from '@colony-grid/client'
import { HELD_OUT_FROM, loadDigits, toModelInput } from '@colony-grid/demo'
import { api } from './harness.js'
import { suiteGrid } from './suite-grid.js'
import { mlp } from './models.js'


/** A convolution that trains (not frozen): its filter gradients need a kernel the wasm backend lacks. */
const tinyConvnet = {
  class_name: 'Sequential',
  config: {
    name: 'tiny_convnet',
    layers: [
      { class_name: 'Reshape', config: { name: 'image', target_shape: [28, 28, 1], batch_input_shape: [null, 784], dtype: 'float32' } },
      { class_name: 'Conv2D', config: { name: 'conv', filters: 4, kernel_size: [5, 5], strides: [2, 2], activation: 'relu', kernel_initializer: { class_name: 'GlorotUniform', config: { seed: 3 } } } },
      { class_name: 'Flatten', config: { name: 'flatten' } },
      { class_name: 'Dense', config: { name: 'out', units: 10, activation: 'softmax', kernel_initializer: { class_name: 'GlorotUniform', config: { seed: 4 } } } },
    ],
  },
}

const digits = loadDigits()
const x = (from: number, to: number) => ({ data: toModelInput(digits.pixels.subarray(from * 784, to * 784)), shape: [to - from, 784] })
const trainSet = { x: x(0, HELD_OUT_FROM), y: digits.labels.subarray(0, HELD_OUT_FROM) }
const heldOut = { x: x(HELD_OUT_FROM, digits.count), y: digits.labels.subarray(HELD_OUT_FROM) }

describe('training on the grid', () => {
  // Two peers of two executors: a worker on each, and the parameter server's shards beside them.
  const suite = suiteGrid({ workers: 2, executors: 2 })

  it('a worker killed with SIGKILL mid-run: its batch goes to the others, nothing restarts, and training completes', async () => {
    const extra = await suite.g.addWorker(1, ['--capabilities', 'doomed'])
    const doomedPeer = suite.g.workerIds[suite.g.workerIds.length - 1]
    try {
      const opts = {
        model: { topology: mlp(32) }, data: { x: x(0, 4096), y: digits.labels.subarray(0, 4096) }, validation: heldOut,
        // BSP: which batches make each update is fixed by the seed, so the two runs differ by the kill alone
        // (under SSP, the order pushes arrive in moves held-out accuracy by up to a point from run to run).
        optimizer: { name: 'adam' as const, lr: 0.003 }, batchSize: 32, epochs: 3, workers: { min: 3, max: 3 }, consistency: { mode: 'bsp' as const },
      }
      const clean = await train(suite.grid, opts)
      let killed = false
      const r = await train(suite.grid, {
        ...opts,
        // Half way: 384 steps, 128 a worker.
        onProgress: (s) => { if (!killed && s.peer === doomedPeer && s.clock >= 64) { killed = true; void extra.kill('SIGKILL') } },
      })
      console.error(`held-out accuracy: clean ${clean.accuracy}, with a worker killed ${r.accuracy}`)
      assert.ok(killed, 'the doomed worker ran steps')
      assert.equal(r.steps, 3 * 128)
      assert.equal(r.samples, 3 * 4096)
      assert.ok(r.workers.some((w) => w.peer === doomedPeer && w.gone), JSON.stringify(r.workers))
      // From the kill on, updates combine 2 gradients instead of 3, and a step the doomed worker had pushed
      // before it died is pushed again by the one that retries it; where the kill falls moves held-out accuracy
      // (here 0.903-0.9035 against 0.9035 clean, 0.8965 on CI's slower machine). More than 1.5 points would be lost work.
      assert.ok(Math.abs(r.accuracy! - clean.accuracy!) <= 0.015, `held-out accuracy ${r.accuracy}, clean ${clean.accuracy}`)
    } finally {
      await extra.kill('SIGKILL')
      suite.g.workers.splice(suite.g.workers.indexOf(extra), 1)
      suite.g.workerIds.splice(suite.g.workerIds.indexOf(doomedPeer), 1)
    }
  })

  it('a peer that joins mid-run becomes a worker, and takes batches from then on', async () => {
    const first = await suite.g.addWorker(2, ['--capabilities', 'elastic'])
    const ids = [suite.g.workerIds[suite.g.workerIds.length - 1]]
    let late: Awaited<ReturnType<typeof suite.g.addWorker>> | undefined
    try {
      let joining = false
      const r = await train(suite.grid, {
        model: { topology: mlp(32) }, data: { x: x(0, 4096), y: digits.labels.subarray(0, 4096) }, validation: heldOut,
        optimizer: { name: 'adam', lr: 0.003 }, batchSize: 32, epochs: 2, workers: { min: 1, max: 2 }, consistency: { mode: 'ssp', staleness: 2 }, capabilities: ['elastic'],
        onProgress: (s) => {
          if (joining || s.step < 10) return
          joining = true
          void suite.g.addWorker(1, ['--capabilities', 'elastic']).then((w) => { late = w; ids.push(suite.g.workerIds[suite.g.workerIds.length - 1]) })
        },
      })
      const latecomer = r.workers.find((w) => w.peer === ids[1])
      assert.ok(latecomer && latecomer.steps > 0, `the peer that joined mid-run trained: ${JSON.stringify(r.workers)}`)
      assert.equal(r.steps, 2 * 128)
      assert.ok(r.accuracy! > 0.85, `held-out accuracy ${r.accuracy}`)
    } finally {
      for (const w of [first, late]) if (w) { await w.kill('SIGKILL'); suite.g.workers.splice(suite.g.workers.indexOf(w), 1) }
      for (const id of ids) suite.g.workerIds.splice(suite.g.workerIds.indexOf(id), 1)
    }
  })

  it('the parameter server\'s peer killed with SIGKILL mid-run: its shard comes back from its checkpoint elsewhere, and training completes', async () => {
    // Two peers of their own: each runs a worker, one also the parameter server, and either has a slot for it to restart in.
    const a = await suite.g.addWorker(2, ['--capabilities', 'ps-restart'])
    const b = await suite.g.addWorker(2, ['--capabilities', 'ps-restart'])
    const extra = [a, b], ids = suite.g.workerIds.slice(-2)
    try {
      let killed = ''
      const r = await train(suite.grid, {
        model: { topology: mlp(32) }, data: { x: x(0, 2048), y: digits.labels.subarray(0, 2048) }, validation: heldOut,
        batchSize: 32, epochs: 2, workers: { min: 2, max: 2 }, consistency: { mode: 'ssp', staleness: 2 },
        capabilities: ['ps-restart'], checkpointEvery: 5,
        onProgress: (s) => {
          if (killed || s.step < 20) return
          killed = 'pending'
          void api<{ items: { name: string; peer?: string; state: string }[] }>(suite.g, `/api/jobs/${suite.grid.jobId}/actors?limit=10000`).then(async ({ body: { items: body } }) => {
            // This run's shard (earlier runs of the job left theirs, ended, in the list): on one of these two peers.
            const shard = body.find((x) => /ParameterShard/.test(x.name) && ids.includes(x.peer ?? '') && x.state !== 'dead')!
            killed = shard.peer!
            await extra[ids.indexOf(killed)].kill('SIGKILL')
          })
        },
      })
      assert.ok(ids.includes(killed), `the parameter server's peer was killed (${killed})`)
      assert.equal(r.steps, 2 * 64)
      const actors = (await api<{ items: { name: string; restarts: number }[] }>(suite.g, `/api/jobs/${suite.grid.jobId}/actors?limit=10000`)).body.items
      assert.ok(actors.some((x) => /ParameterShard/.test(x.name) && x.restarts >= 1), JSON.stringify(actors))
      console.error(`the parameter server restarted: held-out accuracy ${r.accuracy}`)
      assert.ok(r.accuracy! > 0.6, `held-out accuracy ${r.accuracy}`)
    } finally {
      for (const w of extra) { await w.kill('SIGKILL'); suite.g.workers.splice(suite.g.workers.indexOf(w), 1) }
      for (const id of ids) suite.g.workerIds.splice(suite.g.workerIds.indexOf(id), 1)
    }
  })

  it('a worker that sends poisoned gradients (x -100): with a trimmed mean the model is within 1 point of the clean run; with a plain mean it falls', async () => {
    // Honest peers A, B and C, a poisoning peer P (the fault multiplies what its tasks send by -100), and H for the parameter server.
    // Honest peers A and B (two workers each) and C, a poisoning peer P (the fault multiplies what its tasks
    // send by -100), and H for the parameter server. Clean: A, B and C (5 honest); poisoned: A, B and P.
    const peer = async (executors: number, caps: string[], env?: Record<string, string>) => {
      const w = await suite.g.addWorker(executors, ['--capabilities', caps.join(',')], { env })
      return { w, id: suite.g.workerIds[suite.g.workerIds.length - 1] }
    }
    const added = [
      await peer(2, ['robust', 'honest']), await peer(2, ['robust', 'honest']), await peer(1, ['honest']),
      await peer(1, ['robust'], { COLONY_INJECT_FAULTS: 'poison-float-arrays' }), await peer(1, ['ps-host']),
    ]
    const poisoner = added[3].id
    try {
      const opts = (caps: string, aggregate: 'mean' | 'trimmed-mean') => ({
        model: { topology: mlp(32) }, data: { x: x(0, 4096), y: digits.labels.subarray(0, 4096) }, validation: heldOut,
        optimizer: { name: 'adam' as const, lr: 0.01 }, batchSize: 32, epochs: 3, workers: { min: 5, max: 5 }, consistency: { mode: 'bsp' as const },
        capabilities: [caps], ps: { capabilities: ['ps-host'] }, aggregate,
      })
      const clean = await train(suite.grid, opts('honest', 'trimmed-mean'))
      const robust = await train(suite.grid, opts('robust', 'trimmed-mean'))
      const naive = await train(suite.grid, opts('robust', 'mean'))
      console.error(`held-out accuracy: clean ${clean.accuracy}, one worker of 5 poisoning with trimmed mean ${robust.accuracy} (${robust.droppedGradients} of its gradients dropped as outliers), with a plain mean ${naive.accuracy}; clean gradients dropped: ${clean.droppedGradients}`)
      assert.ok(!clean.workers.some((w) => w.peer === poisoner))
      for (const r of [robust, naive]) assert.ok(r.workers.some((w) => w.peer === poisoner && w.steps > 0), JSON.stringify(r.workers))
      // The poisoned gradient is at an extreme of every coordinate: the trimmed mean drops it whole and averages
      // the 4 honest ones; honest gradients are dropped seldom, if ever.
      assert.ok(robust.droppedGradients > 0.8 * (robust.steps / 5) && clean.droppedGradients <= 0.05 * (clean.steps / 5), `dropped: ${robust.droppedGradients} poisoned, ${clean.droppedGradients} clean`)
      assert.ok(Math.abs(robust.accuracy! - clean.accuracy!) <= 0.01, `trimmed mean: ${robust.accuracy}, clean ${clean.accuracy}`)
      assert.ok(naive.accuracy! < clean.accuracy! - 0.2, `a plain mean: ${naive.accuracy}, clean ${clean.accuracy}`)
    } finally {
      for (const { w, id } of added) { await w.kill('SIGKILL'); suite.g.workers.splice(suite.g.workers.indexOf(w), 1); suite.g.workerIds.splice(suite.g.workerIds.indexOf(id), 1) }
    }
  })

  it('BSP keeps every worker at the same step', async () => {
    const r = await train(suite.grid, {
      model: { topology: mlp(16) }, data: { x: x(0, 1024), y: digits.labels.subarray(0, 1024) },
      batchSize: 64, epochs: 1, workers: { min: 2, max: 2 }, consistency: { mode: 'bsp' },
    })
    assert.equal(r.steps, 16)
    assert.equal(r.maxClockSpread, 0)
  })

  it('bad input gets a clear error and loses nothing: too few rows, rows that do not match, a model that does not build, shapes the model does not take, a backend that fails', async () => {
    const small = { x: x(0, 10), y: digits.labels.subarray(0, 10) }
    await assert.rejects(train(suite.grid, { model: { topology: mlp() }, data: small, batchSize: 64 }), /the dataset has 10 rows, fewer than one batch of 64/)
    await assert.rejects(train(suite.grid, { model: { topology: mlp() }, data: { x: x(0, 100), y: digits.labels.subarray(0, 99) } }), /data\.x has 100 rows and data\.y 99/)
    await assert.rejects(train(suite.grid, { model: { topology: { class_name: 'Sequential', config: { layers: [{ class_name: 'NoSuchLayer', config: {} }] } } }, data: trainSet, workers: { max: 1 } }),
      /could not load the model: .*the model does not build/)
    const narrow = { x: { data: new Float32Array(128 * 100), shape: [128, 100] }, y: digits.labels.subarray(0, 128) }
    await assert.rejects(train(suite.grid, { model: { topology: mlp() }, data: narrow, workers: { max: 1 } }), /the model takes rows of shape \[784\]; the data's rows are \[100\]/)
    await assert.rejects(train(suite.grid, { model: { topology: mlp() }, data: trainSet, wire: 'float8' as never }), /wire must be 'float32' or 'bfloat16' \(got float8\)/)
    await assert.rejects(train(suite.grid, { model: { topology: mlp() }, data: { x: x(0, 128), y: new Uint8Array(128).fill(12) }, workers: { max: 1 } }), /label 12 is not one of the model's 10 classes/)
    await assert.rejects(train(suite.grid, { model: { topology: mlp() }, data: trainSet, backend: 'nosuch', workers: { max: 1 } }), /tfjs backend 'nosuch' is not available/)
    // A trainable convolution: the wasm backend has no gradient for it. Named, that is an error; by default the workers train on cpu.
    await assert.rejects(train(suite.grid, { model: { topology: tinyConvnet }, data: trainSet, backend: 'wasm', workers: { max: 1 } }), /the tfjs wasm backend has no Conv2DBackpropFilter kernel/)
    const backends = new Set<string>()
    const conv = await train(suite.grid, { model: { topology: tinyConvnet }, data: { x: x(0, 256), y: digits.labels.subarray(0, 256) }, batchSize: 64, workers: { max: 1 }, onProgress: (st) => backends.add(st.backend) })
    assert.deepEqual([...backends], ['cpu'])
    assert.equal(conv.steps, 4)
    // And the grid goes on.
    assert.equal(await suite.grid.get(suite.grid.remote(() => 'still here').remote()), 'still here')
  })
})
