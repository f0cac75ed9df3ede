/**
 * Tuning on the grid (issue 14): real Node peers run trials of the MNIST trainer under ASHA and of
 * nested training runs; PBT's exploit step; the coordinator killed mid-search; a driver killed and its
 * search resumed by another; bad input.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { connect, tune, choice, loguniform, gridSearch, uniform, type TrialConfig, type TrialSession, type TuneEvent, type TuneOptions } from '@colony-grid/client'
import { api, spawnProc, startGrid, until, ROOT } from './harness.js'
import { suiteGrid } from './suite-grid.js'
import { digitsWith, mnistTrainable } from './tuning-trainables.js'
import { mlp } from './models.js'
import { join } from 'node:path'

declare const colony: { peerId: string }

/** A toy whose curve is known: it climbs to (1 - |log10(lr) + 2| / 4) and carries its value in its checkpoint. */
async function curveTrainable(config: TrialConfig, session: TrialSession): Promise<void> {
  const c = session.checkpoint as { value: number; owner: string } | undefined
  let value = c?.value ?? 0
  const target = 1 - Math.abs(Math.log10(config.lr as number) + 2) / 4
  for (let epoch = session.epoch + 1; ; epoch++) {
    await new Promise((r) => setTimeout(r, 10))
    value += (target - value) * 0.3
    const inherited = c ? Number(c.owner.slice(1)) : 0
    const checkpoint = config.keep ? { value, owner: session.trialId } : undefined
    if (await session.report({ epoch, score: value, inherited }, { checkpoint }) === 'stop') return
  }
}

async function collect(search: AsyncIterable<TuneEvent>): Promise<TuneEvent[]> {
  const out: TuneEvent[] = []
  for await (const e of search) out.push(e)
  return out
}

