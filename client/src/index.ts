export * from './api.js'
export { bundleJob } from './bundle.js'
export { ServeHost, type ServeHostOptions } from './serving/host.js'
export { ServeIngress, type ServeIngressOptions, type Caller } from './serving/http.js'
