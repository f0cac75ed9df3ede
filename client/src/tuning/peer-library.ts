/**
 * The code a trial runner carries to its peer (scripts/build-peer-library.mjs bundles this entry into
 * one script, and runner-class.ts puts that script inside the runner's class): the runner itself and,
 * for nested trials, the training library.
 */
export { TrialRunnerCore } from './runner.js'
