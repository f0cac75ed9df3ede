/**
 * Serving (issue 13), on a real coordinator (`colony start`, which hosts the deployments) and Node
 * peers: the endpoint answers as scoring in one process does, AIMD raises the batch under load and
 * cuts it when the objective is missed, a cache hit never reaches a replica, Exp3 follows the best
 * model back within 500 feedbacks, bad input gets its status code, and a replica's peer killed
 * under load loses no request.
 */
import { before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { serve, undeploy, type DeploymentStats, type Prediction } from '@colony-grid/client'
import { MODEL_DIR, loadDigits, onnxInProcess, type Digits } from '@colony-grid/demo'
import { api, until } from './harness.js'
import { argmax, exp3Recovery, oneHot, scaleModel, shiftModel } from './serving-helpers.js'
import { suiteGrid } from './suite-grid.js'

const KEEP_SPENT = 100

describe('serving', () => {
  // Three peers of three slots: replicas of several deployments side by side, and room for a replacement after a kill.
  // Few spent records kept, so that the deployments' job shows they do go (spent-records.ts).
  const suite = suiteGrid({ workers: 3, executors: 3, env: { COLONY_KEEP_SPENT_RECORDS: String(KEEP_SPENT) } })
  let digits: Digits
  let onnx: Uint8Array
  const post = (path: string, body: unknown, init: { token?: string | null; headers?: Record<string, string> } = {}) => fetch(new URL(path, suite.g.url), {
    method: 'POST', body: body instanceof Uint8Array ? body as BodyInit : JSON.stringify(body),
    headers: { 'content-type': body instanceof Uint8Array ? 'application/octet-stream' : 'application/json', ...(init.token === null ? {} : { authorization: `Bearer ${init.token ?? suite.g.submitToken}` }), ...init.headers },
  })
  const stats = async (name: string) => (await (await fetch(new URL(`/serve/${name}`, suite.g.url), { headers: { authorization: `Bearer ${suite.g.submitToken}` } })).json()) as DeploymentStats
  const rowsOf = (from: number, n: number) => Array.from({ length: n }, (_, i) => Array.from(digits.pixels.subarray((from + i) * 784, (from + i + 1) * 784)))

  /** The model's outputs for the first 64 digits, scored in this process. */
  let reference: Float32Array
  /** Each output row of an answer against the reference, within float rounding. */
  const matchesReference = (p: Prediction) => p.outputs.forEach((row, i) => row.forEach((v, k) => assert.ok(Math.abs(v - reference[i * 10 + k]) < 1e-5, `row ${i} class ${k}: ${v} against ${reference[i * 10 + k]}`)))

  before(async () => {
    digits = loadDigits()
    onnx = new Uint8Array(readFileSync(join(MODEL_DIR, 'mnist.onnx')))
    const inproc = await onnxInProcess(onnx, 'wasm')
    reference = await inproc.score(digits.pixels.subarray(0, 64 * 784), 64)
    await inproc.release()
  })

  it('POST /serve/mnist answers as scoring the same digits in one process does, as JSON and as float32 rows; a repeat is a cache hit that never reaches a replica', async () => {
    const d = await serve(suite.grid, 'mnist', { models: [{ version: 'v1', onnx }], inputShape: [784], inputScale: 1 / 255, replicas: { min: 2, max: 2 } })
    assert.deepEqual(d.inputShape, [784])
    const res = await post('/serve/mnist', { inputs: rowsOf(0, 64) })
    assert.equal(res.status, 200, await res.clone().text())
    const p = await res.json() as Prediction
    assert.equal(p.version, 'v1')
    assert.equal(p.outputs.length, 64)
    assert.equal(p.ids.length, 64)
    matchesReference(p)
    // Float32 rows, little-endian, in the body.
    const binary = await post('/serve/mnist', new Uint8Array(Float32Array.from(digits.pixels.subarray(64 * 784, 96 * 784)).buffer))
    assert.equal(binary.status, 200)
    assert.equal((await binary.json() as Prediction).outputs.length, 32)

    const before = await stats('mnist')
    const served = () => before.versions[0].replicas.reduce((n, r) => n + r.served, 0)
    assert.equal(served(), 96)
    const again = await (await post('/serve/mnist', { inputs: rowsOf(0, 64) })).json() as Prediction
    assert.equal(again.cached, 64)
    assert.deepEqual(again.outputs, p.outputs)
    const after = await stats('mnist')
    assert.equal(after.versions[0].replicas.reduce((n, r) => n + r.served, 0), served(), 'a cache hit reached a replica')
    assert.equal(after.cache.hits, 64)
    // The figures are in /metrics too.
    const metrics = await (await fetch(new URL('/metrics', suite.g.url))).text()
    assert.match(metrics, /colony_serve_requests_total\{deployment="mnist"\} 3/)
    assert.match(metrics, /colony_serve_cache_hit_ratio\{deployment="mnist"\} /)
    assert.match(metrics, /# TYPE colony_serve_request_latency_seconds histogram\n/)
    assert.match(metrics, /colony_serve_request_latency_seconds_bucket\{deployment="mnist",le="\+Inf"\} 3\n/)
    assert.match(metrics, /colony_serve_batch_latency_seconds_count\{deployment="mnist",version="v1",peer="p_\w+"\} \d+/)
  })

  it('AIMD raises the batch size under load, and cuts it batch by batch once the objective is missed', async () => {
    await serve(suite.grid, 'aimd', { models: [{ version: 'v1', onnx }], inputShape: [784], replicas: { min: 1, max: 1 }, sloMs: 5000, cache: false })
    // 32 clients, one row a request, until `done` says so (or 30 s pass).
    const loadUntil = async (done: () => Promise<boolean>) => {
      let stop = false
      const clients = Promise.all(Array.from({ length: 32 }, async (_, c) => {
        for (let i = 0; !stop; i++) assert.equal((await post('/serve/aimd', { inputs: rowsOf((c * 97 + i) % 1000, 1) })).status, 200)
      }))
      try { await until(async () => done(), 30_000, 'the batch sizes under load') } finally { stop = true; await clients }
    }
    const replica = async () => (await stats('aimd')).versions[0]
    await loadUntil(async () => Math.max(...(await replica()).recentBatches) >= 8)
    const grown = (await replica()).recentBatches
    // An objective no batch can meet: each batch after it is a tenth smaller, down to 1.
    const before = (await replica()).replicas[0].batches
    const patched = await fetch(new URL('/api/deployments/aimd', suite.g.url), { method: 'PATCH', body: JSON.stringify({ sloMs: 0.001 }), headers: { authorization: `Bearer ${suite.g.submitToken}` } })
    assert.equal(patched.status, 200)
    await loadUntil(async () => { const v = await replica(); return v.replicas[0].batchSize === 1 && v.replicas[0].batches - before > 5 })
    const v = await replica()
    const cut = v.recentBatches.slice(-(v.replicas[0].batches - before))
    assert.equal(cut[cut.length - 1], 1, `sizes after the objective was missed: ${cut.join(' ')}`)
    // One replica, one batch at a time: the i-th batch after the cut is at most a tenth smaller, i times over, than the largest before it.
    const top = Math.max(...grown) + 1
    cut.forEach((n, i) => assert.ok(n <= Math.max(1, Math.floor(top * 0.9 ** i)), `batch ${i} after the objective was missed has ${n} queries: ${cut.join(' ')}`))
    await undeploy(suite.grid, 'aimd')
  })

  it('Exp3 puts at least 95% of traffic on the best model, and back on the other within 500 feedbacks once the best gets worse', async () => {
    await serve(suite.grid, 'pick', { models: [{ version: 'a', tfjs: shiftModel(0) }, { version: 'b', tfjs: shiftModel(1) }], selection: 'exp3', replicas: { min: 1, max: 1 }, cache: false })
    const { afterWarm, feedbacks } = await exp3Recovery(suite.g.url, suite.g.submitToken, 'pick', { warm: 200, limit: 500 })
    assert.ok(afterWarm >= 0.95, `a has ${afterWarm} of the traffic after 200 feedbacks`)
    assert.ok(feedbacks <= 500, `b does not have 95% of the traffic after 500 feedbacks`)
    console.error(`exp3: ${feedbacks} feedbacks to put 95% back on the best model`)
    // The traffic itself follows: of the next 100 queries, at least 90 go to b.
    let onB = 0
    for (let i = 0; i < 100; i++) if ((await (await post('/serve/pick', { inputs: [oneHot(i % 10)] })).json() as Prediction).version === 'b') onB++
    assert.ok(onB >= 90, `${onB} of 100 on b`)
  })

  it('Exp4 answers with every version weighted, and a confidence that feedback raises', async () => {
    await serve(suite.grid, 'ensemble', { models: [{ version: 'a', tfjs: shiftModel(0) }, { version: 'b', tfjs: shiftModel(1) }, { version: 'a2', tfjs: shiftModel(0) }], selection: 'exp4', replicas: { min: 1, max: 1 } })
    const first = await (await post('/serve/ensemble', { inputs: [oneHot(3)] })).json() as Prediction
    assert.equal(first.version, 'ensemble')
    assert.equal(argmax(first.outputs[0]), 3, 'two of three versions say 3')
    assert.ok(Math.abs(first.confidence![0] - 2 / 3) < 1e-6, String(first.confidence))
    for (let i = 0; i < 30; i++) {
      const p = await (await post('/serve/ensemble', { inputs: [oneHot(i % 10)] })).json() as Prediction
      await post('/serve/ensemble/feedback', { id: p.ids[0], label: i % 10 })
    }
    const later = await (await post('/serve/ensemble', { inputs: [oneHot(5)] })).json() as Prediction
    assert.equal(argmax(later.outputs[0]), 5)
    assert.ok(later.confidence![0] > 0.95, String(later.confidence))
    await undeploy(suite.grid, 'ensemble')
  })

  it('Exp4 with a version\'s peer frozen (SIGSTOP): the answer is formed from the versions that answered by the hedge time', async () => {
    // Two peers that alone may host it, of 2 slots and 1: the three versions take them all, one peer hosting one version alone.
    const added = [await suite.g.addWorker(2, ['--capabilities', 'ens']), await suite.g.addWorker(1, ['--capabilities', 'ens'])]
    const ids = suite.g.workerIds.slice(-2)
    try {
      await serve(suite.grid, 'ensemble-late', {
        models: [{ version: 'a', tfjs: shiftModel(0) }, { version: 'b', tfjs: shiftModel(1) }, { version: 'a2', tfjs: shiftModel(0) }],
        selection: 'exp4', replicas: { min: 1, max: 1 }, hedgeMs: 300, cache: false, capabilities: ['ens'],
      })
      const on = new Map((await stats('ensemble-late')).versions.map((v) => [v.version, v.replicas[0].peer]))
      const alone = [...on].find(([, peer]) => [...on.values()].filter((p) => p === peer).length === 1)!
      const frozen = added[ids.indexOf(alone[1])]
      frozen.child.kill('SIGSTOP')
      try {
        const t0 = performance.now()
        const r = await post('/serve/ensemble-late', { inputs: [oneHot(3)] })
        const ms = performance.now() - t0
        assert.equal(r.status, 200, await r.clone().text())
        const p = await r.json() as Prediction
        // The two versions that answered: both say 3 (a, a2), or they split (b says 4) and either may win.
        const answered = [...on.keys()].filter((v) => v !== alone[0])
        const says: number[] = answered.map((v) => (v === 'b' ? 4 : 3))
        assert.ok(says.includes(argmax(p.outputs[0])), `answered ${argmax(p.outputs[0])}; ${answered.join(', ')} answered, ${alone[0]} was frozen`)
        assert.ok(ms < 5000, `answered after ${ms.toFixed(0)} ms with version ${alone[0]} frozen`)
        console.error(`version ${alone[0]} frozen: answered ${argmax(p.outputs[0])} in ${ms.toFixed(0)} ms from ${answered.join(', ')} (confidence ${p.confidence?.[0].toFixed(2)})`)
      } finally { frozen.child.kill('SIGCONT') }
      await undeploy(suite.grid, 'ensemble-late')
    } finally {
      for (const w of added) { await w.kill('SIGKILL'); suite.g.workers.splice(suite.g.workers.indexOf(w), 1) }
      for (const id of ids) suite.g.workerIds.splice(suite.g.workerIds.indexOf(id), 1)
    }
  })

  it('bad input gets its status code, and the other deployments keep serving: a wrong shape, no such deployment, an oversized body, no token, a flood past the queue cap', async () => {
    const shape = await post('/serve/pick', { inputs: [[1, 2, 3]] })
    assert.equal(shape.status, 400)
    assert.match((await shape.json() as { error: { message: string } }).error.message, /'pick' takes inputs of shape \[N, 10\] \(rows of 10 numbers\): row 0 has 3 values/)
    assert.equal((await post('/serve/pick', { inputs: [oneHot(1).map(String)] })).status, 400)
    assert.equal((await post('/serve/pick', 'not json' as never)).status, 400)
    const missing = await post('/serve/nosuch', { inputs: [oneHot(1)] })
    assert.equal(missing.status, 404)
    assert.match((await missing.json() as { error: { message: string } }).error.message, /no deployment 'nosuch'/)
    assert.equal((await post('/serve/pick', new Uint8Array(5 << 20))).status, 413)
    assert.equal((await post('/serve/pick', { inputs: [oneHot(1)] }, { token: null })).status, 401)
    assert.equal((await post('/serve/pick', { inputs: [oneHot(1)] }, { token: suite.g.joinToken })).status, 401)

    await serve(suite.grid, 'capped', { models: [{ version: 'v1', onnx }], inputShape: [784], replicas: { min: 1, max: 1 }, queueCap: 8, cache: false, access: 'public' })
    const flood = await Promise.all(Array.from({ length: 200 }, (_, i) => post('/serve/capped', { inputs: rowsOf(i, 1) }, { token: null })))
    const codes = flood.map((r) => r.status)
    const refused = flood.filter((r) => r.status === 429)
    assert.ok(refused.length > 0 && codes.every((c) => c === 200 || c === 429), codes.join(' '))
    assert.ok(Number(refused[0].headers.get('retry-after')) >= 1)
    // The other deployment answers all along.
    assert.equal((await post('/serve/pick', { inputs: [oneHot(2)] })).status, 200)
    assert.equal((await post('/serve/capped', { inputs: rowsOf(0, 1) }, { token: null })).status, 200)
    assert.equal((await stats('capped')).rejected.full, refused.length)
    // More rows in one request than the queue ever takes: no retry could help, so 400 rather than 429.
    const tooMany = await post('/serve/capped', { inputs: rowsOf(0, 9) }, { token: null })
    assert.equal(tooMany.status, 400)
    assert.match((await tooMany.json() as { error: { message: string } }).error.message, /has 9 rows; 'capped' queues at most 8 \(queueCap\)/)
    // A float32 row with a NaN in it, as JSON rows are: 400.
    const nan = Float32Array.from(rowsOf(0, 1)[0]); nan[7] = NaN
    assert.equal((await post('/serve/capped', new Uint8Array(nan.buffer), { token: null })).status, 400)
    // Options that name no batching or selection there is.
    await assert.rejects(serve(suite.grid, 'odd', { models: [{ version: 'v1', onnx }], batching: 'fixed' as never }), /batching must be 'aimd', 'off' or \{ maxBatch \}/)
    await assert.rejects(serve(suite.grid, 'odd', { models: [{ version: 'v1', onnx }], selection: 'best' as never }), /selection must be 'fixed', 'exp3' or 'exp4'/)
    // Deleted with rows waiting (its replica's peer frozen): they are answered at once (502), not left to their 30 s timeout.
    const peer = (await stats('capped')).versions[0].replicas[0].peer
    const frozen = suite.g.workers[suite.g.workerIds.indexOf(peer)]
    frozen.child.kill('SIGSTOP')
    try {
      const waiting = Array.from({ length: 8 }, (_, i) => post('/serve/capped', { inputs: rowsOf(300 + i, 1) }, { token: null }).then((r) => r.status))
      await until(async () => (await stats('capped')).pending === 8, 10_000, '8 rows waiting')
      await undeploy(suite.grid, 'capped')
      const settled = await Promise.race([Promise.all(waiting), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('rows of a deleted deployment still wait')), 10_000))])
      assert.deepEqual(settled, new Array(8).fill(502))
    } finally {
      frozen.child.kill('SIGCONT')
    }
    assert.equal((await post('/serve/capped', { inputs: rowsOf(0, 1) })).status, 404)
  })

  it('a pipeline goes through other deployments, each stage\'s output passed to the next as a ref, and answers as the model alone does', async () => {
    // Grey levels to 0..1 in a stage of its own, then the model, which takes 0..1.
    await serve(suite.grid, 'pre', { models: [{ version: 'v1', tfjs: scaleModel(1 / 255) }], replicas: { min: 1, max: 1 }, cache: false })
    await serve(suite.grid, 'm01', { models: [{ version: 'v1', onnx }], inputShape: [784], replicas: { min: 1, max: 1 }, cache: false })
    const d = await serve(suite.grid, 'digits', { pipeline: ['pre', 'm01'], cache: false })
    assert.deepEqual(d.inputShape, [784])
    const relayed = async () => Number(/colony_relayed_bytes_total (\d+)/.exec(await (await fetch(new URL('/metrics', suite.g.url))).text())![1])
    const before = await relayed()
    // 64 rows of 784 floats between the stages: 200 KB, past what travels inline through the coordinator.
    const res = await post('/serve/digits', { inputs: rowsOf(0, 64) })
    assert.equal(res.status, 200, await res.clone().text())
    const p = await res.json() as Prediction
    assert.equal(p.version, 'pipeline')
    matchesReference(p)
    assert.equal(await relayed(), before, 'bytes went through the coordinator')
    assert.deepEqual((await stats('digits')).pipeline, ['pre', 'm01'])
    // A stage cannot go while a pipeline goes through it.
    const refused = await fetch(new URL('/api/deployments/pre', suite.g.url), { method: 'DELETE', headers: { authorization: `Bearer ${suite.g.submitToken}` } })
    assert.equal(refused.status, 400)
    assert.match((await refused.json() as { error: { message: string } }).error.message, /'pre' is a stage of the pipeline 'digits': delete that first/)
    for (const name of ['digits', 'pre', 'm01']) await undeploy(suite.grid, name)
  })

  it('a straggler: rows stuck on a replica whose peer is frozen (SIGSTOP) are sent to the other replica, and answered while it is still frozen', async () => {
    // A deployment is ready with one replica of each version; this one has two.
    const peers = await until(async () => { const r = (await stats('mnist')).versions[0].replicas; return r.length === 2 && r.map((x) => x.peer) }, 30_000, 'both replicas of mnist')
    assert.equal(new Set(peers).size, 2, `the 2 replicas on ${peers.join(', ')}`)
    const frozen = suite.g.workers[suite.g.workerIds.indexOf(peers[0])]
    frozen.child.kill('SIGSTOP')
    try {
      // Rows not asked before (the cache would answer those), one a request, all at once.
      const answers = Promise.all(Array.from({ length: 16 }, (_, i) => post('/serve/mnist', { inputs: rowsOf(600 + i, 1) }).then((r) => r.status)))
      const codes = await Promise.race([answers, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('rows waited for the frozen replica')), 10_000))])
      assert.deepEqual(codes, new Array(16).fill(200))
    } finally {
      frozen.child.kill('SIGCONT')
    }
  })

  it('a peer that joins under load becomes a replica, and answers from then on', async () => {
    // Only peers that offer `late` may host it: one of one slot now, so the set cannot grow until another joins.
    const first = await suite.g.addWorker(1, ['--capabilities', 'late'])
    const ids = [suite.g.workerIds[suite.g.workerIds.length - 1]]
    let late: Awaited<ReturnType<typeof suite.g.addWorker>> | undefined
    try {
      await serve(suite.grid, 'grows', { models: [{ version: 'v1', onnx }], inputShape: [784], replicas: { min: 1, max: 2 }, batching: 'off', cache: false, capabilities: ['late'] })
      const replicas = async () => (await stats('grows')).versions[0].replicas
      assert.deepEqual((await replicas()).map((r) => r.peer), ids)
      let stop = false, joined = false
      const clients = Promise.all(Array.from({ length: 16 }, async (_, c) => {
        for (let i = 0; !stop; i++) {
          const r = await post('/serve/grows', { inputs: rowsOf((c * 53 + i) % 1000, 1) })
          assert.equal(r.status, 200, await r.clone().text())
          // The queue is long by now: the set wants a second replica, which waits for a slot.
          if (!joined && c === 0 && i === 20) {
            joined = true
            late = await suite.g.addWorker(1, ['--capabilities', 'late'])
            ids.push(suite.g.workerIds[suite.g.workerIds.length - 1])
          }
        }
      }))
      try {
        await until(async () => (await replicas()).some((r) => r.peer === ids[1] && r.served > 0), 30_000, 'a replica on the peer that joined, answering')
      } finally { stop = true; await clients }
      console.error(`replicas: ${(await replicas()).map((r) => `${r.peer} ${r.served} rows`).join(', ')}`)
      await undeploy(suite.grid, 'grows')
    } finally {
      for (const w of [first, late]) if (w) { await w.kill('SIGKILL'); suite.g.workers.splice(suite.g.workers.indexOf(w), 1) }
      for (const id of ids) suite.g.workerIds.splice(suite.g.workerIds.indexOf(id), 1)
    }
  })

  it('a replica\'s peer killed with SIGKILL under load loses no request, and the deployment outlives the driver that made it', async () => {
    // A fourth peer: room for the replacement whichever peer is killed.
    await suite.g.addWorker(2)
    const replicasOn = async () => new Set((await stats('mnist')).versions[0].replicas.map((r) => r.peer))
    const end = Date.now() + 4000
    let killed = false, answered = 0
    await Promise.all(Array.from({ length: 16 }, async (_, c) => {
      for (let i = 0; Date.now() < end; i++) {
        const r = await post('/serve/mnist', { inputs: rowsOf(200 + ((c * 31 + i) % 500), 4) })
        assert.equal(r.status, 200, await r.clone().text())
        answered++
        if (!killed && answered > 40) {
          killed = true
          // Kill a peer that holds a replica now.
          const on = await replicasOn()
          const i = suite.g.workerIds.findIndex((id) => on.has(id))
          assert.ok(i >= 0, `replicas on ${[...on].join(', ')}`)
          const [doomed] = suite.g.workers.splice(i, 1)
          suite.g.workerIds.splice(i, 1)
          await doomed.kill('SIGKILL')
        }
      }
    }))
    assert.ok(killed)
    await until(async () => (await stats('mnist')).versions[0].replicas.length === 2, 30_000, 'a replacement replica')
    // The deployments' job has ended a call per batch all along: it holds its newest spent calls only.
    const jobs = (await api<{ items: { id: string; name: string; state: string }[] }>(suite.g, '/api/jobs?state=running')).body.items
    const serving = jobs.find((j) => j.name === 'serving' && j.state === 'running')!
    const info = (await api<{ tasks: Record<string, number> }>(suite.g, `/api/jobs/${serving.id}`)).body
    const listed = (await api<{ total: number }>(suite.g, `/api/jobs/${serving.id}/tasks?limit=1`)).body.total
    console.error(`the deployments' job: ${info.tasks.finished} calls ended, ${listed} on record`)
    assert.ok(info.tasks.finished > 4 * KEEP_SPENT && listed <= 2 * KEEP_SPENT, `${info.tasks.finished} calls ended, ${listed} on record`)
    // The driver that deployed it goes; the endpoint stays.
    await suite.grid.close()
    assert.equal((await post('/serve/mnist', { inputs: rowsOf(0, 2) })).status, 200)
  })
})
