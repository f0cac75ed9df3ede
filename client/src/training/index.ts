export { train, type TrainingRun } from './train.js'
export { ColonyParameterShard, type ShardOptions } from './parameter-shard.js'
export { ColonyTrainingWorker, type StepOutcome } from './worker.js'
export type * from './types.js'
