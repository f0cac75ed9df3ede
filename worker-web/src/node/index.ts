export { startNodeWorker, type NodeWorkerOptions } from './worker.js'
export { NodeExecutorPool } from './executor-pool.js'
export { nodeWebSocket } from './ws.js'
export { nodeRtc, nodeSha256 } from './rtc.js'
