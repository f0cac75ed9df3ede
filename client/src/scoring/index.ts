export { scoreDataset, createScoringPool, ScoringPool, type ScoringRun } from './score.js'
export { splitRows } from './dataset.js'
export { ColonyScoringActor } from './actor.js'
export type * from './types.js'