describe('tuning on the grid', () => {
  const suite = suiteGrid({ workers: 2, executors: 2 })

  it('ASHA over the MNIST trainer comes within 0.5 points of every config run to the end, with at most a fifth of the trial-epochs', async () => {
    const opts: TuneOptions = {
      space: { lr: loguniform(1e-4, 3e-2), hidden: choice([16, 32, 64]), batchSize: 32 },
      numSamples: 32, metric: 'accuracy', mode: 'max', maxEpochs: 16, maxConcurrent: 2, seed: 3, with: digitsWith(600, 1000),
    }
    const ashaRun = tune(suite.grid, mnistTrainable, { ...opts, scheduler: { name: 'asha', reductionFactor: 4 } })
    const events = await collect(ashaRun)
    const asha = await ashaRun
    const full = await tune(suite.grid, mnistTrainable, { ...opts, scheduler: 'fifo' })
    assert.equal(full.trialEpochs, 32 * 16)
    assert.ok(full.trials.every((t) => t.state === 'finished' && t.reports.length === 16))
    // The same seed samples the same configs; a config's curve is the same on every run.
    for (const t of asha.trials) {
      const twin = full.trials.find((f) => f.id === t.id)!
      assert.deepEqual(t.config, twin.config)
      assert.deepEqual(t.reports.map((r) => r.accuracy), twin.reports.slice(0, t.reports.length).map((r) => r.accuracy), `trial ${t.id}'s curve differs between the searches`)
    }
    assert.ok(asha.best.last! >= full.best.last! - 0.5, `ASHA's best ${asha.best.last} (${asha.best.id}) is more than 0.5 points below the full search's ${full.best.last} (${full.best.id})`)
    // What ASHA spent until a trial it ran to the end came within 0.5 points (each report is an epoch).
    let spent = 0
    for (const e of events) {
      if (e.type !== 'reported') continue
      spent++
      if (e.report.epoch === 16 && e.report.accuracy >= full.best.last! - 0.5) break
    }
    assert.ok(spent <= full.trialEpochs / 5, `ASHA spent ${spent} trial-epochs to come within 0.5 points, over a fifth of ${full.trialEpochs}`)
    assert.ok(asha.trialEpochs < full.trialEpochs / 3, `the whole ASHA search ran ${asha.trialEpochs} trial-epochs of ${full.trialEpochs}`)
    assert.ok(asha.trials.some((t) => t.state === 'stopped'))
    console.log(`ASHA: best ${asha.best.last} against ${full.best.last}; ${spent} trial-epochs to within 0.5, ${asha.trialEpochs} in all, of ${full.trialEpochs}`)
  })

  it('PBT copies a stronger trial\'s checkpoint into a weaker one, and never exploits a trial without a checkpoint', async () => {
    const search = tune(suite.grid, curveTrainable, {
      space: { lr: loguniform(1e-5, 1), keep: gridSearch([true, false]) }, numSamples: 4, metric: 'score', mode: 'max', maxEpochs: 12,
      scheduler: { name: 'pbt', perturbationInterval: 2, quantile: 0.25, mutations: { lr: loguniform(1e-5, 1) } }, maxConcurrent: 8, seed: 5,
    })
    const events = await collect(search)
    const result = await search
    const exploits = events.filter((e): e is Extract<TuneEvent, { type: 'exploited' }> => e.type === 'exploited')
    assert.ok(exploits.length > 0, 'PBT never exploited')
    const byId = new Map(result.trials.map((t) => [t.id, t]))
    for (const x of exploits) {
      const donor = byId.get(x.from)!
      assert.equal(donor.config.keep, true, `trial ${x.trial} exploited ${x.from}, which keeps no checkpoint`)
      // The next report of the exploited trial comes from the donor's checkpoint: it says whose it inherited.
      const trial = byId.get(x.trial)!
      const next = trial.reports.find((r) => r.epoch === x.epoch + 1 && r.inherited === Number(x.from.slice(1)))
      assert.ok(next, `trial ${x.trial} did not go on from ${x.from}'s checkpoint at epoch ${x.epoch}: ${JSON.stringify(trial.reports)}`)
      assert.ok(trial.exploited.some((e) => e.from === x.from))
    }
    assert.ok(result.trials.every((t) => t.state === 'finished'))
  })

  it('nested: 4 trials each train on 2 workers at once; a stopped trial\'s workers end, and no actor is left', async () => {
    // 16 slots: 4 runners, and each trial's shard and 2 workers (a trial's probe worker comes and goes first).
    const extra = [await suite.g.addWorker(6), await suite.g.addWorker(6)]
    try {
      const digits = digitsWith(512, 200)
      const search = tune(suite.grid, async (config: TrialConfig, session: TrialSession) => {
        const w = session.with as { x: Uint8Array; y: Uint8Array; vx: Uint8Array; vy: Uint8Array; topology: unknown }
        let weights = session.checkpoint as { specs: { name: string; shape: number[] }[]; data: Uint8Array } | undefined
        for (let epoch = session.epoch + 1; ; epoch++) {
          const r = await session.train({
            model: { topology: w.topology, weights }, data: { x: { data: w.x, shape: [w.y.length, 784] }, y: w.y },
            validation: { x: { data: w.vx, shape: [w.vy.length, 784] }, y: w.vy }, inputScale: 1 / 255,
            optimizer: { name: 'adam', lr: config.lr as number }, batchSize: 32, epochs: config.epochs as number, workers: { min: 2, max: 2 }, seed: epoch,
          })
          weights = { specs: r.modelFiles.modelJson.weightsManifest[0].weights as { name: string; shape: number[] }[], data: r.modelFiles.weights }
          if (await session.report({ epoch, accuracy: 100 * r.accuracy! }, { checkpoint: weights }) === 'stop') return
        }
      }, {
        space: { lr: loguniform(1e-3, 1e-2), epochs: gridSearch([20, 20, 20, 1000]) }, numSamples: 1, metric: 'accuracy', mode: 'max', maxEpochs: 1,
        // Each runner holds a CPU slot of its own (the default): a slot is an executor, which a runner needs anyway.
        maxConcurrent: 4, with: { ...digits, topology: mlp(16) },
      })
      const trainingActors = async () => {
        const { body } = await api<{ items: { name: string; state: string; owner?: string }[] }>(suite.g, `/api/jobs/${suite.grid.jobId}/actors?limit=10000`)
        return body.items.filter((a) => /ColonyTrainingWorker|ColonyParameterShard/.test(a.name))
      }
      // All four at once: 8 workers (and a shard each) alive together.
      await until(async () => (await trainingActors()).filter((a) => a.state === 'alive' && /Worker/.test(a.name)).length >= 8, 120_000, '8 nested training workers alive at once')
      // t4 trains 1,000 epochs: stop it mid-run.
      const long = search.trials().find((t) => t.config.epochs === 1000)!
      search.stop(long.id)
      const result = await search
      assert.equal(result.trials.find((t) => t.id === long.id)!.state, 'stopped')
      assert.ok(result.trials.filter((t) => t.id !== long.id).every((t) => t.state === 'finished'))
      assert.ok(result.releaseMs.length >= 1)
      const left = await until(async () => { const a = await trainingActors(); return a.every((x) => x.state === 'dead') && a }, 10_000, 'every nested actor to end')
      assert.ok(left.length >= 4 * 3, `expected the 4 trials' workers and shards, saw ${left.length}`)
      const runners = (await api<{ items: { name: string; state: string }[] }>(suite.g, `/api/jobs/${suite.grid.jobId}/actors?limit=10000`)).body.items.filter((a) => a.name === 'ColonyTrialRunner')
      assert.ok(runners.every((r) => r.state === 'dead'), 'a trial runner outlived its search')
    } finally {
      await Promise.all(extra.map((w) => w.kill('SIGTERM')))
    }
  })

  it('a trial stopped before its turn never runs; a stopped search resolves with what it has, and cannot be resumed', async () => {
    const slow = async (config: TrialConfig, session: TrialSession) => {
      for (let epoch = 1; ; epoch++) {
        await new Promise((r) => setTimeout(r, 100))
        if (await session.report({ epoch, score: config.x as number }) === 'stop') return
      }
    }
    const search = tune(suite.grid, slow, { space: { x: gridSearch([1, 2, 3, 4]) }, metric: 'score', mode: 'max', maxEpochs: 3, maxConcurrent: 1 })
    assert.equal(search.metric, 'score')
    assert.equal(search.scheduler, 'fifo')
    // One runner: t3 is sampled when t1 ends, and waits on the runner behind t2.
    await until(async () => search.trials().some((t) => t.id === 't3') && true, 30_000, 'the third trial sampled')
    search.stop('t3')
    const events = await collect(search)
    const result = await search
    assert.equal(result.trials.length, 4)
    assert.equal(result.trials.find((t) => t.id === 't3')!.state, 'stopped')
    assert.ok(!events.some((e) => e.type === 'reported' && e.trial === 't3'), 't3 ran after it was stopped')
    assert.ok(['t1', 't2', 't4'].every((id) => result.trials.find((t) => t.id === id)!.state === 'finished'))
    // The whole search, stopped mid-way: it resolves with the trials that reported.
    const second = tune(suite.grid, slow, { space: { x: gridSearch([1, 2, 3, 4]) }, metric: 'score', mode: 'max', maxEpochs: 3, maxConcurrent: 1 })
    await until(async () => second.trials().some((t) => t.reports.length > 0) && true, 30_000, 'a report')
    second.stop()
    const partial = await second
    assert.ok(partial.trials.every((t) => t.state === 'stopped' || t.state === 'finished'))
    assert.ok(partial.trials.length < 4 || partial.trials.some((t) => t.state === 'stopped'))
    const resumed = tune.resume(suite.grid, partial.searchId)
    await assert.rejects(resumed, /is stopped: there is nothing to resume/)
  })

  it('bad input gets a clear error, and a failing trial does not stop the others', async () => {
    const ok = async (config: TrialConfig, session: TrialSession) => { await session.report({ epoch: 1, score: config.x as number }) }
    const base = { space: { x: uniform(0, 1) }, metric: 'score', mode: 'max' as const, maxEpochs: 1 }
    await assert.rejects(tune(suite.grid, ok, { ...base, space: {} }), /space is empty/)
    await assert.rejects(tune(suite.grid, ok, { ...base, scheduler: 'bogus' as 'fifo' }), /unknown scheduler 'bogus': use one of 'fifo', 'asha', 'hyperband', 'pbt'/)
    await assert.rejects(tune(suite.grid, ok, { ...base, mode: 'most' as 'max' }), /mode must be 'max' or 'min'/)
    await assert.rejects(tune(suite.grid, ok, { ...base, maxEpochs: 0 }), /maxEpochs must be a whole number/)
    await assert.rejects(tune(suite.grid, 42 as unknown as typeof ok, base), /the trainable must be a function/)
    await assert.rejects(tune(suite.grid, ok, { ...base, scheduler: { name: 'asha', gracePeriod: 1 } }), /gracePeriod \(1\) must be below maxEpochs \(1\)/)

    // Trials that throw, or never report the metric, fail with their reason; the rest finish.
    const search = tune(suite.grid, async (config: TrialConfig, session: TrialSession) => {
      if (config.kind === 'throws') throw new RangeError(`no good on ${colony.peerId}`)
      if (config.kind === 'silent') { await session.report({ epoch: 1, loss: 1 } as never); return }
      await session.report({ epoch: 1, score: 1 })
    }, { ...base, space: { kind: gridSearch(['throws', 'silent', 'fine', 'fine']) }, maxConcurrent: 2 })
    const result = await search
    const byKind = (k: string) => result.trials.filter((t) => t.config.kind === k)
    assert.equal(byKind('throws')[0].state, 'failed')
    assert.match(byKind('throws')[0].error!.message, /trial t1 \(\{"kind":"throws"\}\) on peer p_\w+ threw: no good on p_\w+/)
    assert.match(byKind('throws')[0].error!.stack ?? '', /RangeError/)
    assert.equal(byKind('silent')[0].state, 'failed')
    assert.match(byKind('silent')[0].error!.message, /reported \{"epoch":1,"loss":1\} without a finite 'score', the search's metric: report it at every epoch/)
    assert.ok(byKind('fine').every((t) => t.state === 'finished'))
    assert.equal(result.best.config.kind, 'fine')

    // Nothing to rank: the search says why.
    await assert.rejects(tune(suite.grid, async () => { throw new Error('always') }, { ...base, numSamples: 2 }), /no trial of search tune-\w+ reported 'score' to the end: 2 of 2 failed; the first: .*always/)
  })
})

describe('tuning through failures', () => {
  it('the coordinator killed with kill -9 mid-search and restarted: the search finishes, and no finished trial runs again', async () => {
    const g = await startGrid({ workers: 2, executors: 2 })
    try {
      const grid = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
      try {
        const search = tune(grid, curveTrainable, {
          space: { lr: loguniform(1e-4, 1), keep: true }, numSamples: 12, metric: 'score', mode: 'max', maxEpochs: 30, maxConcurrent: 2, seed: 9,
        })
        const events = collect(search)
        await until(async () => search.trials().filter((t) => t.state === 'finished').length >= 2 && true, 60_000, 'two trials finished')
        await g.coordinator.kill('SIGKILL')
        const finishedBefore = search.trials().filter((t) => t.state === 'finished').length
        await g.startCoordinator()
        const result = await search
        assert.ok(finishedBefore < 12, 'the search ended before the kill')
        assert.equal(result.trials.length, 12)
        assert.ok(result.trials.every((t) => t.state === 'finished'), result.trials.map((t) => `${t.id} ${t.state} ${t.reason ?? ''} ${t.error?.message ?? ''}`).join('\n'))
        const finishedAt = new Map<string, number>()
        for (const [i, e] of (await events).entries()) {
          if (e.type === 'finished') finishedAt.set(e.trial, i)
          if (e.type === 'started') assert.ok(!finishedAt.has(e.trial), `trial ${e.trial} started again after it finished`)
        }
      } finally { await grid.close() }
    } finally { await g.stop() }
  })

  it('a driver killed mid-search: tune.resume from another driver finishes it from the state kept in the grid, without running finished trials again', async () => {
    const g = await startGrid({ workers: 2, executors: 2 })
    try {
      const doomed = spawnProc(process.execPath, [join(ROOT, 'test', 'dist', 'tuning-driver.js')], { env: { COLONY_URL: g.url, COLONY_TOKEN: g.submitToken } })
      const id = (await doomed.waitFor(/search (tune-\w+)/))[1]
      const state = async () => (await api<{ key: string }[]>(g, `/api/state?prefix=${encodeURIComponent(`tune/${id}`)}`)).status
      assert.equal(await state(), 200)
      await doomed.waitFor(/finished t\d+[\s\S]*finished t\d+[\s\S]*finished t\d+/)
      await doomed.kill('SIGKILL')
      const grid = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
      try {
        // What the grid kept when the driver died (written within a fraction of a second of each change).
        const kept = await readKept(grid, id)
        const finishedBefore = kept.filter((t) => t.state === 'finished').map((t) => t.id)
        assert.ok(finishedBefore.length >= 1, 'no finished trial was kept')
        const search = tune.resume(grid, id)
        const events = await collect(search)
        const result = await search
        assert.equal(result.searchId, id)
        assert.equal(search.metric, 'score') // read from the state it resumed
        assert.equal(result.trials.length, 8)
        assert.ok(result.trials.every((t) => t.state === 'finished'), result.trials.map((t) => `${t.id} ${t.state} ${t.reason ?? ''} ${t.error?.message ?? ''}`).join('\n'))
        for (const t of finishedBefore) assert.ok(!events.some((e) => e.type === 'started' && e.trial === t), `finished trial ${t} ran again`)
        await assert.rejects(tune.resume(grid, id), /is finished: there is nothing to resume/)
        await assert.rejects(tune.resume(grid, 'tune-nosuch'), /no search tune-nosuch is kept on this coordinator/)
      } finally { await grid.close() }
    } finally { await g.stop() }
  })
})

async function readKept(grid: Awaited<ReturnType<typeof connect>>, id: string): Promise<{ id: string; state: string }[]> {
  const { decodeValue } = await import('@colony-grid/shared')
  const res = await grid.request(`/api/state/tune/${id}`)
  assert.equal(res.status, 200)
  return decodeValue<{ trials: { id: string; state: string }[] }>(new Uint8Array(await res.arrayBuffer())).trials
}
