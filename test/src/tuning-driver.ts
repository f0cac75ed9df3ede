/**
 * A driver that starts a search and says what happens, for tuning.test.ts to kill mid-search (then
 * resume it from another driver). $COLONY_URL and $COLONY_TOKEN say where.
 */
import { connect, loguniform, tune, type TrialConfig, type TrialSession } from '@colony-grid/client'

/** Slow enough to be killed in the middle of: 8 trials of 6 epochs of 150 ms, two at a time. */
async function steady(config: TrialConfig, session: TrialSession): Promise<void> {
  const c = session.checkpoint as { value: number } | undefined
  let value = c?.value ?? 0
  for (let epoch = session.epoch + 1; ; epoch++) {
    await new Promise((r) => setTimeout(r, 150))
    value += (1 - value) * (config.lr as number)
    if (await session.report({ epoch, score: value }, { checkpoint: { value } }) === 'stop') return
  }
}

const grid = await connect(undefined, { onLog: false, log: () => {} })
const search = tune(grid, steady, { space: { lr: loguniform(0.05, 0.5) }, numSamples: 8, metric: 'score', mode: 'max', maxEpochs: 6, maxConcurrent: 2, seed: 4 })
for await (const e of search) {
  if (e.type === 'started' && e.trial === 't1' && e.run === 1) console.log(`search ${search.id}`)
  if (e.type === 'finished') console.log(`finished ${e.trial}`)
}
console.log(JSON.stringify((await search).best))
await grid.close()
