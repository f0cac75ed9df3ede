export * from './api.js'
export { bundleJob } from './bundle.js'
