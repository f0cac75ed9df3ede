export { connect, current, type ConnectOptions } from './connect.js'
export { bundleJob } from './bundle.js'
export { Grid, type RemoteFunction, type ActorClass, type ActorHandle, type RemoteMethod, type GetOptions, type WaitOptions, type Arg } from '@colony/worker-web'
export {
  ObjectRef, ColonyError, TaskError, PeerDiedError, ObjectLostError, TimeoutError, CancelledError, AuthError, LimitError, ProtocolError,
  type TaskOptions, type JobInfo, type PeerInfo, type TaskInfo,
} from '@colony/shared'
