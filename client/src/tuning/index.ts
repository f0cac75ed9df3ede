export { tune } from './tune.js'
export { uniform, quniform, loguniform, randint, choice, gridSearch } from './space.js'
export { SCHEDULERS } from './schedulers.js'
export type * from './types.js'
