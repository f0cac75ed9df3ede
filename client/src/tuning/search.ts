/**
 * A search's driver, as Ray Tune's controller: it samples configs, hands each trial runner (the shared
 * actor pool, ../pool/actor-pool.ts, of runner.ts's actors: one per concurrent trial, each holding
 * `resourcesPerTrial`, reused from trial to trial, since an actor per trial would cost more than a short
 * trial) its next trial before the current one ends, polls the runners for reports, answers those the
 * scheduler (schedulers.ts) decides on, and keeps the search's state in the grid (search-store.ts) for
 * `tune.resume`. tune.ts is the way in.
 */
import type { ObjectRef } from '@colony-grid/shared'
import type { ActorClass, ActorHandle, Grid } from '@colony-grid/worker-web'
import { EventLog } from '../event-log.js'
import { ActorPool, peerVanished, type PoolMember } from '../pool/actor-pool.js'
import { trialRunnerClass, type TrialRunner } from './runner-class.js'
import type { ReportEvent, RunOutcome, RunnerDecision, TrialSpec } from './runner.js'
import { makeScheduler, type TrialScheduler } from './schedulers.js'
import { SearchStore, type Checkpoint, type SearchDocument } from './search-store.js'
import { checkSpace, configAt } from './space.js'
import type { Report, Search, TrialRecord, TuneEvent, TuneOptions, TuneResult } from './types.js'

/** Actor calls that last a whole trial: no time limit of the job's (the largest a task may set). */
const NO_LIMIT_MS = 2_147_483_647
const POLL_WAIT_MS = 1_000
export const TERMINAL: ReadonlySet<string> = new Set(['stopped', 'finished', 'failed'])

interface RunnerState { assigned: TrialSpec[]; polling: boolean }

export function checkOptions(o: TuneOptions): { total: number } {
  if (typeof o !== 'object' || o === null) throw new TypeError('tune(grid, trainable, options): options are required ({ space, metric, mode, maxEpochs, ... })')
  const { points } = checkSpace(o.space)
  if (typeof o.metric !== 'string' || o.metric === '' || o.metric === 'epoch') throw new TypeError(`metric must name a reported metric other than 'epoch' (got ${JSON.stringify(o.metric)})`)
  if (o.mode !== 'max' && o.mode !== 'min') throw new RangeError(`mode must be 'max' or 'min' (got ${JSON.stringify(o.mode)})`)
  if (!Number.isInteger(o.maxEpochs) || o.maxEpochs < 1) throw new RangeError(`maxEpochs must be a whole number from 1 (got ${o.maxEpochs})`)
  const samples = o.numSamples ?? 1
  if (!Number.isInteger(samples) || samples < 1) throw new RangeError(`numSamples must be a whole number from 1 (got ${o.numSamples})`)
  const c = o.maxConcurrent ?? 4
  if (!Number.isInteger(c) || c < 1) throw new RangeError(`maxConcurrent must be a whole number from 1 (got ${o.maxConcurrent})`)
  if (o.stopGraceMs !== undefined && !(o.stopGraceMs >= 0)) throw new RangeError(`stopGraceMs must be 0 or more (got ${o.stopGraceMs})`)
  return { total: samples * points }
}


const watchers = new Set<(s: Search) => void>()

/** Calls `f` with every search started from now on in this process. */
export function watchSearches(f: (s: Search) => void): () => void {
  watchers.add(f)
  return () => { watchers.delete(f) }
}

export interface Start { id: string; trainable: string; options: Omit<TuneOptions, 'with'>; values: Record<string, unknown>; createdAt: number; trials: TrialRecord[]; checkpoints: Map<string, Checkpoint>; resumed: boolean }

/** What a Search says of itself (known at once for `tune`, once the state is read for `tune.resume`). */
export interface SearchInfo { id: string; options?: Omit<TuneOptions, 'with'> }

