/** The client API that works in Node and in browsers (the CLI and bundling are Node-only: index.ts). */
export { connect, current, type ConnectOptions, type ConnectedGrid } from './connect.js'
export { Grid, type RemoteFunction, type ActorClass, type ActorHandle, type RemoteMethod, type GetOptions, type WaitOptions, type Arg } from '@colony-grid/worker-web'
export {
  ObjectRef, ColonyError, TaskError, PeerDiedError, ObjectLostError, TimeoutError, CancelledError, AuthError, LimitError, ProtocolError,
  type TaskOptions, type JobInfo, type PeerInfo, type TaskInfo,
} from '@colony-grid/shared'
export * from './scoring/index.js'
export * from './training/index.js'
export * from './serving/index.js'
export * from './tuning/index.js'
export { ActorPool, peerVanished, type ActorPoolOptions, type PoolMember } from './pool/actor-pool.js'
