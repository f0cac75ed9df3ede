export { startNodeWorker, type NodeWorkerOptions } from './worker.js'
export { NodeExecutorPool } from './executor-pool.js'
export { nodeWebSocket } from './ws.js'
export { nodeRtc } from './rtc.js'