export function runSearch(grid: Grid, prepare: () => Promise<Start>, info: SearchInfo): Search {
  const events = new EventLog<TuneEvent>()
  let stopSearch: () => void = () => { stopAll = true }
  let stopTrial: (id: string) => void = () => undefined
  let stopAll = false
  const trials = new Map<string, TrialRecord>()

  const result = (async (): Promise<TuneResult> => {
    const start = await prepare()
    info.options = start.options
    const o = start.options
    const { total } = checkOptions(o as TuneOptions)
    const higher = o.mode === 'max' ? 1 : -1
    const score = (t: TrialRecord) => (t.last === undefined ? undefined : higher * t.last)
    for (const t of start.trials) trials.set(t.id, t)
    const checkpoints = start.checkpoints
    const scheduler: TrialScheduler = makeScheduler(o.scheduler, { space: o.space, seed: o.seed ?? 1, maxEpochs: o.maxEpochs, trials, score, hasCheckpoint: (t) => checkpoints.has(t.id) })
    const log = (line: string) => console.log(line)
    const store = o.persist !== false && SearchStore.available(grid) ? new SearchStore(grid, start.id, log) : undefined
    const document = (state: SearchDocument['state']): SearchDocument => ({
      version: 1, id: start.id, name: o.name, createdAt: start.createdAt, options: o, trainable: start.trainable, state, trials: [...trials.values()],
    })
    if (store && !start.resumed) await store.begin(document('running'), start.values)
    const persist = () => store?.changed(() => document('running'))
    const emit = (e: TuneEvent) => events.push(e)

    // A trial that was running goes again from its checkpoint (one the scheduler had stopped stays stopped);
    // then the reports that remain are replayed, so rungs are as they were.
    const pending: TrialRecord[] = []
    for (const t of trials.values()) {
      if (!TERMINAL.has(t.state)) {
        if (t.stopping) { t.state = 'stopped'; emit({ type: 'stopped', trial: t.id, reason: t.reason ?? 'stopped', decidedAt: Date.now() }) }
        else {
          const c = checkpoints.get(t.id)
          if (c) t.checkpointEpoch = c.epoch
          rewind(t)
          // Its last epoch was checkpointed before the driver died: it had finished.
          if (c && c.epoch >= o.maxEpochs && t.last !== undefined) { t.state = 'finished'; emit({ type: 'finished', trial: t.id, last: t.last }) } else pending.push(t)
        }
      }
      for (const r of t.reports) if (typeof r[o.metric] === 'number' && scheduler.decisionEpochs(t).includes(r.epoch)) scheduler.replay(t, r, higher * r[o.metric])
    }
    let sampled = trials.size
    const started = performance.now()

    /** Back to its checkpoint: later reports go (they will come again). */
    function rewind(t: TrialRecord): void {
      t.state = 'pending'
      if (!checkpoints.has(t.id)) t.checkpointEpoch = 0
      t.reports = t.reports.filter((r) => r.epoch <= t.checkpointEpoch)
      const last = [...t.reports].reverse().find((r) => typeof r[o.metric] === 'number')
      t.last = last?.[o.metric]
    }
    const nextTrial = (): TrialRecord | undefined => {
      while (pending.length) { const t = pending.shift()!; if (!TERMINAL.has(t.state)) return t }
      if (sampled >= total || stopAll) return undefined
      const index = sampled++
      const t: TrialRecord = { id: `t${index + 1}`, index, config: configAt(o.space, o.seed ?? 1, index), state: 'pending', reports: [], epochsRun: 0, checkpointEpoch: 0, runs: 0, exploited: [] }
      trials.set(t.id, t)
      return t
    }
    const hasWork = () => pending.length > 0 || (sampled < total && !stopAll)
    /** Its runner went (or was ended): it starts again from its checkpoint, unless it was being stopped. */
    const requeue = (t: TrialRecord) => {
      onRunner.delete(t.id)
      if (TERMINAL.has(t.state)) return
      if (stopAll || decidedAt.has(t.id)) { end(t, 'stopped', { reason: t.reason ?? 'the search was stopped' }); return }
      rewind(t)
      pending.unshift(t)
    }

    let failure: Error | undefined, settle!: () => void, searchOver = false
    const over = new Promise<void>((r) => { settle = r })
    const fail = (e: Error) => { failure ??= e; settle() }
    const runners = new Map<PoolMember<TrialRunner>, RunnerState>()
    const onRunner = new Map<string, PoolMember<TrialRunner>>()
    const decidedAt = new Map<string, number>()
    const graceTimers = new Map<string, ReturnType<typeof setTimeout>>()
    const seen = new Map<string, number>()

    const checkDone = () => {
      if (hasWork()) return
      if ([...trials.values()].every((t) => TERMINAL.has(t.state))) settle()
    }

    /** Sends one call and lets go of its result once read. */
    const call = async <T>(ref: ObjectRef<T>): Promise<T> => {
      try { return await grid.get(ref) as T } finally { grid.free(ref) }
    }

    const end = (t: TrialRecord, state: 'stopped' | 'finished' | 'failed', detail?: { reason?: string; error?: TrialRecord['error'] }) => {
      if (TERMINAL.has(t.state)) return
      t.state = state
      if (detail?.reason) t.reason ??= detail.reason
      if (detail?.error) t.error = detail.error
      clearTimeout(graceTimers.get(t.id)); graceTimers.delete(t.id)
      onRunner.delete(t.id)
      // Only PBT copies from a trial after it ended; the grid keeps the checkpoint for resume anyway.
      if (scheduler.name !== 'pbt') checkpoints.delete(t.id)
      if (state === 'finished') emit({ type: 'finished', trial: t.id, last: t.last })
      else if (state === 'failed') emit({ type: 'failed', trial: t.id, error: t.error?.message ?? t.reason ?? 'failed' })
      persist()
    }

    const feed = (m: PoolMember<TrialRunner>) => {
      const r = runners.get(m)
      if (!r || m.dead || failure) return
      // One running and, once every runner is up and there is more work than runners, one queued behind it
      // (a runner that came up first must not take the trials the others are coming up for).
      const queueDepth = runners.size >= poolSize && pending.length + (total - sampled) > runners.size ? 2 : 1
      while (r.assigned.length < queueDepth) {
        const t = nextTrial()
        if (!t) break
        assign(m, r, t)
      }
      if (r.assigned.length && !r.polling) pollLoop(m, r)
      checkDone()
    }

    const assign = (m: PoolMember<TrialRunner>, r: RunnerState, t: TrialRecord) => {
      const cp = checkpoints.get(t.id)
      const spec: TrialSpec = {
        id: t.id, run: ++t.runs, config: t.config, checkpoint: cp?.value, epoch: cp?.epoch ?? 0,
        decideAt: scheduler.decisionEpochs(t), maxEpochs: o.maxEpochs,
      }
      r.assigned.push(spec)
      onRunner.set(t.id, m)
      seen.set(t.id, 0)
      t.state = 'running'
      t.peer = m.peer
      emit({ type: 'started', trial: t.id, config: t.config, peer: m.peer, run: t.runs })
      persist()
      call<RunOutcome>(m.handle.run.options({ timeoutMs: NO_LIMIT_MS }).remote(spec)).then((out) => {
        r.assigned = r.assigned.filter((s) => s !== spec)
        // From a runner the trial was taken from (its peer was thought gone): it runs again elsewhere.
        if (onRunner.get(t.id) === m) outcome(t, spec, out)
        feed(m)
      }, (e: unknown) => {
        r.assigned = r.assigned.filter((s) => s !== spec)
        if (t.runs !== spec.run || TERMINAL.has(t.state) || onRunner.get(t.id) !== m) return
        if (peerVanished(e) || m.dead) {
          // Its peer went: it goes again from its checkpoint, on another runner.
          requeue(t)
          if (!m.dead) pool.retire(m)
          for (const other of runners.keys()) feed(other)
          return
        }
        end(t, 'failed', { error: { name: (e as Error)?.name ?? 'Error', message: `trial ${t.id}'s runner failed: ${(e as Error)?.message ?? e}`, stack: (e as Error)?.stack } })
        feed(m)
      })
    }

    const pollLoop = (m: PoolMember<TrialRunner>, r: RunnerState) => {
      r.polling = true
      void (async () => {
        while (!m.dead && r.assigned.length && !failure) {
          let evs: ReportEvent[]
          try { evs = await call<ReportEvent[]>(m.handle.poll.remote(POLL_WAIT_MS)) } catch (e) {
            // The runner's peer went (the pool hears of it), or the coordinator is away for a while: poll again.
            if (peerVanished(e) || m.dead) break
            await new Promise((res) => setTimeout(res, 500))
            continue
          }
          for (const ev of evs) if (onRunner.get(ev.trial) === m) reported(ev)
        }
        r.polling = false
      })()
    }

    /** Resolves true when the trial was running there (false: it was still queued behind another). */
    const decide = (t: TrialRecord, d: RunnerDecision): Promise<boolean> => {
      const m = onRunner.get(t.id)
      const attempt = async (left: number): Promise<boolean> => {
        if (!m || m.dead || onRunner.get(t.id) !== m || TERMINAL.has(t.state)) return false
        try { return await call<boolean>(m.handle.decide.remote(t.id, d)) } catch (e) {
          // A trainable waiting on this answer would wait for ever: the call goes again (the coordinator may be restarting).
          if (peerVanished(e) || left === 0) return false
          await new Promise((res) => setTimeout(res, 500))
          return attempt(left - 1)
        }
      }
      return attempt(60)
    }

    const stopOne = (t: TrialRecord, reason: string) => {
      if (TERMINAL.has(t.state)) return
      t.reason ??= reason
      const m = onRunner.get(t.id)
      if (t.state === 'pending' || !m) {
        const i = pending.indexOf(t)
        if (i >= 0) pending.splice(i, 1)
        emit({ type: 'stopped', trial: t.id, reason, decidedAt: Date.now() })
        end(t, 'stopped', { reason })
        checkDone()
        return
      }
      if (decidedAt.has(t.id)) return
      decidedAt.set(t.id, performance.now())
      // Kept, so a resumed search does not run it again.
      t.stopping = true
      persist()
      emit({ type: 'stopped', trial: t.id, reason, decidedAt: Date.now() })
      // A trainable that does not return in time loses its runner (and the runner's nested actors with it).
      void decide(t, 'stop').then((running) => { if (running && !TERMINAL.has(t.state)) graceTimers.set(t.id, setTimeout(() => {
        if (TERMINAL.has(t.state) || m.dead || searchOver) return
        console.log(`tune ${start.id}: trial ${t.id} did not return within ${o.stopGraceMs ?? 1000} ms of its stop: ending its runner`)
        const r = runners.get(m)
        runners.delete(m)
        pool.shrink(m)
        end(t, 'stopped', { reason })
        released(t)
        for (const s of r?.assigned ?? []) if (s.id !== t.id) requeue(trials.get(s.id)!)
        pool.grow()
        for (const other of runners.keys()) feed(other)
        checkDone()
      }, o.stopGraceMs ?? 1000)) })
    }
    const released = (t: TrialRecord) => {
      const ms = performance.now() - decidedAt.get(t.id)!
      releaseTimes.push(ms)
      emit({ type: 'released', trial: t.id, ms })
    }

    const releaseTimes: number[] = []

    function reported(ev: ReportEvent, fromOutcome = false): void {
      const t = trials.get(ev.trial)
      if (!t || t.runs !== ev.run || (TERMINAL.has(t.state) && scheduler.name !== 'pbt')) return
      if (ev.checkpoint !== undefined && ev.hasCheckpoint && ev.report.epoch >= t.checkpointEpoch) {
        const c = { epoch: ev.report.epoch, value: ev.checkpoint }
        checkpoints.set(t.id, c)
        t.checkpointEpoch = c.epoch
        store?.checkpoint(t.id, c)
      }
      if (ev.seq < (seen.get(t.id) ?? 0)) return
      seen.set(t.id, ev.seq + 1)
      if (TERMINAL.has(t.state)) return
      const report: Report = ev.report
      t.reports.push(report)
      t.epochsRun++
      const value = report[o.metric]
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        t.error = { name: 'TypeError', message: `trial ${t.id} reported ${JSON.stringify(report)} without a finite '${o.metric}', the search's metric: report it at every epoch` }
        if (!fromOutcome) stopOne(t, t.error.message)
        return
      }
      t.last = value
      emit({ type: 'reported', trial: t.id, report })
      persist()
      if (!ev.waits || fromOutcome || decidedAt.has(t.id)) return
      const d = stopAll ? { action: 'stop' as const, reason: 'the search was stopped' } : scheduler.decide(t, report, higher * value)
      if (d.action === 'continue') decide(t, 'continue')
      else if (d.action === 'stop') stopOne(t, d.reason)
      else {
        const donor = checkpoints.get(d.from.id)!
        t.exploited.push({ from: d.from.id, epoch: donor.epoch })
        t.config = d.config
        checkpoints.set(t.id, donor)
        t.checkpointEpoch = donor.epoch
        store?.checkpoint(t.id, donor)
        emit({ type: 'exploited', trial: t.id, from: d.from.id, epoch: donor.epoch, config: d.config })
        decide(t, { exploit: { config: d.config, checkpoint: donor.value, epoch: donor.epoch, from: d.from.id } })
      }
    }

    function outcome(t: TrialRecord, spec: TrialSpec, out: RunOutcome): void {
      if (t.runs !== spec.run) return
      for (const ev of out.reports) reported(ev, true)
      t.config = out.config
      if (out.peer) t.peer = out.peer
      if (decidedAt.has(t.id) && !TERMINAL.has(t.state)) released(t)
      if (t.error) end(t, 'failed')
      else if (out.error) end(t, 'failed', { error: { ...out.error, message: `trial ${t.id} (${JSON.stringify(t.config)}) on peer ${out.peer ?? '?'} threw: ${out.error.message}` } })
      else if (out.stopped || decidedAt.has(t.id)) end(t, 'stopped')
      else if (t.last === undefined) end(t, 'failed', { error: { name: 'Error', message: `trial ${t.id} ended without reporting '${o.metric}', the search's metric: call session.report({ epoch, ${o.metric} }) each epoch` } })
      else end(t, 'finished')
      checkDone()
    }

    stopTrial = (id: string) => { const t = trials.get(id); if (t) stopOne(t, 'stopped by the driver') }
    stopSearch = () => {
      stopAll = true
      for (const t of pending.splice(0)) end(t, 'stopped', { reason: 'the search was stopped' })
      for (const t of trials.values()) stopOne(t, 'the search was stopped')
      checkDone()
    }
    if (stopAll) stopSearch()

    const Runner = (grid.remote(trialRunnerClass()) as unknown as ActorClass<ReturnType<typeof trialRunnerClass>>).options({
      resources: o.resourcesPerTrial ?? { cpu: 1 }, capabilities: o.capabilities ?? [], maxRestarts: 0, maxConcurrency: 4,
    })
    const values = grid.put(start.values)
    const poolSize = Math.min(o.maxConcurrent ?? 4, total)
    const pool: ActorPool<TrialRunner> = new ActorPool<TrialRunner>(grid, {
      size: poolSize, what: 'trial runner', loads: 'the trainable',
      create: () => Runner.remote(start.trainable, values) as unknown as ActorHandle<TrialRunner>,
      describe: (h) => h.describe.remote() as ReturnType<ActorHandle<TrialRunner>['describe']['remote']>,
      onReady: (m) => { runners.set(m, { assigned: [], polling: false }); feed(m) },
      onGone: (m) => {
        const r = runners.get(m)
        runners.delete(m)
        for (const s of r?.assigned ?? []) {
          const t = trials.get(s.id)!
          if (t.runs === s.run && onRunner.get(t.id) === m) requeue(t)
        }
        for (const other of runners.keys()) feed(other)
      },
      onBroken: (e) => fail(e),
    })
    checkDone()
    try {
      await over
      if (failure) throw failure
    } finally {
      searchOver = true
      for (const timer of graceTimers.values()) clearTimeout(timer)
      pool.close()
      grid.free(values)
      if (failure) { store?.changed(() => document('failed')); await store?.flush(); store?.close() }
    }
    const all = [...trials.values()]
    const ranked = all.filter((t) => t.state !== 'failed' && t.last !== undefined).sort((a, b) => higher * (b.last! - a.last!))
    const state: SearchDocument['state'] = ranked.length ? (stopAll ? 'stopped' : 'finished') : 'failed'
    store?.changed(() => document(state))
    await store?.flush()
    store?.close()
    if (!ranked.length) {
      const failed = all.filter((t) => t.state === 'failed')
      throw Object.assign(new Error(`no trial of search ${start.id} reported '${o.metric}' to the end: ${failed.length} of ${all.length} failed${failed[0] ? `; the first: ${failed[0].error?.message ?? failed[0].reason}` : ''}`), { trials: all })
    }
    return {
      searchId: start.id, metric: o.metric, mode: o.mode, best: ranked[0], trials: all,
      trialEpochs: all.reduce((a, t) => a + t.epochsRun, 0), elapsedMs: performance.now() - started, releaseMs: releaseTimes,
    }
  })().finally(() => events.end())
  result.catch(() => undefined)

  // Getters, not values: a resumed search learns its options once it has read its state.
  const getters = {
    id: () => info.id,
    metric: () => info.options?.metric,
    mode: () => info.options?.mode,
    maxEpochs: () => info.options?.maxEpochs,
    name: () => info.options?.name,
    scheduler: () => { const s = info.options?.scheduler; return info.options ? (typeof s === 'object' ? s.name : s ?? 'fifo') : undefined },
  }
  for (const [k, get] of Object.entries(getters)) Object.defineProperty(result, k, { get, enumerable: true })
  const search = Object.assign(result, {
    trials: () => [...trials.values()],
    stop: (trialId?: string) => (trialId === undefined ? stopSearch() : stopTrial(trialId)),
    [Symbol.asyncIterator]: () => events.read(result.catch(() => undefined)),
  }) as unknown as Search
  for (const w of watchers) try { w(search) } catch { /* a watcher's error is its own */ }
  return search
}
