/**
 * Hyperparameter search on the grid, as Ray Tune does it on Ray: trials are runs of a trainable with
 * sampled configs; a scheduler (schedulers.ts) stops the weaker early (ASHA, Hyperband) or copies the
 * stronger into the weaker (PBT). `tune` starts a search, `tune.resume` goes on with a kept one; the
 * driver that runs either is search.ts.
 */
import { standaloneSource, type Grid } from '@colony-grid/worker-web'
import { makeScheduler } from './schedulers.js'
import { TERMINAL, checkOptions, runSearch, watchSearches } from './search.js'
import { SearchStore, type Checkpoint } from './search-store.js'
import type { Search, Trainable, TuneOptions } from './types.js'

/** The source a trainable ships as (as the grid ships an inline function). */
function trainableSource(f: Trainable): string {
  if (typeof f !== 'function') throw new TypeError('the trainable must be a function (config, session) => ...')
  const src = standaloneSource(f)
  if (/\[native code\]\s*\}$/.test(src)) throw new TypeError('the trainable is a native or bound function: give a plain function, which ships as source')
  return src
}

function newSearchId(): string {
  const b = new Uint8Array(6)
  globalThis.crypto.getRandomValues(b)
  return `tune-${[...b].map((x) => x.toString(16).padStart(2, '0')).join('')}`
}

/**
 * Runs a search: `numSamples` configs from `space` (every grid point that many times), each a trial of
 * `trainable`, at most `maxConcurrent` at once, the scheduler deciding which go on.
 */
export function tune(grid: Grid, trainable: Trainable, options: TuneOptions): Search {
  const id = newSearchId()
  return runSearch(grid, async () => {
    const source = trainableSource(trainable)
    checkOptions(options)
    const { with: values = {}, ...rest } = options
    if (typeof values !== 'object' || values === null) throw new TypeError('with must be an object of values every trial gets')
    // Fails here, not on the first peer, for an unknown scheduler or bad scheduler options.
    makeScheduler(rest.scheduler, { space: rest.space, seed: rest.seed ?? 1, maxEpochs: rest.maxEpochs, trials: new Map(), score: () => undefined, hasCheckpoint: () => false })
    return { id, trainable: source, options: rest, values, createdAt: Date.now(), trials: [], checkpoints: new Map(), resumed: false }
  }, { id, options: typeof options === 'object' && options !== null ? options : undefined })
}

/**
 * Goes on with a search whose driver (or coordinator) died: its finished trials stay finished; those
 * that were running start again from their latest checkpoints; the rest are sampled as before.
 */
tune.resume = function resume(grid: Grid, searchId: string): Search {
  return runSearch(grid, async () => {
    if (!SearchStore.available(grid)) throw new TypeError('tune.resume needs a driver\'s grid (connect()), which can reach the coordinator\'s state')
    const store = new SearchStore(grid, searchId, (l) => console.log(l))
    const { doc, values } = await store.load()
    if (doc.state !== 'running') throw new Error(`search ${searchId} is ${doc.state}: there is nothing to resume (its trials are in the state it kept)`)
    const checkpoints = new Map<string, Checkpoint>()
    for (const t of doc.trials) {
      if (TERMINAL.has(t.state) || t.checkpointEpoch === 0) continue
      const c = await store.loadCheckpoint(t.id)
      if (c) checkpoints.set(t.id, c)
    }
    return { id: doc.id, trainable: doc.trainable, options: doc.options, values, createdAt: doc.createdAt, trials: doc.trials, checkpoints, resumed: true }
  }, { id: searchId })
}

/** Calls `f` with every search started from now on in this process (the IDE shows them). */
tune.watch = watchSearches
